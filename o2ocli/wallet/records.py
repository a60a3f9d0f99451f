"""Wallet side of product traceability and consent records.

* An item is registered in the namespace of the wallet's primary address
  (its first receiving address), so ``ITEM_ID`` plus that address names it
  for everyone; the item asset goes to the custodian (this wallet by default).
* A trace event moves the item (to a new custodian or back to the same one)
  with what happened, where, a note and an optional document hash.
* Consent grants and revocations are signed by the user's primary key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from o2ocli.consensus import consent as consent_rules
from o2ocli.consensus import trace as trace_rules
from o2ocli.consensus.errors import TxInvalid
from o2ocli.core.locks import PayToAddress
from o2ocli.core.payloads import (
    MAX_TRACE_DATA,
    TRACE_EVENTS,
    ConsentGrant,
    ConsentRevoke,
    TraceEvent,
    TraceRegister,
    consent_sig_digest,
    item_asset_id,
    item_sig_digest,
    revoke_sig_digest,
)
from o2ocli.core.tx import NATIVE_ASSET, Tx, TxOut
from o2ocli.rpc import errors as E
from o2ocli.rpc.errors import RpcError

from .builder import PaymentPlan, Spendable
from .errors import O2OError
from .payloadtx import build, check_field
from .service import sync, wallet_coins
from .wallet import Unlocked, Wallet

__all__ = [
    "check_item_id",
    "register_item",
    "trace_event",
    "get_trace",
    "document_hash",
    "grant_consent",
    "revoke_consent",
]

def _name(value: str, rule: Callable[[bytes], None]) -> bytes:
    """``value`` as bytes if the consensus ``rule`` for its field accepts it."""
    data = value.encode("utf-8", errors="replace")
    try:
        rule(data)
    except TxInvalid as exc:
        raise O2OError(exc.message) from None
    return data


def check_item_id(item_id: str) -> bytes:
    """The item id as bytes, if valid (1-64 of ``A-Z a-z 0-9 . _ : / -``)."""
    return _name(item_id, trace_rules.check_item_id)


def _outpoints(tx: Tx) -> list[bytes]:
    return tx.wire_outpoints()


def _pubkey(wallet: Wallet, pkh: bytes, unlocked: Unlocked) -> bytes:
    return wallet.key_for(pkh, unlocked).public_key.to_bytes()


def register_item(
    wallet: Wallet, client: Any, unlocked: Unlocked, item_id: str, product: str,
    data: list[tuple[str, str]], custodian: bytes | None = None,
) -> tuple[Tx, PaymentPlan, bytes]:
    """A signed registration of ``item_id``; returns (tx, plan, item asset id)."""
    raw_id = check_item_id(item_id)
    product_bytes = check_field(product, trace_rules.PRODUCT_TEXT)
    if len(data) > MAX_TRACE_DATA:
        raise O2OError(f"at most {MAX_TRACE_DATA} --data entries")
    pairs = []
    for key, value in data:
        pairs.append((_name(key, trace_rules.check_data_key),
                      check_field(value, trace_rules.DATA_VALUE_TEXT, f"data value of {key}")))
    if len({k for k, _ in pairs}) != len(pairs):
        raise O2OError("a --data key appears twice")
    merchant = wallet.primary_pkh()
    asset = item_asset_id(merchant, raw_id)
    try:
        client.call("gettrace", asset.hex())
    except RpcError as exc:
        if exc.code != E.NOT_FOUND:
            raise
    else:
        raise O2OError(f"item {item_id} is already registered by {wallet.spec.address(merchant)}")
    pubkey = _pubkey(wallet, merchant, unlocked)
    unsigned = TraceRegister(merchant, raw_id, product_bytes, tuple(pairs), pubkey, bytes(64))
    holder = PayToAddress(custodian or merchant)
    _, plan = build(wallet, client, unlocked, [TxOut(asset, 1, holder)], payload=unsigned,
                    created={asset: 1})
    digest = item_sig_digest(unsigned, wallet.spec.chain_id, _outpoints(plan.tx))
    signature = wallet.sign_digest(merchant, digest, unlocked)[1]
    payload = TraceRegister(merchant, raw_id, product_bytes, tuple(pairs), pubkey, signature)
    tx = Tx(plan.tx.inputs, plan.tx.outputs, plan.tx.lock_height, payload)
    return wallet.sign(tx, [c.owner for c in plan.spent], unlocked), plan, asset


def document_hash(path: Path) -> bytes:
    """SHA-256 of a file (a certificate, an invoice, a photo)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            digest.update(chunk)
    return digest.digest()


def get_trace(client: Any, asset: bytes) -> dict[str, Any]:
    """The node's timeline of an item; O2OError if unknown."""
    try:
        return client.call("gettrace", asset.hex())
    except RpcError as exc:
        if exc.code in (E.NOT_FOUND, E.INVALID_PARAMS):
            raise O2OError(exc.message) from None
        raise


def trace_event(
    wallet: Wallet, client: Any, unlocked: Unlocked, asset: bytes, event: str,
    to: bytes | None, location: str, note: str, document: bytes | None,
) -> tuple[Tx, PaymentPlan]:
    """A signed step of the item's custody: spend it, re-create it for ``to``
    (default: the address holding it now), with the event payload."""
    if event not in TRACE_EVENTS:
        raise O2OError(f"unknown event {event!r}: use one of {', '.join(TRACE_EVENTS)}")
    location_bytes = check_field(location, trace_rules.LOCATION_TEXT)
    note_bytes = check_field(note, trace_rules.NOTE_TEXT)
    sync(wallet, client)
    coins = wallet_coins(wallet, client)
    held = [c for c in coins if c.output.asset == asset]
    if not held:
        info = get_trace(client, asset)
        raise O2OError(f"this wallet is not the custodian of {info['item']} "
                       f"(held by {info['custodian']})")
    coin: Spendable = held[0]
    holder = PayToAddress(to) if to is not None else coin.output.lock
    payload = TraceEvent(asset, TRACE_EVENTS.index(event), location_bytes, note_bytes, document)
    return build(wallet, client, unlocked, [TxOut(asset, 1, holder)], payload=payload,
                 required=[coin], coins=coins)


def _one_native(coins: list[Spendable]) -> list[Spendable]:
    native = sorted((c for c in coins if c.output.asset == NATIVE_ASSET),
                    key=lambda c: (not c.confirmed, -c.output.amount))
    if not native:
        raise O2OError("the wallet has no coins to pay the fee")
    return native[:1]


def grant_consent(
    wallet: Wallet, client: Any, unlocked: Unlocked, grantee: bytes, scope: str, until: int,
) -> tuple[Tx, PaymentPlan]:
    """A signed grant: ``grantee`` may use ``scope`` of this wallet's user data
    up to height ``until``."""
    raw_scope = _name(scope, consent_rules.check_scope)
    user = wallet.primary_pkh()
    if user == grantee:
        raise O2OError("you cannot grant consent to yourself")
    pubkey = _pubkey(wallet, user, unlocked)
    unsigned = ConsentGrant(grantee, raw_scope, until, pubkey, bytes(64))
    sync(wallet, client)
    coins = wallet_coins(wallet, client)
    # The signature covers the tx's inputs: plan first (same size once signed).
    _, plan = build(wallet, client, unlocked, [], payload=unsigned, coins=coins,
                    required=_one_native(coins))
    digest = consent_sig_digest(unsigned, wallet.spec.chain_id, _outpoints(plan.tx))
    sig = wallet.sign_digest(user, digest, unlocked)[1]
    payload = ConsentGrant(grantee, raw_scope, until, pubkey, sig)
    tx = Tx(plan.tx.inputs, plan.tx.outputs, plan.tx.lock_height, payload)
    return wallet.sign(tx, [c.owner for c in plan.spent], unlocked), plan


def revoke_consent(
    wallet: Wallet, client: Any, unlocked: Unlocked, grant: bytes
) -> tuple[Tx, PaymentPlan]:
    """A signed revocation of grant ``grant`` (a txid)."""
    user = wallet.primary_pkh()
    pubkey = _pubkey(wallet, user, unlocked)
    unsigned = ConsentRevoke(grant, pubkey, bytes(64))
    sig = wallet.sign_digest(user, revoke_sig_digest(unsigned, wallet.spec.chain_id), unlocked)[1]
    sync(wallet, client)
    coins = wallet_coins(wallet, client)
    return build(wallet, client, unlocked, [], payload=ConsentRevoke(grant, pubkey, sig),
                 coins=coins, required=_one_native(coins))

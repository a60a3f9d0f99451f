"""Wallet side of profile commitments: the attribute store, commits, grants, disclosures.

The wallet keeps the user's attributes and their salts (one random 32-byte
salt per attribute per commitment) in its database, encrypted with the
wallet's passphrase exactly as its keys are (:mod:`.keystore`: scrypt +
AES-256-GCM, with the scrypt cost of the wallet's own secrets); a wallet
without a passphrase keeps them in the clear, like its keys.  Every
commitment the wallet made is kept (``profile history``); the chain only
ever sees the root of each (:mod:`o2ocli.core.profiletree`).

A commitment and the grants that name it are signed by the wallet's primary
key, which also signs the disclosures (:mod:`.disclosure`).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Any

from o2ocli.consensus import consent as consent_rules
from o2ocli.consensus.errors import TxInvalid
from o2ocli.consensus.profile import MAX_PROFILE_LEAVES
from o2ocli.core.payloads import (
    ConsentGrantProfile,
    ProfileCommit,
    consent_profile_sig_digest,
    profile_sig_digest,
)
from o2ocli.core.profiletree import SALT_SIZE, leaf_hash, tree_root
from o2ocli.core.tx import NATIVE_ASSET, Tx

from .builder import PaymentPlan, Spendable
from .errors import O2OError
from .keystore import decrypt_secret, encrypt_secret, plain_secret
from .payloadtx import build
from .service import sync, wallet_coins
from .wallet import Unlocked, Wallet

__all__ = [
    "MAX_VALUE_BYTES",
    "STORE_NOTE",
    "check_key",
    "check_value",
    "parse_attributes",
    "Commitment",
    "load_store",
    "save_store",
    "commit_profile",
    "remember_commitment",
    "grant_profile_consent",
]

MAX_VALUE_BYTES = 1024
"""Largest attribute value the wallet commits to (UTF-8 bytes; never on chain)."""
STORE_NOTE = "profile"
"""Wallet note holding the encrypted attribute store."""


def check_key(key: str) -> bytes:
    """An attribute key as bytes: a consent scope name (1-32 of ``a-z 0-9 . _ -``),
    so that ``consent grant SHOP KEY`` covers it."""
    data = key.encode("utf-8", errors="replace")
    try:
        consent_rules.check_scope(data)
    except TxInvalid as exc:
        raise O2OError(f"attribute key {key!r}: {exc.message}") from None
    return data


def check_value(key: str, value: str) -> bytes:
    """An attribute value as UTF-8, at most :data:`MAX_VALUE_BYTES` bytes."""
    data = value.encode("utf-8")
    if len(data) > MAX_VALUE_BYTES:
        raise O2OError(f"the value of {key!r} is {len(data)} bytes, more than {MAX_VALUE_BYTES}")
    return data


def parse_attributes(pairs: list[str], file_text: str | None = None) -> dict[str, str]:
    """``KEY=VALUE`` items (then a file of ``KEY=VALUE`` lines; blank lines and
    lines starting with ``#`` skipped) as a dict; a key given twice is refused."""
    items = list(pairs)
    if file_text is not None:
        items += [line for line in file_text.splitlines()
                  if line.strip() and not line.lstrip().startswith("#")]
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise O2OError(f"expected KEY=VALUE, got {item!r}")
        key = key.strip()
        check_key(key)
        check_value(key, value)
        if key in out:
            raise O2OError(f"attribute {key!r} is given twice")
        out[key] = value
    if not out:
        raise O2OError("give at least one attribute (--data KEY=VALUE or --data-file)")
    if len(out) > MAX_PROFILE_LEAVES:
        raise O2OError(f"at most {MAX_PROFILE_LEAVES} attributes, got {len(out)}")
    return out


class Commitment:
    """One commitment as the wallet remembers it: txid, and key → (salt, value)."""

    __slots__ = ("txid", "attributes")

    def __init__(self, txid: bytes, attributes: Mapping[bytes, tuple[bytes, bytes]]) -> None:
        self.txid = txid
        self.attributes = dict(attributes)

    @property
    def keys(self) -> list[bytes]:
        """The keys in tree order (the order of the leaves)."""
        return sorted(self.attributes)

    def leaves(self) -> list[bytes]:
        """The leaf hashes, in tree order."""
        return [leaf_hash(key, *self.attributes[key]) for key in self.keys]

    @property
    def root(self) -> bytes:
        return tree_root(self.leaves())

    def to_json(self) -> dict[str, Any]:
        return {"txid": self.txid.hex(),
                "attributes": {k.decode(): {"salt": s.hex(), "value": v.decode()}
                               for k, (s, v) in sorted(self.attributes.items())}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Commitment:
        attrs = {k.encode(): (bytes.fromhex(a["salt"]), a["value"].encode())
                 for k, a in data["attributes"].items()}
        return cls(bytes.fromhex(data["txid"]), attrs)


def _kdf_cost(wallet: Wallet) -> dict[str, int]:
    """The scrypt parameters of the wallet's own encrypted secrets (same cost)."""
    raw = wallet.db.get(b"seed")
    if raw is None:
        raw = next((v for _, v in wallet.db.iterator(prefix=b"k")), None)
    blob = json.loads(raw) if raw is not None else {}
    return {name: blob[name] for name in ("n", "r", "p") if name in blob}


def load_store(wallet: Wallet, passphrase: str | None) -> list[Commitment]:
    """Every commitment the wallet made, oldest first (decrypts the store)."""
    blob = wallet.get_note(STORE_NOTE)
    if blob is None:
        return []
    data = json.loads(decrypt_secret(blob, passphrase or ""))
    return [Commitment.from_json(c) for c in data["commitments"]]


def save_store(wallet: Wallet, passphrase: str | None, commitments: list[Commitment]) -> None:
    """Write the store, encrypted like the wallet's keys."""
    plaintext = json.dumps({"version": 1, "commitments": [c.to_json() for c in commitments]},
                           sort_keys=True).encode()
    if wallet.encrypted:
        if passphrase is None:
            raise O2OError("the wallet is encrypted: a passphrase is needed")
        blob = encrypt_secret(plaintext, passphrase, **_kdf_cost(wallet))
    else:
        blob = plain_secret(plaintext)
    wallet.put_note(STORE_NOTE, blob)


def _one_native(coins: list[Spendable]) -> list[Spendable]:
    native = sorted((c for c in coins if c.output.asset == NATIVE_ASSET),
                    key=lambda c: (not c.confirmed, -c.output.amount))
    if not native:
        raise O2OError("the wallet has no coins to pay the fee")
    return native[:1]


def _signed_tx(wallet: Wallet, client: Any, unlocked: Unlocked, unsigned: Any,
               sign: Any) -> tuple[Tx, PaymentPlan]:
    """Plan a tx carrying ``unsigned`` (its signature zeroed), then sign the payload
    (``sign(plan tx) -> payload``) and the inputs; the size does not change."""
    sync(wallet, client)
    coins = wallet_coins(wallet, client)
    _, plan = build(wallet, client, unlocked, [], payload=unsigned, coins=coins,
                    required=_one_native(coins))
    payload = sign(plan.tx)
    tx = Tx(plan.tx.inputs, plan.tx.outputs, plan.tx.lock_height, payload)
    return wallet.sign(tx, [c.owner for c in plan.spent], unlocked), plan


def commit_profile(
    wallet: Wallet, client: Any, unlocked: Unlocked, attributes: Mapping[str, str],
) -> tuple[Tx, PaymentPlan, Commitment]:
    """A signed commitment to ``attributes`` with fresh salts; the returned
    :class:`Commitment` is to be remembered (:func:`remember_commitment`)
    before the tx is sent."""
    attrs = {check_key(k): (secrets.token_bytes(SALT_SIZE), check_value(k, v))
             for k, v in attributes.items()}
    draft = Commitment(b"", attrs)
    user = wallet.primary_pkh()
    pubkey = wallet.key_for(user, unlocked).public_key.to_bytes()
    root, count = draft.root, len(attrs)
    unsigned = ProfileCommit(root, count, pubkey, bytes(64))

    def sign(tx: Tx) -> ProfileCommit:
        digest = profile_sig_digest(unsigned, wallet.spec.chain_id, tx.wire_outpoints())
        return ProfileCommit(root, count, pubkey, wallet.sign_digest(user, digest, unlocked)[1])

    tx, plan = _signed_tx(wallet, client, unlocked, unsigned, sign)
    return tx, plan, Commitment(tx.txid, attrs)


def remember_commitment(wallet: Wallet, passphrase: str | None, commitment: Commitment) -> None:
    """Add ``commitment`` to the wallet's encrypted store (before sending it)."""
    store = load_store(wallet, passphrase)
    store.append(commitment)
    save_store(wallet, passphrase, store)


def grant_profile_consent(
    wallet: Wallet, client: Any, unlocked: Unlocked, grantee: bytes, scope: str, until: int,
    profile: bytes,
) -> tuple[Tx, PaymentPlan]:
    """A signed grant of ``scope`` to ``grantee`` until ``until`` that names the
    profile commitment ``profile`` (a txid)."""
    raw_scope = check_key(scope)
    user = wallet.primary_pkh()
    if user == grantee:
        raise O2OError("you cannot grant consent to yourself")
    pubkey = wallet.key_for(user, unlocked).public_key.to_bytes()
    unsigned = ConsentGrantProfile(grantee, raw_scope, until, profile, pubkey, bytes(64))

    def sign(tx: Tx) -> ConsentGrantProfile:
        digest = consent_profile_sig_digest(unsigned, wallet.spec.chain_id, tx.wire_outpoints())
        sig = wallet.sign_digest(user, digest, unlocked)[1]
        return ConsentGrantProfile(grantee, raw_scope, until, profile, pubkey, sig)

    return _signed_tx(wallet, client, unlocked, unsigned, sign)

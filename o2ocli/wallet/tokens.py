"""Wallet side of the loyalty tokens: issuing (commit, then reveal), minting,
burning, freezing, and paying rewards to customers.

The node's consensus rules are the final word; these functions check the same
things first so that a user gets a clear message before anything is signed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from o2ocli.consensus.errors import TxInvalid
from o2ocli.consensus.tokens import (
    MAX_DECIMALS,
    MAX_SYMBOL_LEN,
    MIN_SYMBOL_LEN,
    TOKEN_NAME,
)
from o2ocli.consensus.tokens import check_symbol as symbol_rule
from o2ocli.core.locks import PayToAddress, lock_bytes
from o2ocli.core.payloads import (
    MAX_REWARD_KEYS,
    REWARD_PURCHASES,
    REWARD_REVIEWS,
    KeySig,
    TokenBurn,
    TokenCommit,
    TokenFreeze,
    TokenIssue,
    TokenMint,
    TokenReward,
    authority_asset_id,
    reward_sig_digest,
    token_commitment,
)
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, Tx, TxOut
from o2ocli.rpc import errors as E
from o2ocli.rpc.errors import RpcError

from .builder import PaymentPlan, Spendable
from .errors import O2OError
from .payloadtx import build, check_field, send, signing_pubkey
from .service import sync, wallet_coins
from .wallet import Unlocked, Wallet

__all__ = [
    "RewardLine",
    "burn",
    "check_symbol",
    "commit_confirmations",
    "finish_issue",
    "freeze",
    "mint",
    "parse_rate",
    "pending_issue",
    "plan_rewards",
    "reward",
    "start_issue",
]


def check_symbol(symbol: str) -> str:
    """The canonical (upper-case) symbol, or :class:`O2OError`."""
    canonical = symbol.upper() if symbol.isascii() else ""  # no Unicode case folding (ß→SS)
    try:
        symbol_rule(canonical.encode())
    except TxInvalid:
        raise O2OError(
            f"invalid symbol {symbol!r}: use {MIN_SYMBOL_LEN}-{MAX_SYMBOL_LEN} letters A-Z or "
            "digits 0-9"
        ) from None
    return canonical


def _receive_lock(wallet: Wallet) -> PayToAddress:
    return PayToAddress(wallet.spec.decode_address(wallet.receive_address()))


def _note_name(symbol: str) -> str:
    return f"issue:{symbol}"


def pending_issue(wallet: Wallet, symbol: str) -> dict[str, Any] | None:
    """The wallet's unfinished issue of ``symbol`` (committed, not revealed), if any."""
    return wallet.get_note(_note_name(symbol))


def start_issue(
    wallet: Wallet,
    client: Any,
    unlocked: Unlocked,
    symbol: str,
    name: str,
    decimals: int,
    supply: int,
    mintable: bool,
) -> str:
    """Step 1: broadcast the commitment (a salted hash of the symbol) and
    remember the salt and the terms; returns the commit txid."""
    symbol = check_symbol(symbol)
    name_bytes = check_field(name, TOKEN_NAME)
    if not 0 <= decimals <= MAX_DECIMALS:
        raise O2OError(f"decimals must be 0..{MAX_DECIMALS}")
    if supply == 0 and not mintable:
        raise O2OError("a fixed-supply token needs --supply above 0 (or use --mintable)")
    try:
        client.call("gettoken", symbol)
    except RpcError as exc:
        if exc.code != E.NOT_FOUND:
            raise
    else:
        raise O2OError(f"symbol {symbol} is already issued on this chain")
    salt = os.urandom(32)
    fee = wallet.spec.token_issue_fee
    # Output 0 holds the coin the reveal spends (and burns as the issuance fee);
    # its owner becomes the token's recorded issuer: the wallet's receive address.
    lock = _receive_lock(wallet)
    commit_out = TxOut(NATIVE_ASSET, max(fee, 1), lock)
    commitment = token_commitment(symbol, salt, lock_bytes(lock))
    tx, plan = build(wallet, client, unlocked, [commit_out], payload=TokenCommit(commitment))
    note = {
        "symbol": symbol, "name": name_bytes.decode(), "decimals": decimals, "supply": supply,
        "mintable": mintable, "salt": salt.hex(), "commit": tx.txid.hex(),
    }
    wallet.put_note(_note_name(symbol), note)  # before sending: a crash can resume
    try:
        return send(wallet, client, tx, plan)
    except BaseException:
        wallet.delete_note(_note_name(symbol))
        raise


def commit_confirmations(client: Any, note: dict[str, Any]) -> int:
    """Confirmations of a pending issue's commit (0 while in the mempool);
    O2OError if the node no longer knows it."""
    try:
        return client.call("gettx", note["commit"])["confirmations"]
    except RpcError as exc:
        if exc.code == E.NOT_FOUND:
            raise O2OError(
                f"the commitment {note['commit']} for {note['symbol']} is neither in the chain nor "
                "in the mempool; start the issue again"
            ) from None
        raise


def finish_issue(wallet: Wallet, client: Any, unlocked: Unlocked, symbol: str) -> str:
    """Step 2: reveal the symbol once the commit is mined; returns the issue txid."""
    symbol = check_symbol(symbol)
    note = pending_issue(wallet, symbol)
    if note is None:
        raise O2OError(f"no pending issue of {symbol} in this wallet")
    sync(wallet, client)
    coins = wallet_coins(wallet, client)
    commit = Outpoint(bytes.fromhex(note["commit"]), 0)
    first = [c for c in coins if c.outpoint == commit]
    if not first or not first[0].confirmed:
        raise O2OError(f"the commitment {note['commit']} is not mined yet; try again in a moment")
    asset_payload = TokenIssue(symbol.encode(), note["name"].encode(), note["decimals"],
                               note["mintable"], bytes.fromhex(note["salt"]))
    asset = asset_payload.asset
    owner = _receive_lock(wallet)
    outputs = []
    if note["supply"]:
        outputs.append(TxOut(asset, note["supply"], owner))
    if note["mintable"]:
        outputs.append(TxOut(authority_asset_id(asset), 1, owner))
    created = {asset: note["supply"], authority_asset_id(asset): 1 if note["mintable"] else 0}
    tx, plan = build(
        wallet, client, unlocked, outputs, payload=asset_payload, required=first, coins=coins,
        created=created, burned={NATIVE_ASSET: wallet.spec.token_issue_fee},
    )
    txid = send(wallet, client, tx, plan)
    wallet.delete_note(_note_name(symbol))
    return txid


def _authority_coin(
    wallet: Wallet, client: Any, token: dict[str, Any], action: str
) -> tuple[Spendable, list[Spendable]]:
    if not token["mintable"]:
        raise O2OError(f"{token['symbol']} has a fixed supply: nothing can {action} it")
    sync(wallet, client)
    coins = wallet_coins(wallet, client)
    authority = bytes.fromhex(token["authority_asset"])
    held = [c for c in coins if c.output.asset == authority]
    if not held:
        holder = token.get("authority_holder") or "nobody"
        raise O2OError(
            f"this wallet does not hold the mint authority of {token['symbol']} (held by {holder})"
        )
    return held[0], coins


def mint(
    wallet: Wallet, client: Any, unlocked: Unlocked, token: dict[str, Any], units: int,
    to: bytes | None = None,
) -> tuple[Tx, PaymentPlan]:
    """A signed mint of ``units`` (to ``to`` or a wallet address); the
    authority output is spent and recreated to a wallet address."""
    authority_coin, coins = _authority_coin(wallet, client, token, "mint")
    asset = bytes.fromhex(token["asset"])
    owner = PayToAddress(to) if to is not None else _receive_lock(wallet)
    outputs = [TxOut(asset, units, owner), TxOut(authority_coin.output.asset, 1,
                                                   authority_coin.output.lock)]
    return build(wallet, client, unlocked, outputs, payload=TokenMint(asset, units),
                 required=[authority_coin], coins=coins, created={asset: units})


def burn(
    wallet: Wallet, client: Any, unlocked: Unlocked, token: dict[str, Any], units: int
) -> tuple[Tx, PaymentPlan]:
    """A signed burn of ``units`` of the wallet's own tokens."""
    asset = bytes.fromhex(token["asset"])
    return build(wallet, client, unlocked, [], payload=TokenBurn(asset, units),
                 burned={asset: units}, required=_burn_inputs(wallet, client, asset, units))


def _burn_inputs(wallet: Wallet, client: Any, asset: bytes, units: int) -> list[Spendable]:
    sync(wallet, client)
    pool = sorted((c for c in wallet_coins(wallet, client) if c.output.asset == asset),
                  key=lambda c: (not c.confirmed, -c.output.amount))
    chosen, have = [], 0
    for coin in pool:
        if have >= units:
            break
        chosen.append(coin)
        have += coin.output.amount
    if have < units:
        from .builder import InsufficientFunds

        raise InsufficientFunds(asset, units, sum(c.output.amount for c in pool))
    return chosen


def freeze(
    wallet: Wallet, client: Any, unlocked: Unlocked, token: dict[str, Any]
) -> tuple[Tx, PaymentPlan]:
    """A signed destruction of the authority output: the supply is fixed forever."""
    authority_coin, coins = _authority_coin(wallet, client, token, "freeze")
    asset = bytes.fromhex(token["asset"])
    return build(wallet, client, unlocked, [], payload=TokenFreeze(asset),
                 required=[authority_coin], coins=coins,
                 burned={authority_coin.output.asset: 1})


@dataclass(frozen=True, slots=True)
class RewardLine:
    """What one customer gets."""

    customer: str
    """Customer address."""
    units: int
    """Token base units paid."""
    refs: tuple[str, ...]
    """Purchase (or review) txids rewarded."""
    basis: int
    """Native coin spent (purchases) or number of reviews."""


def parse_rate(rate: str, decimals: int) -> int:
    """A reward rate in token display units (per coin or per review) → base units."""
    try:
        value = Decimal(rate)
    except InvalidOperation:
        raise O2OError(f"invalid rate {rate!r}: give a decimal number such as 1 or 0.5") from None
    if not value.is_finite() or value <= 0:
        raise O2OError("the rate must be a positive number")
    units = value * (10**decimals)
    if units != units.to_integral_value():
        raise O2OError(f"the rate {rate} has more than {decimals} decimals")
    return int(units)


def plan_rewards(
    wallet: Wallet, client: Any, token: dict[str, Any], rate: str, kind: str, since: int
) -> list[RewardLine]:
    """Who would get what: every customer who paid (reviewed) this wallet's
    addresses since ``since`` and was not rewarded with this token yet."""
    sync(wallet, client)
    rate_units = parse_rate(rate, token["decimals"])
    addresses = [wallet.spec.address(p) for p in wallet.pubkey_hashes()]
    items = client.call("listrewardable", token["asset"], addresses, kind, since)
    per_customer: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        if not wallet.owns(wallet.spec.decode_address(item["customer"])):
            per_customer.setdefault(item["customer"], []).append(item)
    lines = []
    one_coin = 10**wallet.spec.native_decimals
    for customer, entries in per_customer.items():
        if kind == "purchases":
            basis = sum(e["paid_units"] for e in entries)
            units = basis * rate_units // one_coin
        else:
            basis = len(entries)
            units = basis * rate_units
        if units > 0:
            lines.append(RewardLine(customer, units, tuple(e["txid"] for e in entries), basis))
    return lines


def reward(
    wallet: Wallet, client: Any, unlocked: Unlocked, token: dict[str, Any],
    lines: Sequence[RewardLine], kind: str,
) -> tuple[Tx, PaymentPlan]:
    """One signed tx paying every line, whose payload lists the rewarded txids
    and carries the merchant keys that were paid (signing the payload)."""
    if not lines:
        raise O2OError("nobody to reward: no new purchases (or reviews) since that height")
    asset = bytes.fromhex(token["asset"])
    refs = tuple(bytes.fromhex(r) for line in lines for r in line.refs)
    outputs = [TxOut(asset, line.units, PayToAddress(wallet.spec.decode_address(line.customer)))
               for line in lines]
    # The merchant keys: the wallet addresses the listed purchases paid (or reviews named).
    merchants: list[bytes] = []
    for ref in refs:
        for pkh in _merchant_keys_of(wallet, client, ref, kind):
            if pkh not in merchants:
                merchants.append(pkh)
    if len(merchants) > MAX_REWARD_KEYS:
        raise O2OError(f"the purchases paid more than {MAX_REWARD_KEYS} of your addresses; "
                       "reward them in parts with --since")
    kind_code = REWARD_PURCHASES if kind == "purchases" else REWARD_REVIEWS
    unsigned = TokenReward(asset, kind_code, refs, tuple(
        KeySig(signing_pubkey(wallet, p, unlocked), bytes(64)) for p in merchants))
    # The merchant signatures cover the tx's inputs: choose them first (the
    # payload's size does not change when the signatures are filled in).
    _, plan = build(wallet, client, unlocked, outputs, payload=unsigned)
    outpoints = plan.tx.wire_outpoints()
    digest = reward_sig_digest(unsigned, wallet.spec.chain_id, outpoints)
    keys = tuple(KeySig(*wallet.sign_digest(p, digest, unlocked)) for p in merchants)
    payload = TokenReward(asset, kind_code, refs, keys)
    tx = Tx(plan.tx.inputs, plan.tx.outputs, plan.tx.lock_height, payload)
    return wallet.sign(tx, [c.owner for c in plan.spent], unlocked), plan


def _merchant_keys_of(wallet: Wallet, client: Any, ref: bytes, kind: str) -> list[bytes]:
    if kind == "reviews":
        review = client.call("getreview", ref.hex())
        return [wallet.spec.decode_address(review["merchant"])]
    tx = client.call("gettx", ref.hex())
    found = []
    for out in tx["outputs"]:
        address = out.get("address")
        if address is not None and out["asset_id"] == NATIVE_ASSET.hex():
            pkh = wallet.spec.decode_address(address)
            if wallet.owns(pkh):
                found.append(pkh)
                break
    return found

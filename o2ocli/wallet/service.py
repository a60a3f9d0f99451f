"""Wallet operations that talk to a node over JSON-RPC.

Every function takes an open :class:`~o2ocli.wallet.wallet.Wallet` and an RPC
client (anything with ``call(method, *params)``), so a wallet works against a
node on another machine as well.  Nothing is written to the wallet before the
node accepted what it had to accept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from o2ocli.amounts import format_amount
from o2ocli.core.locks import Multisig, PayToAddress
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, Tx, TxOut

from .builder import DEFAULT_MAX_INPUTS, PaymentPlan, Spendable, plan_payment
from .wallet import Unlocked, Wallet

__all__ = [
    "sync",
    "wallet_coins",
    "Balance",
    "balances",
    "prepare_payment",
    "broadcast",
    "HistoryEntry",
    "history",
]

MAX_SYNC_ROUNDS = 100


def _addresses(wallet: Wallet) -> list[str]:
    return [wallet.spec.address(pkh) for pkh in wallet.pubkey_hashes()]


def sync(wallet: Wallet, client: Any) -> list[dict[str, Any]]:
    """Find the wallet's used addresses and keep the gap limit of fresh ones
    beyond them (gap-limit discovery, so a restored wallet finds its funds).
    Returns the address history (confirmed then mempool)."""
    for _ in range(MAX_SYNC_ROUNDS):
        entries = client.call("getaddresseshistory", _addresses(wallet))
        used = {
            wallet.spec.decode_address(a) for entry in entries for a in entry.get("addresses", [])
        }
        if not wallet.extend_gap(used):
            return entries
    return entries


def _lock_from_json(wallet: Wallet, data: dict[str, Any]) -> Any:
    if data["type"] == "address":
        return PayToAddress(wallet.spec.decode_address(data["address"]))
    if data["type"] == "multisig":
        return Multisig(data["m"], tuple(wallet.spec.decode_address(a) for a in data["addresses"]))
    raise ValueError(f"unsupported lock {data['type']}")


def _coins_from_json(wallet: Wallet, items: list[dict[str, Any]]) -> list[tuple[Spendable, bool]]:
    """(coin, spent by a mempool tx) for each pay-to-address item."""
    coins = []
    for item in items:
        if item["lock"]["type"] != "address":
            continue  # multisig coins need co-signers: not spent by plain sends
        lock = _lock_from_json(wallet, item["lock"])
        out = TxOut(bytes.fromhex(item["asset_id"]), item["units"], lock)
        coin = Spendable(
            Outpoint(bytes.fromhex(item["txid"]), item["index"]),
            out,
            item["height"] is not None,
            out.lock.pubkey_hash,
        )
        coins.append((coin, "spent_by" in item))
    return coins


def wallet_coins(wallet: Wallet, client: Any, include_mempool: bool = True) -> list[Spendable]:
    """The wallet's spendable coins (pay-to-address ones it holds keys for)."""
    items = client.call("listunspent", _addresses(wallet), include_mempool)
    return [coin for coin, _ in _coins_from_json(wallet, items)]


@dataclass
class Balance:
    """One asset's balance: confirmed in the chain, and the mempool's net change."""

    asset: bytes
    confirmed: int = 0
    unconfirmed: int = 0


def balances(wallet: Wallet, client: Any) -> list[Balance]:
    """Per asset: ``confirmed`` = the wallet's coins in the chain's UTXO set;
    ``unconfirmed`` = what pending mempool txs add or take away (may be negative)."""
    if "multisig" in wallet.meta:
        from .multisig import multisig_balances

        return multisig_balances(wallet, client)
    sync(wallet, client)
    items = client.call("listunspent", _addresses(wallet), True, True)
    result: dict[bytes, Balance] = {NATIVE_ASSET: Balance(NATIVE_ASSET)}
    for coin, spent_in_mempool in _coins_from_json(wallet, items):
        entry = result.setdefault(coin.output.asset, Balance(coin.output.asset))
        amount = coin.output.amount
        if coin.confirmed:
            entry.confirmed += amount
            if spent_in_mempool:
                entry.unconfirmed -= amount
        elif not spent_in_mempool:
            entry.unconfirmed += amount
    return sorted(result.values(), key=lambda b: (b.asset != NATIVE_ASSET, b.asset))


def prepare_payment(
    wallet: Wallet,
    client: Any,
    outputs: Sequence[TxOut],
    unlocked: Unlocked,
    *,
    fixed_fee: int | None = None,
    max_inputs: int = DEFAULT_MAX_INPUTS,
) -> tuple[Tx, PaymentPlan]:
    """Select coins, add change, sign.  Nothing is broadcast or recorded: the
    caller records the change address (``wallet.commit_change``) only once the
    transaction went out (or was handed to the user with ``--dry-run``)."""
    sync(wallet, client)
    coins = wallet_coins(wallet, client)
    from .fees import fee_rate as chosen_rate

    fee_rate = chosen_rate(wallet, client)
    plan = plan_payment(
        coins,
        outputs,
        wallet.peek_change(),
        fee_rate=fee_rate,
        fixed_fee=fixed_fee,
        max_inputs=max_inputs,
    )
    signed = wallet.sign(plan.tx, [c.owner for c in plan.spent], unlocked)
    return signed, plan


def broadcast(client: Any, tx: Tx) -> str:
    """Send a signed tx to the node; returns its txid (RpcError on refusal)."""
    return client.call("sendrawtx", tx.to_bytes().hex())


def record_change(wallet: Wallet, plan: PaymentPlan) -> None:
    """After a payment went out: mark its change address as used."""
    native_change = [o for o in plan.change if isinstance(o.lock, PayToAddress)]
    if native_change:
        wallet.commit_change(native_change[0].lock)


@dataclass
class HistoryEntry:
    """One wallet transaction, per asset it moved."""

    txid: str
    height: int | None
    confirmations: int
    final: bool
    asset: bytes
    delta: int
    kind: str
    """``receive``, ``send``, ``self`` (only own addresses) or ``fee-claim``."""
    fee: int | None
    counterparties: list[str] = field(default_factory=list)
    payload: str = "none"
    """The tx's payload type (``none``, ``review``, ``token-issue``, …)."""
    escrows: list[str] = field(default_factory=list)
    """``TXID:INDEX`` of each escrow the tx paid into or settled (an escrow payment)."""


def history(wallet: Wallet, client: Any) -> list[HistoryEntry]:
    """The wallet's transactions, oldest first, with per-asset deltas."""
    entries = sync(wallet, client)
    mine = set(wallet.pubkey_hashes())
    txs: list[Any] = []
    for start in range(0, len(entries), 1000):  # the node caps a batch at 10,000 calls
        txs += client.batch([("gettx", [e["txid"]]) for e in entries[start : start + 1000]])
    result: list[HistoryEntry] = []
    for tx in txs:
        if isinstance(tx, Exception):
            continue
        deltas: dict[bytes, int] = {}
        ours_in = False
        outsiders_out: list[str] = []
        outsiders_in: list[str] = []
        escrows: list[str] = []
        for inp in tx["inputs"]:
            owner = inp.get("address")
            if inp.get("lock", {}).get("type") == "escrow":
                escrows.append(f"{inp['txid']}:{inp['index']}")
                outsiders_in.append(f"escrow {escrows[-1]}")
            if owner is not None and wallet.spec.decode_address(owner) in mine:
                ours_in = True
                asset = bytes.fromhex(inp["asset_id"])
                deltas[asset] = deltas.get(asset, 0) - inp["units"]
            elif owner is not None:
                outsiders_in.append(owner)
        for out in tx["outputs"]:
            owner = out.get("address")
            asset = bytes.fromhex(out["asset_id"])
            if owner is not None and wallet.spec.decode_address(owner) in mine:
                deltas[asset] = deltas.get(asset, 0) + out["units"]
            elif out["lock"]["type"] == "escrow":
                escrows.append(f"{tx['txid']}:{out['index']}")
                outsiders_out.append(f"escrow {escrows[-1]}")
            else:
                outsiders_out.append(owner or "(contract)")
        if tx["coinbase"]:
            kind = "fee-claim"
        elif ours_in and not outsiders_out:
            kind = "self"
        elif ours_in:
            kind = "send"
        else:
            kind = "receive"
        fee = tx.get("fee_units") if ours_in else None
        others = sorted(set(outsiders_out if ours_in else outsiders_in))
        if not deltas:
            deltas[NATIVE_ASSET] = 0
        for asset, delta in sorted(deltas.items(), key=lambda kv: (kv[0] != NATIVE_ASSET, kv[0])):
            if delta == 0 and asset != NATIVE_ASSET:
                continue  # a token passed through (e.g. the authority of a mint)
            result.append(
                HistoryEntry(tx["txid"], tx["height"], tx["confirmations"], tx["final"], asset,
                             delta, kind, fee if asset == NATIVE_ASSET else None, others,
                             tx["payload"]["type"], escrows)
            )
    return result


def format_units(wallet: Wallet, asset: bytes, units: int) -> str:
    """Display string for an amount of ``asset``."""
    if asset == NATIVE_ASSET:
        return format_amount(units, wallet.spec.native_decimals)
    return str(units)

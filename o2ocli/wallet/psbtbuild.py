"""Building unsigned payments into partially signed files (``wallet send
--unsigned``), for a single-key HD wallet (also a watch-only one: offline
signing) and for a multisig wallet.  Talks to a node for the coins and the
previous transactions; nothing is recorded until the caller ran ``commit``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from o2ocli.core.tx import SigPair, Tx, TxIn, TxOut

from .builder import DEFAULT_MAX_INPUTS, PaymentPlan, Spendable, plan_payment
from .hdpath import CHANGE
from .multisig import (
    MS_CHANGE,
    commit_change,
    derive_lock,
    multisig_coins,
    multisig_config,
    parse_xpubs,
)
from .multisig import next_change as ms_next_change
from .psbt import KeyPath, Psbt, PsbtInput
from .service import record_change, sync, wallet_coins

__all__ = ["build_single", "build_multisig"]

_MAX_FEE_ROUNDS = 10


def _prev_txs(client: Any, spent: Sequence[Spendable]) -> dict[bytes, Tx]:
    txids = sorted({c.outpoint.txid for c in spent})
    raws = client.batch([("getrawtx", [t.hex()]) for t in txids])
    result = {}
    for txid, raw in zip(txids, raws, strict=True):
        if isinstance(raw, Exception):
            raise raw
        result[txid] = Tx.from_bytes(bytes.fromhex(raw))
    return result


def _fee_rate(wallet: Any, client: Any) -> int:
    return wallet.spec.amount(client.call("getinfo")["min_relay_fee"])


def _inputs(client: Any, plan: PaymentPlan,
            keys_of: Callable[[Spendable], list[KeyPath]]) -> list[PsbtInput]:
    prev = _prev_txs(client, plan.spent)
    return [PsbtInput(prev[c.outpoint.txid], c.output, keys_of(c)) for c in plan.spent]


def _change_map(plan: PaymentPlan, change_lock: Any, path: tuple[int, int]) -> dict[int, Any]:
    return {j: path for j, out in enumerate(plan.tx.outputs)
            if out.lock == change_lock and out in plan.change}


def build_single(wallet: Any, client: Any, outputs: Sequence[TxOut], fixed_fee: int | None,
                 max_inputs: int = DEFAULT_MAX_INPUTS) -> tuple[Psbt, Callable[[], None]]:
    """The unsigned payment of a single-key wallet, with each input's key path."""
    sync(wallet, client)
    coins = wallet_coins(wallet, client)
    change_lock = wallet.peek_change()
    plan = plan_payment(coins, outputs, change_lock, fee_rate=_fee_rate(wallet, client),
                        fixed_fee=fixed_fee, max_inputs=max_inputs)
    xpubs = [wallet.export_xpub()] if wallet.account is not None else []
    account = parse_xpubs(xpubs)
    paths = dict(wallet.iter_addresses())

    def keys_of(coin: Spendable) -> list[KeyPath]:
        info = paths.get(coin.owner, {})
        if not account or "chain" not in info:
            return []  # an imported key: its holder signs by address
        path = (info["chain"], info["index"])
        return [KeyPath(account[0].derive(path[0]).derive(path[1]).pubkey, 0, path)]

    change_index = wallet.meta["next_index"][str(CHANGE)]
    change = _change_map(plan, change_lock, (CHANGE, change_index)) if account else {}
    psbt = Psbt(wallet.spec.chain_id, plan.tx, _inputs(client, plan, keys_of), 1, xpubs, change)
    return psbt, lambda: record_change(wallet, plan)


def build_multisig(wallet: Any, client: Any, outputs: Sequence[TxOut], fixed_fee: int | None,
                   max_inputs: int = DEFAULT_MAX_INPUTS) -> tuple[Psbt, Callable[[], None]]:
    """The unsigned payment of a multisig wallet.  The fee is for the size of
    the transaction with ``m`` signatures per input."""
    m, xpub_texts = multisig_config(wallet)
    xpubs = parse_xpubs(xpub_texts)
    found = multisig_coins(wallet, client, include_spent=False)
    coins = [c for c, _, _ in found]
    paths = {c.outpoint: p for c, p, _ in found}
    change_lock, change_index = ms_next_change(wallet)
    rate = _fee_rate(wallet, client)
    fee = fixed_fee or 0
    for _ in range(_MAX_FEE_ROUNDS):
        plan = plan_payment(coins, outputs, change_lock, fee_rate=rate, fixed_fee=fee,
                            max_inputs=max_inputs)
        if fixed_fee is not None:
            break
        dummy = (SigPair(b"\x02" + bytes(32), bytes(64)),) * m
        size = Tx(tuple(TxIn(t.prevout, dummy) for t in plan.tx.inputs), plan.tx.outputs,
                  plan.tx.lock_height, plan.tx.payload).size
        needed = -(-rate * size // 1000)
        if needed <= plan.fee:
            break
        fee = needed

    def keys_of(coin: Spendable) -> list[KeyPath]:
        chain, index = paths[coin.outpoint]
        return [KeyPath(x.derive(chain).derive(index).pubkey, k, (chain, index))
                for k, x in enumerate(xpubs)]

    assert derive_lock(xpubs, m, MS_CHANGE, change_index) == change_lock
    change = _change_map(plan, change_lock, (MS_CHANGE, change_index))
    psbt = Psbt(wallet.spec.chain_id, plan.tx, _inputs(client, plan, keys_of), m, xpub_texts,
                change)

    def commit() -> None:
        if change:
            commit_change(wallet)

    return psbt, commit

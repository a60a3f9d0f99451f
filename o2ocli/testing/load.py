"""Pre-signed payment load for benchmarks and multi-node tests.

:func:`split_txs` fans one coin out into many equal coins (a few big txs);
:func:`payment_txs` signs one independent 1-in/2-out payment per coin, so a
load generator can submit them at any rate and in any order.
"""

from __future__ import annotations

from collections.abc import Sequence

from o2ocli.core.locks import PayToAddress
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, Tx, TxIn, TxOut
from o2ocli.crypto.keys import PrivateKey

from .chaingen import sign_tx

__all__ = ["PAYMENT_FEE", "split_txs", "payment_txs"]

PAYMENT_FEE = 10_000
"""Fee of each payment (base units; above the minimum relay fee of a 1-in/2-out tx)."""
PER_SPLIT_TX = 1500


def split_txs(
    chain_id: str, key: PrivateKey, coin: tuple[Outpoint, int], count: int,
    value: int = 100_000_000,
) -> tuple[list[Tx], list[tuple[Outpoint, int]]]:
    """Txs that split ``coin`` (of ``key``) into ``count`` coins of ``value``, each
    spending the previous one's change: (the txs in order, the new coins)."""
    lock = PayToAddress(key.public_key.hash160())
    outpoint, available = coin
    txs: list[Tx] = []
    coins: list[tuple[Outpoint, int]] = []
    while len(coins) < count:
        n = min(PER_SPLIT_TX, count - len(coins))
        change = available - n * value - 200 * n
        if change <= 0:
            raise ValueError(f"coin too small for {count} coins of {value}")
        outs = [TxOut(NATIVE_ASSET, value, lock) for _ in range(n)]
        outs.append(TxOut(NATIVE_ASSET, change, lock))
        tx = sign_tx(Tx((TxIn(outpoint),), tuple(outs)), [[key]], chain_id)
        txs.append(tx)
        coins += [(Outpoint(tx.txid, i), value) for i in range(n)]
        outpoint, available = Outpoint(tx.txid, n), change
    return txs, coins


def payment_txs(chain_id: str, key: PrivateKey,
                coins: Sequence[tuple[Outpoint, int]]) -> list[Tx]:
    """One signed payment per coin: half to a fixed foreign address, the rest
    (minus :data:`PAYMENT_FEE`) back to ``key``."""
    lock = PayToAddress(key.public_key.hash160())
    other = PayToAddress(bytes(range(20)))
    txs = []
    for outpoint, value in coins:
        half = (value - PAYMENT_FEE) // 2
        outs = (TxOut(NATIVE_ASSET, half, other),
                TxOut(NATIVE_ASSET, value - PAYMENT_FEE - half, lock))
        txs.append(sign_tx(Tx((TxIn(outpoint),), outs), [[key]], chain_id))
    return txs

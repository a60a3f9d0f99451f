"""What the mempool hands out and needs (its entries, its errors, the chain
view), and the batch view and batch signature check of
:meth:`~o2ocli.node.mempool.Mempool.accept_many`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from o2ocli.consensus.errors import TxInvalid
from o2ocli.consensus.locks import SigCheck
from o2ocli.consensus.o2o import STATE_DEPENDENT_REASONS
from o2ocli.consensus.tx import Verifier
from o2ocli.core.tx import Coin, Outpoint, Tx

__all__ = [
    "BatchView", "ChainView", "MempoolEntry", "MempoolError", "Prepared", "failing_signatures",
]

_NOT_MISBEHAVIOUR = frozenset(
    {"bad-txns-inputs-missingorspent", "bad-txns-premature", *STATE_DEPENDENT_REASONS}
)
"""Consensus reasons that a valid tx can hit too (unknown parent, lock not yet
reached, an O2O rule that depends on blocks this node may not have yet)."""


class ChainView(Protocol):
    """What the pool needs from the chain: the tip's UTXO set, height and tx index."""

    @property
    def height(self) -> int:
        """Height of the tip."""
        ...

    def get(self, outpoint: Outpoint) -> Coin | None:
        """The unspent coin at ``outpoint`` in the tip's UTXO set."""
        ...

    def has_tx(self, txid: bytes) -> bool:
        """True if ``txid`` is confirmed."""
        ...

    def get_tx(self, txid: bytes) -> tuple | None:
        """A confirmed transaction's record, or None."""
        ...


class MempoolError(Exception):
    """A transaction was refused by the pool.

    ``reason`` is stable (``txn-…``, ``min-relay-fee-not-met``, ``mempool-full``,
    or the ``bad-txns-…`` reason of a consensus rule); ``message`` is for people;
    ``conflict`` is the txid of the mempool tx already spending one of the inputs
    (``txn-mempool-conflict`` only); ``consensus`` is True when the tx breaks a
    consensus rule that no honest peer could trip over (not a missing input or a
    lock height not reached yet).
    """

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        conflict: bytes | None = None,
        consensus: bool = False,
    ) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.conflict = conflict
        self.consensus = consensus

    @classmethod
    def from_invalid(cls, exc: TxInvalid) -> MempoolError:
        """Wrap a consensus failure (same reason and message)."""
        consensus = exc.reason not in _NOT_MISBEHAVIOUR
        return cls(exc.reason, exc.message, consensus=consensus)


@dataclass(frozen=True, slots=True)
class MempoolEntry:
    """One accepted transaction."""

    tx: Tx
    """The transaction."""
    txid: bytes
    """Its txid."""
    fee: int
    """Native-coin fee in base units."""
    size: int
    """Encoded size in bytes."""
    fee_rate: int
    """``fee * 1000 // size``: base units per 1000 bytes."""
    time: int
    """Unix time (seconds) it entered the pool."""
    height: int
    """Chain tip height when it entered the pool."""


@dataclass(slots=True)
class Prepared:
    """A tx of a batch that passed every rule but its signatures."""

    index: int
    tx: Tx
    fee: int
    checks: list[SigCheck]


def failing_signatures(prepared: list[Prepared], verifier: Verifier) -> set[int]:
    """Batch indexes of the txs in ``prepared`` whose signatures fail.

    One verifier call when all pass; otherwise the failing tx named by the
    verifier is set aside and the rest is split in halves (so a batch full
    of bad signatures costs O(n log n) checks, not O(n²))."""
    failed: set[int] = set()
    first = [p for p in prepared if p.checks]
    groups = [first] if first else []
    while groups:
        chunk = groups.pop()
        checks: list[SigCheck] = []
        owners: list[Prepared] = []
        for p in chunk:
            checks.extend(p.checks)
            owners.extend([p] * len(p.checks))
        bad = verifier(checks)
        if bad is None:
            continue
        culprit = owners[bad]
        failed.add(culprit.index)
        rest = [p for p in chunk if p is not culprit]
        if len(rest) > 1:
            half = len(rest) // 2
            groups.extend([rest[:half], rest[half:]])
        elif rest:
            groups.append(rest)
    return failed


class BatchView:
    """The mempool view extended with the txs of a batch that passed so far
    (only asked about outpoints no mempool or batch tx spends).

    ``unspent`` is the pool's view without the spent check; a batch tx's
    outputs are coins of the next block's height."""

    __slots__ = ("unspent", "chain", "txs")

    def __init__(self, unspent: Callable[[Outpoint], Coin | None], chain: ChainView,
                 txs: dict[bytes, Tx]) -> None:
        self.unspent = unspent
        self.chain = chain
        self.txs = txs

    def get(self, outpoint: Outpoint) -> Coin | None:
        tx = self.txs.get(outpoint.txid)
        if tx is None:
            return self.unspent(outpoint)
        if outpoint.index < len(tx.outputs):
            return Coin(tx.outputs[outpoint.index], self.chain.height + 1, False)
        return None

"""Wire format of compact block relay (protocol version 2; see :mod:`.messages`).

A block the receiver asks for with a ``getdata`` item of kind
:data:`INV_CMPCT_BLOCK` is answered with a ``cmpctblock``: its header, the
txids of its transactions (all but the prefilled ones, in block order), the
prefilled transactions with their index in the block (at least the first one,
the fee claim), and its finality votes and evidence in full.  The receiver
fills in the rest from its mempool and asks for what it lacks with
``getblocktxn``; the answer, ``blocktxn``, carries exactly those transactions
in the order asked.  Txids (not wtxids) are used, as the mempool is keyed by
them: a mempool copy with other witnesses makes the rebuilt block's merkle
root differ from the header's, and the receiver then asks for the full block.

Layouts::

    cmpctblock   header  n_txid:varint(≤MAX_BLOCK_TXS) txid:32 × n_txid
                 n_prefilled:varint(≤MAX_PREFILLED) (index:varint tx) × n_prefilled
                 n_vote:varint(≤MAX_BLOCK_VOTES) vote × n_vote
                 n_evidence:varint(≤MAX_BLOCK_EVIDENCE) evidence × n_evidence
    getblocktxn  block_hash:32 n:varint(≤MAX_BLOCKTXN) index:varint × n
    blocktxn     block_hash:32 n:varint(≤MAX_BLOCKTXN) tx × n

Prefilled indexes and ``getblocktxn`` indexes are absolute positions in the
block, strictly increasing; prefilled indexes are below
``n_txid + n_prefilled``, which is at most MAX_BLOCK_TXS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from o2ocli.core.block import Block, BlockHeader
from o2ocli.core.encoding import DecodeError, Reader, Writer
from o2ocli.core.finality import Evidence, FinalityVote
from o2ocli.core.limits import MAX_BLOCK_EVIDENCE, MAX_BLOCK_TXS, MAX_BLOCK_VOTES
from o2ocli.core.tx import Tx

__all__ = [
    "INV_CMPCT_BLOCK",
    "MAX_PREFILLED",
    "MAX_BLOCKTXN",
    "CmpctBlock",
    "GetBlockTxn",
    "BlockTxn",
    "compact_block",
]

INV_CMPCT_BLOCK = 3
"""``getdata``/``notfound`` item kind: the block in compact form (protocol 2)."""
MAX_PREFILLED = 10_000
MAX_BLOCKTXN = 50_000
"""Most transactions asked for in one ``getblocktxn`` (more missing: the full
block is asked for instead)."""


def _indexes(r: Reader, n: int, bound: int, what: str) -> list[int]:
    out: list[int] = []
    for _ in range(n):
        index = r.varint(what)
        if index >= bound:
            raise DecodeError(f"{what} {index} out of range")
        if out and index <= out[-1]:
            raise DecodeError(f"{what}es not strictly increasing")
        out.append(index)
    return out


@dataclass(frozen=True, slots=True)
class CmpctBlock:
    """A block as its header, txids and a few prefilled transactions."""

    TYPE: ClassVar[int] = 16
    header: BlockHeader
    txids: tuple[bytes, ...]
    prefilled: tuple[tuple[int, Tx], ...]
    votes: tuple[FinalityVote, ...] = ()
    evidence: tuple[Evidence, ...] = ()
    _raw: bytes | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def tx_count(self) -> int:
        """Transactions in the block."""
        return len(self.txids) + len(self.prefilled)

    def to_bytes(self) -> bytes:
        """The payload (cached: one encoding serves every peer)."""
        cached = self._raw
        if cached is None:
            w = Writer()
            self.header.encode(w)
            w.varint(len(self.txids))
            for txid in self.txids:
                w.raw(txid)
            w.varint(len(self.prefilled))
            for index, tx in self.prefilled:
                w.varint(index)
                tx.encode(w)
            w.varint(len(self.votes))
            for vote in self.votes:
                vote.encode(w)
            w.varint(len(self.evidence))
            for ev in self.evidence:
                ev.encode(w)
            cached = w.getvalue()
            object.__setattr__(self, "_raw", cached)
        return cached

    def encode(self, w: Writer) -> None:
        w.raw(self.to_bytes())

    @classmethod
    def decode(cls, r: Reader) -> CmpctBlock:
        header = BlockHeader.decode(r)
        n = r.count("txid", MAX_BLOCK_TXS)
        txids = tuple(r.raw(32, "txid") for _ in range(n))
        k = r.count("prefilled tx", min(MAX_PREFILLED, MAX_BLOCK_TXS - n))
        prefilled = []
        for _ in range(k):
            (index,) = _indexes(r, 1, n + k, "prefilled index")
            if prefilled and index <= prefilled[-1][0]:
                raise DecodeError("prefilled indexes not strictly increasing")
            prefilled.append((index, Tx.decode(r)))
        votes = tuple(FinalityVote.decode(r) for _ in range(r.count("vote", MAX_BLOCK_VOTES)))
        evidence = tuple(Evidence.decode(r)
                         for _ in range(r.count("evidence", MAX_BLOCK_EVIDENCE)))
        return cls(header, txids, tuple(prefilled), votes, evidence)


@dataclass(frozen=True, slots=True)
class GetBlockTxn:
    """Ask for some transactions of a block (by index), after a ``cmpctblock``."""

    TYPE: ClassVar[int] = 17
    block_hash: bytes
    indexes: tuple[int, ...]

    def encode(self, w: Writer) -> None:
        w.raw(self.block_hash)
        w.varint(len(self.indexes))
        for index in self.indexes:
            w.varint(index)

    @classmethod
    def decode(cls, r: Reader) -> GetBlockTxn:
        block_hash = r.raw(32, "block hash")
        n = r.count("index", MAX_BLOCKTXN)
        return cls(block_hash, tuple(_indexes(r, n, MAX_BLOCK_TXS, "index")))


@dataclass(frozen=True, slots=True)
class BlockTxn:
    """The transactions a ``getblocktxn`` asked for, in its order."""

    TYPE: ClassVar[int] = 18
    block_hash: bytes
    txs: tuple[Tx, ...]

    def encode(self, w: Writer) -> None:
        w.raw(self.block_hash)
        w.varint(len(self.txs))
        for tx in self.txs:
            tx.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> BlockTxn:
        block_hash = r.raw(32, "block hash")
        n = r.count("tx", MAX_BLOCKTXN)
        return cls(block_hash, tuple(Tx.decode(r) for _ in range(n)))


def compact_block(block: Block, prefill: tuple[int, ...] = (0,)) -> CmpctBlock:
    """The compact form of ``block`` with the transactions at ``prefill`` sent in full."""
    chosen = sorted({i for i in prefill if 0 <= i < len(block.txs)})
    keep = set(chosen)
    return CmpctBlock(
        block.header,
        tuple(tx.txid for i, tx in enumerate(block.txs) if i not in keep),
        tuple((i, block.txs[i]) for i in chosen),
        block.votes,
        block.evidence,
    )

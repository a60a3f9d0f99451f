"""The UTXO set commitment: a MuHash3072 of the set, kept per block.

Every coin of the UTXO set is one element of a multiset hash
(:class:`~o2ocli.crypto.muhash.MuHash3072`)::

    element = txid (32) ‖ output index (u32 big-endian) ‖ Coin encoding

which is exactly the UTXO key without its ``u`` prefix followed by the stored
value (``docs/protocol.rst``, *UTXO set commitment*).  Connecting a block
multiplies in the coins it creates and divides out the coins it spends, so the
commitment after a block is a function of the UTXO set alone: two nodes with
the same set have the same hash whatever history (reorgs, reindexes) led there.

The record after each main-chain block is stored under ``c`` ‖ block hash, in
the batch that connects the block, and deleted in the batch that disconnects
it (the parent's record, untouched, is then the tip's: a disconnect hashes
nothing).  ``chain info`` is one read and one modular inverse, at any height.

Record encoding::

    MuHash state (768: numerator ‖ denominator, 384 bytes LE each)
    ‖ coin count u64 BE ‖ asset count varint
    ‖ (asset id (32) ‖ total u128 BE) per asset with a non-zero total, by asset id
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from o2ocli.core.encoding import DecodeError, Reader, Writer
from o2ocli.core.tx import Coin, Outpoint
from o2ocli.crypto.muhash import NUM_BYTES, MuHash3072, RecentNumbers

from . import schema as k
from .blockindex import IndexEntry
from .db import Database

__all__ = [
    "UtxoCommitment",
    "UtxoVerification",
    "coin_element",
    "commitment_after",
    "scan_commitment",
    "start_commitment",
    "verify_utxo_set",
]

_STATE_BYTES = 2 * NUM_BYTES
SCAN_CHUNK = 4096
"""Elements hashed per multiplication batch in a full scan."""
RECENT_COINS = 8192
"""Coins created by the last blocks connected whose MuHash numbers are kept
(about 5 MB), so spending one soon after costs a multiplication only."""
_recent = RecentNumbers(RECENT_COINS)


def coin_element(outpoint: Outpoint, coin: Coin) -> bytes:
    """The MuHash element of one unspent coin: its UTXO key body (the
    outpoint) ‖ its encoding (:meth:`~o2ocli.core.tx.Coin.to_bytes`)."""
    return outpoint.txid + outpoint.index.to_bytes(4, "big") + coin.to_bytes()


@dataclass(slots=True)
class UtxoCommitment:
    """The UTXO set's MuHash state, coin count and per-asset totals."""

    muhash: MuHash3072
    count: int
    totals: dict[bytes, int]

    @classmethod
    def empty(cls) -> UtxoCommitment:
        """The commitment of the empty set."""
        return cls(MuHash3072(), 0, {})

    @property
    def hash(self) -> bytes:
        """The 32-byte set hash (MuHash3072 digest)."""
        return self.muhash.digest()

    def to_bytes(self) -> bytes:
        """The stored record (see the module docstring)."""
        w = Writer()
        w.raw(self.muhash.to_bytes())
        w.raw(self.count.to_bytes(8, "big"))
        assets = sorted(a for a, total in self.totals.items() if total)
        w.varint(len(assets))
        for asset in assets:
            w.raw(asset)
            w.raw(self.totals[asset].to_bytes(16, "big"))
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> UtxoCommitment:
        """Inverse of :meth:`to_bytes` (raises :class:`DecodeError`)."""
        r = Reader(data)
        try:
            muhash = MuHash3072.from_bytes(r.raw(_STATE_BYTES, "commitment state"))
        except ValueError as exc:  # pragma: no cover - the length is checked by raw()
            raise DecodeError(str(exc)) from None
        count = int.from_bytes(r.raw(8, "commitment count"), "big")
        totals = {}
        for _ in range(r.count("commitment asset", 10_000_000)):
            asset = r.raw(32, "commitment asset id")
            totals[asset] = int.from_bytes(r.raw(16, "commitment total"), "big")
        r.finish("utxo commitment")
        return cls(muhash, count, totals)

    def apply(
        self,
        spent: Iterable[tuple[Outpoint, Coin]],
        created: Iterable[tuple[Outpoint, Coin]],
        recent: RecentNumbers | None = None,
    ) -> UtxoCommitment:
        """A new commitment: this one without ``spent`` and with ``created``
        (``recent``: see :meth:`MuHash3072.update`)."""
        added, removed, totals = _elements(self.totals, spent, created)
        muhash = MuHash3072(self.muhash.numerator, self.muhash.denominator)
        muhash.update(added, removed, recent)
        return UtxoCommitment(muhash, self.count + len(added) - len(removed), totals)


def _elements(
    totals: dict[bytes, int],
    spent: Iterable[tuple[Outpoint, Coin]],
    created: Iterable[tuple[Outpoint, Coin]],
) -> tuple[list[bytes], list[bytes], dict[bytes, int]]:
    """The added and removed elements, and the per-asset totals after."""
    totals = dict(totals)
    get = totals.get
    removed = []
    for outpoint, coin in spent:
        removed.append(coin_element(outpoint, coin))
        out = coin.output
        totals[out.asset] = get(out.asset, 0) - out.amount
    added = []
    for outpoint, coin in created:
        added.append(coin_element(outpoint, coin))
        out = coin.output
        totals[out.asset] = get(out.asset, 0) + out.amount
    return added, removed, {a: t for a, t in totals.items() if t}


class ProductJob(Protocol):
    def result(self) -> tuple[int, int]: ...


def commitment_after(
    parent: bytes | None,
    spent: Iterable[tuple[Outpoint, Coin]],
    created: Iterable[tuple[Outpoint, Coin]],
) -> bytes:
    """The record after a block that spends ``spent`` and creates ``created``
    on top of the ``parent`` record (None: the empty set, for genesis).  The
    numbers of the last :data:`RECENT_COINS` coins created are kept for when
    they are spent (a pure function of the coin: any block may use them)."""
    return start_commitment(parent, spent, created)()


OFFLOAD_MIN = 64
"""Elements below which a block's products are computed on the calling
thread even when a worker could take them (a round trip costs more)."""


def start_commitment(
    parent: bytes | None,
    spent: Iterable[tuple[Outpoint, Coin]],
    created: Iterable[tuple[Outpoint, Coin]],
    offload: Callable[[list[bytes], list[bytes]], ProductJob | None] | None = None,
) -> Callable[[], bytes]:
    """:func:`commitment_after` in two steps: the parent record is decoded
    (raising :class:`DecodeError`) and the elements built now, and with
    ``offload`` (e.g. :meth:`~o2ocli.crypto.batch.ProcessVerifier.muhash`)
    their MuHash products go to a worker process; the returned function
    gives the record, waiting for the worker if it has not answered yet.
    Either way the record is the same (the products are a pure function of
    the elements)."""
    base = UtxoCommitment.empty() if parent is None else UtxoCommitment.from_bytes(parent)
    added, removed, totals = _elements(base.totals, spent, created)
    count = base.count + len(added) - len(removed)
    job = None
    if offload is not None and len(added) + len(removed) >= OFFLOAD_MIN:
        job = offload(added, removed)

    def finish() -> bytes:
        muhash = MuHash3072(base.muhash.numerator, base.muhash.denominator)
        if job is None:
            muhash.update(added, removed, _recent)
        else:
            muhash.update_products(*job.result())
        return UtxoCommitment(muhash, count, totals).to_bytes()

    return finish


def scan_commitment(entries: Iterator[tuple[bytes, bytes]]) -> UtxoCommitment:
    """The commitment of a UTXO set read in full: ``entries`` are (key without
    its prefix, stored coin) pairs.  Raises :class:`DecodeError` on a coin that
    does not decode."""
    muhash = MuHash3072()
    count = 0
    totals: dict[bytes, int] = {}
    chunk: list[bytes] = []
    for body, value in entries:
        try:
            coin = Coin.from_bytes(value)
        except DecodeError as exc:
            where = f"{body[:32].hex()}:{int.from_bytes(body[32:], 'big')}"
            raise DecodeError(f"coin {where}: {exc}") from None
        out = coin.output
        totals[out.asset] = totals.get(out.asset, 0) + out.amount
        chunk.append(body + value)
        count += 1
        if len(chunk) >= SCAN_CHUNK:
            muhash.update(chunk, [])
            chunk = []
    muhash.update(chunk, [])
    return UtxoCommitment(muhash, count, {a: t for a, t in totals.items() if t})


@dataclass(frozen=True, slots=True)
class UtxoVerification:
    """The stored commitment of the tip against a full scan of the UTXO set."""

    height: int
    tip: bytes
    stored: UtxoCommitment | None
    """The tip's stored record (None if missing or unreadable)."""
    scanned: UtxoCommitment | None
    """The full scan's result (None if a coin did not decode)."""
    error: str | None
    """Why they disagree (None when they agree)."""
    seconds: float

    @property
    def ok(self) -> bool:
        """True if the stored commitment equals the full scan."""
        return self.error is None


def verify_utxo_set(db: Database) -> UtxoVerification:
    """Recompute the UTXO set commitment from a full scan and compare it with
    the tip's stored record (hash, coin count and per-asset totals).  Reads one
    snapshot, so blocks connected meanwhile do not disturb it (safe to run in a
    thread while the node runs)."""
    started = time.monotonic()
    with db.snapshot() as snap:
        tip = snap.get(k.META_TIP) or b""
        entry_data = snap.get(k.index_key(tip))
        height = IndexEntry.from_bytes(entry_data).height if entry_data else -1
        record = snap.get(k.commit_key(tip))
        stored = None
        error = None
        if record is None:
            error = f"no UTXO commitment is stored for the tip {tip.hex()}"
        else:
            try:
                stored = UtxoCommitment.from_bytes(record)
            except DecodeError as exc:
                error = f"the stored UTXO commitment of the tip is unreadable: {exc}"
        entries = ((key[1:], value) for key, value in snap.iterator(prefix=k.UTXO))
        try:
            scanned: UtxoCommitment | None = scan_commitment(entries)
        except DecodeError as exc:
            scanned = None
            error = error or f"a coin of the UTXO set does not decode: {exc}"
    if error is None and stored is not None and scanned is not None:
        if stored.hash != scanned.hash:
            error = (f"stored hash {stored.hash.hex()} != full-scan hash {scanned.hash.hex()} "
                     f"({stored.count} outputs recorded, {scanned.count} scanned)")
        elif (stored.count, stored.totals) != (scanned.count, scanned.totals):
            error = "the stored coin count or totals differ from the full scan"
    return UtxoVerification(height, tip, stored, scanned, error,
                            time.monotonic() - started)

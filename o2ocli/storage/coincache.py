"""A write-back cache of the chainstate in front of LevelDB (the UTXO cache).

Model: Bitcoin Core's ``CCoinsViewCache``.  Connecting a block does not write
the UTXO set, its indexes and the tip pointer to LevelDB; it records them in
memory (:meth:`CachedDatabase.cached_batch`).  Readers (the chainstate's
consensus checks, the mempool, RPC) read through the cache: a key found in the
cache wins (a ``None`` there is a deletion not yet written), anything else is
read from LevelDB, and prefix iteration merges the two in key order.

:meth:`CachedDatabase.flush` writes every cached change **and the tip pointer
they belong to** in one synced LevelDB batch, so the database on disk always
holds the UTXO set of its own tip: the same atomicity as writing each block's
batch, only less often.  The blocks themselves, their index entries and the
best-block marker are still written (fsync'd) when they arrive
(:meth:`CachedDatabase.write_batch`), so after a crash the chainstate reopens at
the last flushed tip and reconnects the stored blocks above it.

Entry flags, as in Core: every cached entry is *dirty* (it differs from the
disk); an entry is also *fresh* when the disk is known not to have the key.  A
fresh entry that is deleted is simply forgotten, so a coin created and spent
between two flushes never touches the disk.  Only UTXO keys (the set and its
address and asset indexes, :data:`FRESH_PREFIXES`) are marked fresh: a coin is
only ever created where no unspent coin exists (txids are unique: inputs are
spent once, and a fee claim commits to its height), so a UTXO key absent from
the cache is absent from the disk too, or deleted there by an earlier write.

Size: :attr:`CachedDatabase.usage` estimates the cache's memory, counting
each entry's key and value bytes plus :data:`ENTRY_OVERHEAD` (Python object
headers and the dict slot, measured on CPython 3.11/64-bit); the owner
flushes when it passes :attr:`CachedDatabase.limit`.

Background flush (:meth:`CachedDatabase.flush_in_background`, what the owner
calls when the cache is over its limit): the cached entries are handed over,
as they are, to an immutable *flushing layer*, and one writer thread writes
that layer as one synced batch (which holds the ``META_TIP`` put of the
layer's tip, so LevelDB, which applies a batch atomically, still holds the
UTXO set of its own tip at every moment); the live cache starts empty and
the next blocks connect meanwhile.  Reads go live cache → flushing layer →
disk, and iteration merges the three in key order (a None in a newer layer
hides the key).  The layer is dropped by the writer once its batch is on
disk; a reader that still sees it reads the same values the disk now holds.
The writer builds the batch under the GIL (a Python loop of plyvel ``put``
calls: a quarter to a third of a synchronous flush, e.g. 0.13 s of 0.5 s for
a full 150 MB cache, see ``benchmarks/scale.py``), so connecting shares the
interpreter with it that long; plyvel writes the batch with the GIL released.

* At most one flush runs: handing over again while one is running first
  waits for it.  The memory bound is therefore twice the limit in the worst
  case (the live cache refilled before the previous layer is written, i.e.
  connecting outruns the disk); usually the layer is written within a block
  or two.  Measured with ``benchmarks/scale.py`` (peak RSS, before → after):
  371-373 → 388-396 MiB at ``--dbcache 200``, 173-174 → 221-223 MiB at 50.
  Handing over at half the limit instead kept the peak at or below the old
  one (309, 172 MiB) but doubled the flushes, and in ``benchmarks/connect.py``
  (coins spent a block after they are created) the writer's time grew by
  half (2.0-2.3 s against 1.1-1.8 s): more coins reach the disk before they
  are spent.  The hand-over is at the limit; ``node start --dbcache`` says so.
* Fresh flags stay right if "the disk" reads "the flushing layer over the
  disk", i.e. what the disk holds once the running flush is written.  The
  live cache starts with no fresh flags (one carried over would be wrong: a
  coin of the layer spent, restored by a disconnect and spent again in the
  live cache would be forgotten, and the layer's put would stay on disk).
  A coin put into the live cache where it has no entry is absent from the
  layer and the disk, or deleted there (the uniqueness argument above), so
  once the running flush is written the disk does not have it: forgetting
  it when the live cache deletes it again is right.  A coin the layer
  creates and the live cache then spends has no live entry when spent, so
  the spend is recorded as a deletion (only a key with a live entry is ever
  forgotten), which the next flush writes.
* A direct write (:meth:`CachedDatabase.write_batch`: blocks, index
  entries, the best-block marker) must not be overwritten by the older value
  a running flush holds: a key written directly that is in the flushing
  layer first waits for that flush (none is today: those key spaces are
  never cached, but the guard costs one dict lookup).
* :meth:`CachedDatabase.flush` (shutdown, ``chain verify-utxo``) and
  :meth:`CachedDatabase.close` wait for the running flush, then write the
  rest synchronously.  A writer that fails leaves its layer in place (the
  disk keeps the previous flush, batches being atomic) and logs the error;
  from then on every write (cached or direct), flush, wait, close and every
  read the live cache cannot answer raises :class:`FlushFailed` with the
  error as its cause, so no block connects on a half-written state (a read
  the live cache answers is still right and is answered).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import schema as k
from .db import Database, DatabaseError, leveldb_options, lower_compaction_priority

__all__ = [
    "CachedDatabase",
    "CacheBatch",
    "DEFAULT_DBCACHE_MB",
    "ENTRY_OVERHEAD",
    "FRESH_PREFIXES",
    "FlushFailed",
    "leveldb_options",
]

DEFAULT_DBCACHE_MB = 200
"""``node start --dbcache`` default (MiB): the write-back cache plus LevelDB's
block cache, sized for a small machine."""

ENTRY_OVERHEAD = 180
"""Estimated bytes of one cached entry beyond its key and value lengths: two
bytes objects' headers (2 × 33), the dict slot at the dict's usual load
(~ 60), the fresh-set slot (~ 30) and allocator rounding.  Measured with
``benchmarks/scale.py`` (RSS growth / entries) at about 170-190 B."""

FRESH_PREFIXES = frozenset(k.UTXO + k.ADDR_UTXO + k.ASSET_UTXO)
"""First bytes of the keys that may be marked fresh (see the module docstring)."""

_MISSING = object()

log = logging.getLogger("o2ocli.coincache")


class FlushFailed(DatabaseError):
    """A background flush of the UTXO cache failed (its cause is the error)."""


class _Layer:
    """Cached entries handed over to a background flush (never changed)."""

    __slots__ = ("spaces", "usage", "entries")

    def __init__(self, spaces: dict[int, dict[bytes, bytes | None]], usage: int,
                 entries: int) -> None:
        self.spaces = spaces
        self.usage = usage
        self.entries = entries


class CacheBatch:
    """The changes of one block, applied to the cache only if the ``with``
    block of :meth:`CachedDatabase.cached_batch` exits normally."""

    __slots__ = ("ops",)

    def __init__(self) -> None:
        self.ops: list[tuple[bytes, bytes | None] | tuple[None, dict[bytes, bytes]]] = []

    def put(self, key: bytes, value: bytes) -> None:
        self.ops.append((key, value))

    def delete(self, key: bytes) -> None:
        self.ops.append((key, None))

    def put_many(self, items: dict[bytes, bytes]) -> None:
        """Put every (key, value) of ``items`` (keys sharing their first
        byte), in order after the changes before; the dict is kept, not copied."""
        if items:
            self.ops.append((None, items))


class _DirectBatch:
    """A LevelDB batch that also drops the keys it writes from the cache."""

    __slots__ = ("_batch", "_cache")

    def __init__(self, batch: Any, cache: CachedDatabase) -> None:
        self._batch = batch
        self._cache = cache

    def put(self, key: bytes, value: bytes) -> None:
        self._cache._forget(key)
        self._batch.put(key, value)

    def delete(self, key: bytes) -> None:
        self._cache._forget(key)
        self._batch.delete(key)


class CachedDatabase:
    """A :class:`~o2ocli.storage.db.Database` with a write-back cache of at
    most ``limit`` bytes (estimated) in front of it.

    Same read interface as the database (``get``, ``iterate``,
    ``iterate_keys``); :meth:`write_batch` writes through to disk at once,
    :meth:`cached_batch` only to the cache until :meth:`flush`.
    """

    def __init__(self, db: Database, limit: int) -> None:
        self.db = db
        self.limit = limit
        self._spaces: dict[int, dict[bytes, bytes | None]] = {}
        """First key byte → (key → value, or None for a pending deletion)."""
        self._fresh: set[bytes] = set()
        self.usage = 0
        """Estimated bytes held (see :data:`ENTRY_OVERHEAD`)."""
        self.entries = 0
        self.flushes = 0
        self.flush_seconds = 0.0
        """Time spent writing flushes so far (for benchmarks and logs)."""
        self.build_seconds = 0.0
        """The part of :attr:`flush_seconds` spent building batches (under the GIL)."""
        self.wait_seconds = 0.0
        """Time callers spent waiting for a background flush to finish."""
        self._flushing: _Layer | None = None
        """Entries a background flush is writing (read after the live cache)."""
        self._writer: threading.Thread | None = None
        self._error: BaseException | None = None

    # ------------------------------------------------------------------ reads
    def get(self, key: bytes) -> bytes | None:
        space = self._spaces.get(key[0])
        if space is not None:
            value = space.get(key, _MISSING)
            if value is not _MISSING:
                return value  # type: ignore[return-value]
        layer = self._flushing
        if layer is not None:
            if self._error is not None:
                self._raise_error()
            space = layer.spaces.get(key[0])
            if space is not None:
                value = space.get(key, _MISSING)
                if value is not _MISSING:
                    return value  # type: ignore[return-value]
        return self.db.get(key)

    def iterate(self, prefix: bytes, *, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs whose key starts with ``prefix``, in key order,
        the cache's changes merged into the disk's."""
        pending = self._pending(prefix, reverse)  # before the disk iterator (module doc)
        disk = self.db.iterate(prefix, reverse=reverse)
        if not pending:
            return disk
        return _merge(disk, pending, reverse)

    def iterate_keys(self, prefix: bytes) -> Iterator[bytes]:
        if not self._pending(prefix, False):
            return self.db.iterate_keys(prefix)
        return (key for key, _ in self.iterate(prefix))

    def _pending(self, prefix: bytes, reverse: bool) -> list[tuple[bytes, bytes | None]]:
        """The cached changes under ``prefix``, sorted: the live cache's over
        the flushing layer's."""
        layer = self._flushing
        if layer is None:
            found = _select(self._spaces, prefix)
        else:
            if self._error is not None:
                self._raise_error()
            merged = dict(_select(layer.spaces, prefix))
            merged.update(_select(self._spaces, prefix))
            found = list(merged.items())
        found.sort(reverse=reverse)
        return found

    # ----------------------------------------------------------------- writes
    @contextmanager
    def write_batch(self, *, sync: bool = True) -> Iterator[Any]:
        """A batch written to disk at once (blocks, index entries, markers)."""
        if self._error is not None:
            self._raise_error()
        with self.db.write_batch(sync=sync) as batch:
            yield _DirectBatch(batch, self)

    @contextmanager
    def cached_batch(self) -> Iterator[CacheBatch]:
        """A batch kept in the cache until the next :meth:`flush`; applied
        only if the ``with`` block exits normally."""
        if self._error is not None:
            self._raise_error()
        batch = CacheBatch()
        yield batch
        self._apply(batch.ops)

    def _apply(self, ops: list[Any]) -> None:
        spaces = self._spaces
        fresh = self._fresh
        fresh_prefixes = FRESH_PREFIXES
        usage = self.usage
        entries = self.entries
        for key, value in ops:
            if key is None:  # put_many: a group of keys with the same first byte
                items: dict[bytes, bytes] = value  # type: ignore[assignment]
                first = next(iter(items))[0]
                space = spaces.get(first)
                if space is None:
                    space = spaces[first] = {}
                if space.keys().isdisjoint(items):  # the common case: all new keys
                    space.update(items)
                    entries += len(items)
                    usage += (ENTRY_OVERHEAD * len(items) + sum(map(len, items))
                              + sum(map(len, items.values())))
                    if first in fresh_prefixes:
                        fresh.update(items)
                    continue
                self.usage, self.entries = usage, entries
                self._apply(list(items.items()))
                usage, entries = self.usage, self.entries
                continue
            first = key[0]
            space = spaces.get(first)
            if space is None:
                space = spaces[first] = {}
            old = space.get(key, _MISSING)
            if old is _MISSING:
                space[key] = value
                entries += 1
                usage += ENTRY_OVERHEAD + len(key) + (0 if value is None else len(value))
                if first in fresh_prefixes and value is not None:
                    fresh.add(key)
                continue
            old_len = 0 if old is None else len(old)  # type: ignore[arg-type]
            if value is None and key in fresh:
                # Created since the last flush and now deleted: never written.
                del space[key]
                fresh.discard(key)
                entries -= 1
                usage -= ENTRY_OVERHEAD + len(key) + old_len
                continue
            space[key] = value
            usage += (0 if value is None else len(value)) - old_len
        self.usage = usage
        self.entries = entries

    def _forget(self, key: bytes) -> None:
        layer = self._flushing
        if layer is not None and key in layer.spaces.get(key[0], ()):
            self.wait()  # else the running flush would overwrite this newer value
        space = self._spaces.get(key[0])
        if space is None:
            return
        old = space.pop(key, _MISSING)
        if old is not _MISSING:
            self._fresh.discard(key)
            self.entries -= 1
            self.usage -= ENTRY_OVERHEAD + len(key) + (0 if old is None else len(old))  # type: ignore[arg-type]

    @property
    def over_limit(self) -> bool:
        """True once the cache holds more than :attr:`limit` bytes (the live
        cache: a layer being flushed in the background is not counted)."""
        return self.usage > self.limit

    def flush(self) -> int:
        """Write every cached change to disk in one synced batch, then empty
        the cache; a running background flush is waited for first.  Returns
        the number of keys written (by this call)."""
        self.wait()
        if not self.entries:
            return 0
        start = time.perf_counter()
        written = self._write(self._spaces)
        self._spaces = {}
        self._fresh = set()
        self.usage = 0
        self.entries = 0
        self.flushes += 1
        self.flush_seconds += time.perf_counter() - start
        return written

    def flush_in_background(self) -> None:
        """Hand the cached entries over to a writer thread, which writes them
        in one synced batch while the cache starts empty (module docstring).
        Waits first for the previous background flush, if it still runs."""
        self.wait()
        if not self.entries:
            return
        layer = _Layer(self._spaces, self.usage, self.entries)
        self._spaces = {}
        self._fresh = set()  # fresh flags described the disk under the layer
        self.usage = 0
        self.entries = 0
        self._flushing = layer
        writer = threading.Thread(target=self._write_layer, args=(layer,),
                                  name="utxo-cache-flush", daemon=True)
        self._writer = writer
        writer.start()

    def wait(self) -> None:
        """Wait for the running background flush, if any; raise
        :class:`FlushFailed` if it (or an earlier one) failed."""
        writer = self._writer
        if writer is not None:
            start = time.perf_counter()
            writer.join()
            self.wait_seconds += time.perf_counter() - start
            self._writer = None
        if self._error is not None:
            self._raise_error()

    @property
    def flushing(self) -> bool:
        """True while a background flush holds entries not yet on disk."""
        return self._flushing is not None

    def _write_layer(self, layer: _Layer) -> None:
        """The writer thread's body."""
        start = time.perf_counter()
        try:
            self._before_write()
            self._write(layer.spaces)
        except BaseException as exc:  # noqa: BLE001 - kept and raised on the owner's next call
            log.error("background flush of the UTXO cache failed; the node must stop "
                      "(the database keeps the previous flush's tip)", exc_info=exc)
            self._error = exc
            return
        self.flushes += 1
        self.flush_seconds += time.perf_counter() - start
        self._flushing = None  # its batch is on disk: readers may go there now

    def _before_write(self) -> None:
        """Called on the writer thread before it writes (a hook for tests)."""

    def _write(self, spaces: dict[int, dict[bytes, bytes | None]]) -> int:
        start = time.perf_counter()
        written = 0
        with self.db.write_batch() as batch:
            put = batch.put
            delete = batch.delete
            for space in spaces.values():
                for key, value in space.items():
                    if value is None:
                        delete(key)
                    else:
                        put(key, value)
                    written += 1
            self.build_seconds += time.perf_counter() - start
        lower_compaction_priority()  # LevelDB's thread exists once a flush has filled a memtable
        return written

    def _raise_error(self) -> None:
        error = self._error
        raise FlushFailed(f"a background flush of the UTXO cache failed: {error!r}") from error

    # ------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Flush (after the running background flush), then close the database;
        the database is closed even if a flush failed (the error is raised)."""
        if not self.db.closed:
            try:
                self.flush()
            finally:
                writer = self._writer
                if writer is not None:  # only if flush() did not get to wait
                    writer.join()
                self.db.close()

    @property
    def closed(self) -> bool:
        return self.db.closed


def _select(spaces: dict[int, dict[bytes, bytes | None]],
            prefix: bytes) -> list[tuple[bytes, bytes | None]]:
    """The (key, value) entries of ``spaces`` whose key starts with ``prefix``."""
    if prefix:
        space = spaces.get(prefix[0])
        return [] if space is None else [
            (key, value) for key, value in space.items() if key.startswith(prefix)]
    return [item for space in spaces.values() for item in space.items()]


def _merge(
    disk: Iterator[tuple[bytes, bytes]],
    pending: list[tuple[bytes, bytes | None]],
    reverse: bool,
) -> Iterator[tuple[bytes, bytes]]:
    """Merge sorted ``disk`` pairs with sorted cached ``pending`` ones (which
    win on equal keys; a None value hides the key)."""
    i = 0
    n = len(pending)
    for key, value in disk:
        while i < n and (pending[i][0] > key if reverse else pending[i][0] < key):
            p_key, p_value = pending[i]
            i += 1
            if p_value is not None:
                yield p_key, p_value
        if i < n and pending[i][0] == key:
            p_value = pending[i][1]
            i += 1
            if p_value is not None:
                yield key, p_value
            continue
        yield key, value
    for p_key, p_value in pending[i:]:
        if p_value is not None:
            yield p_key, p_value

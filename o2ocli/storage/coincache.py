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
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import schema as k
from .db import Database

__all__ = [
    "CachedDatabase",
    "CacheBatch",
    "DEFAULT_DBCACHE_MB",
    "ENTRY_OVERHEAD",
    "FRESH_PREFIXES",
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


def leveldb_options(dbcache_mb: int) -> dict[str, Any]:
    """plyvel options for the chain database given ``--dbcache`` (MiB).

    A bloom filter (10 bits a key, ~1 % false positives) lets a point read of
    an absent key skip the data block; the block cache gets a quarter of the
    budget (at least 8 MiB, plyvel's default); a 32 MiB write buffer makes
    fewer, larger level-0 files; 16 KiB blocks halve the index size at scale.
    See ``benchmarks/scale.py`` for what each did.
    """
    mib = 1 << 20
    return {
        "bloom_filter_bits": 10,
        "lru_cache_size": max(8 * mib, dbcache_mb * mib // 4),
        "write_buffer_size": 32 * mib,
        "block_size": 16 * 1024,
    }


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

    # ------------------------------------------------------------------ reads
    def get(self, key: bytes) -> bytes | None:
        space = self._spaces.get(key[0])
        if space is not None:
            value = space.get(key, _MISSING)
            if value is not _MISSING:
                return value  # type: ignore[return-value]
        return self.db.get(key)

    def iterate(self, prefix: bytes, *, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs whose key starts with ``prefix``, in key order,
        the cache's changes merged into the disk's."""
        pending = self._pending(prefix, reverse)
        disk = self.db.iterate(prefix, reverse=reverse)
        if not pending:
            return disk
        return _merge(disk, pending, reverse)

    def iterate_keys(self, prefix: bytes) -> Iterator[bytes]:
        if not self._pending(prefix, False):
            return self.db.iterate_keys(prefix)
        return (key for key, _ in self.iterate(prefix))

    def _pending(self, prefix: bytes, reverse: bool) -> list[tuple[bytes, bytes | None]]:
        if prefix:
            spaces = [self._spaces.get(prefix[0]) or {}]
        else:
            spaces = list(self._spaces.values())
        found = [
            (key, value)
            for space in spaces
            for key, value in space.items()
            if key.startswith(prefix)
        ]
        found.sort(reverse=reverse)
        return found

    # ----------------------------------------------------------------- writes
    @contextmanager
    def write_batch(self, *, sync: bool = True) -> Iterator[Any]:
        """A batch written to disk at once (blocks, index entries, markers)."""
        with self.db.write_batch(sync=sync) as batch:
            yield _DirectBatch(batch, self)

    @contextmanager
    def cached_batch(self) -> Iterator[CacheBatch]:
        """A batch kept in the cache until the next :meth:`flush`; applied
        only if the ``with`` block exits normally."""
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
        """True once the cache holds more than :attr:`limit` bytes."""
        return self.usage > self.limit

    def flush(self) -> int:
        """Write every cached change to disk in one synced batch, then empty
        the cache.  Returns the number of keys written."""
        if not self.entries:
            return 0
        start = time.perf_counter()
        written = 0
        with self.db.write_batch() as batch:
            put = batch.put
            delete = batch.delete
            for space in self._spaces.values():
                for key, value in space.items():
                    if value is None:
                        delete(key)
                    else:
                        put(key, value)
                    written += 1
        self._spaces.clear()
        self._fresh.clear()
        self.usage = 0
        self.entries = 0
        self.flushes += 1
        self.flush_seconds += time.perf_counter() - start
        return written

    # ------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Flush, then close the database."""
        if not self.db.closed:
            self.flush()
            self.db.close()

    @property
    def closed(self) -> bool:
        return self.db.closed


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

"""A small storage interface over LevelDB (plyvel).

Contract: all state changes go through :meth:`Database.write_batch`, a context
manager.  The batch is committed **only** when the ``with`` block exits without
an exception, and it is written with ``sync=True`` (fsync'd) so that a crash
after ``write_batch`` returns cannot lose it.  A crash before leaves the
previous state untouched.  LevelDB applies a batch atomically.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import plyvel

from o2ocli.fsmodes import make_private_dir, private_umask

from .dbswap import rebuild_keeping, recover

__all__ = [
    "COMPACTION_NICE",
    "Database",
    "DatabaseError",
    "DatabaseLocked",
    "leveldb_options",
    "lower_compaction_priority",
]


class DatabaseError(Exception):
    """The database could not be opened or used."""


class DatabaseLocked(DatabaseError):
    """Another process has the database open."""


class Database:
    """One LevelDB at ``path`` (created if missing, folder mode 0700).

    ``options`` are passed to ``plyvel.DB`` (tuning such as
    ``bloom_filter_bits`` or ``lru_cache_size``;
    :func:`~o2ocli.storage.coincache.leveldb_options` picks the chain database's).
    """

    def __init__(self, path: str | Path, *, create: bool = True, **options: Any) -> None:
        self.path = Path(path)
        self._options = options
        self._open(create)

    def _open(self, create: bool) -> None:
        try:
            recover(self.path)  # a key-space drop a crash interrupted (:mod:`.dbswap`)
            if create:
                make_private_dir(self.path)
            with private_umask():
                self._db = plyvel.DB(str(self.path), create_if_missing=create,
                                     **self._options)
        except plyvel.IOError as exc:
            if "lock" in str(exc).lower():
                raise DatabaseLocked(
                    f"database {self.path} is in use by another process"
                ) from None
            raise DatabaseError(f"cannot open database {self.path}: {exc}") from None
        except plyvel.Error as exc:
            raise DatabaseError(f"cannot open database {self.path}: {exc}") from None
        except BlockingIOError:
            raise DatabaseLocked(
                f"database {self.path} is being rebuilt by another process (node reindex)"
            ) from None
        except OSError as exc:
            raise DatabaseError(f"cannot open database {self.path}: {exc}") from None

    def get(self, key: bytes) -> bytes | None:
        """The value stored under ``key``, or None."""
        return self._db.get(key)

    def iterate(self, prefix: bytes, *, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs whose key starts with ``prefix``, in key order."""
        return self._db.iterator(prefix=prefix, reverse=reverse)

    def iterate_keys(self, prefix: bytes) -> Iterator[bytes]:
        """Keys starting with ``prefix``, in key order."""
        return self._db.iterator(prefix=prefix, include_value=False)

    @contextmanager
    def snapshot(self) -> Iterator[Any]:
        """A consistent read-only view (``get(k)``, ``iterator(prefix=…)``) of
        the database as it is now, unaffected by later writes (plyvel snapshot;
        usable from another thread)."""
        snap = self._db.snapshot()
        try:
            yield snap
        finally:
            snap.close()

    @contextmanager
    def write_batch(self, *, sync: bool = True) -> Iterator[Any]:
        """A batch (``put(k, v)`` / ``delete(k)``) committed atomically, with
        fsync unless ``sync=False`` (for data that may be lost in a power cut,
        like the peer address book), when the block exits normally; discarded
        on an exception."""
        with self._db.write_batch(transaction=True, sync=sync) as batch:
            yield batch

    def drop_key_spaces(self, first_bytes: frozenset[int],
                        step: Callable[[str], None] | None = None) -> None:
        """Delete every key whose first byte is in ``first_bytes``, at a cost
        that follows the bytes of the *other* keys: they are copied into a new
        directory that replaces this one (:func:`~o2ocli.storage.dbswap.rebuild_keeping`;
        crash-safe, but not atomic with other writes).  The database stays open."""
        rebuild_keeping(self.path, lambda first: self._db.iterator(prefix=bytes([first])),
                        first_bytes, close=self._db.close, step=step)
        self._open(create=False)

    def close(self) -> None:
        """Close the database (idempotent)."""
        if not self._db.closed:
            self._db.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._db.closed

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def leveldb_options(dbcache_mb: int) -> dict[str, Any]:
    """plyvel options for the chain database given ``--dbcache`` (MiB).

    A bloom filter (10 bits a key, ~1 % false positives) lets a point read of
    an absent key skip the data block; the block cache gets a quarter of the
    budget (at least 8 MiB, plyvel's default); a 32 MiB write buffer makes
    fewer, larger level-0 files; 16 KiB blocks halve the index size at scale.
    No compression and 32 MiB table files, as Bitcoin Core's chainstate:
    UTXO keys and values are mostly hashes, which Snappy barely shrinks, yet
    every compaction and every block read paid for it; fewer, larger files
    mean fewer files to pick from per read.  Together they made connect
    9-27 % faster per slice of ``benchmarks/scale.py --utxos 2000000``
    (0.5-2 M UTXOs) for about 30 % more bytes on disk per UTXO.
    See ``benchmarks/scale.py`` for what each did.
    """
    mib = 1 << 20
    return {
        "bloom_filter_bits": 10,
        "lru_cache_size": max(8 * mib, dbcache_mb * mib // 4),
        "write_buffer_size": 32 * mib,
        "block_size": 16 * 1024,
        "max_file_size": 32 * mib,
        "compression": None,
    }


COMPACTION_NICE = 10
"""How much nicer than the node LevelDB's background compaction thread runs
(at the node's niceness 0: weight 110 against block connect's 1024 when both
want a core; it still runs whenever a core is free)."""

_lowered: set[int] = set()


def lower_compaction_priority(nice: int | None = None) -> list[int]:
    """Run LevelDB's compaction at a lower CPU priority than block connect,
    as RocksDB's ``LowerThreadPoolCPUPriority`` does; returns the thread ids
    lowered by this call.

    Compaction is background work, but on two cores it competed on equal
    terms with the connecting thread and the signature worker, and its share
    grows with the database (``benchmarks/scale.py``'s "other" CPU: 0.8 s a
    slice at 0.25 M UTXOs, 3.5-6 s at 1-2 M).  LevelDB starts one detached
    native thread per process for it (plyvel starts no other), so the threads
    of this process (Linux: ``/proc/self/task``) that Python did not start
    are given the caller's niceness plus ``nice`` (at most 19).  A Python
    thread being started has a native thread before :mod:`threading` knows
    its id: while one is (``threading._limbo``,
    checked after the listing, so a thread started before it is either still
    there or already known), nothing is changed and the next call tries
    again; a Python thread lowered anyway is put back to the caller's
    niceness when seen (where the system allows it).  Elsewhere than Linux,
    nothing.  ``nice`` defaults to :data:`COMPACTION_NICE` (read at the call)."""
    if nice is None:
        nice = COMPACTION_NICE
    try:
        tids = {int(name) for name in os.listdir("/proc/self/task")}
    except (OSError, ValueError):
        return []
    if getattr(threading, "_limbo", None):
        return []
    python = {thread.native_id for thread in threading.enumerate()}
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    target = min(19, mine + nice)
    for tid in _lowered & python:  # a Python thread after all: put it back
        _lowered.discard(tid)
        try:
            os.setpriority(os.PRIO_PROCESS, tid, mine)
        except OSError:  # pragma: no cover - not ours to change
            pass
    _lowered.intersection_update(tids)  # ended threads
    changed = []
    for tid in sorted(tids - python - _lowered):
        try:
            os.setpriority(os.PRIO_PROCESS, tid, target)  # a thread's own niceness on Linux
        except OSError:  # pragma: no cover - ended meanwhile
            continue
        _lowered.add(tid)
        changed.append(tid)
    return changed

"""Drop whole key spaces of a LevelDB by copying the rest into a new directory.

LevelDB has no range delete: deleting a key space key by key writes one
tombstone per key (a reindex of a 4 M-coin chain deleted 17 M keys that way,
38 s).  :func:`rebuild_keeping` instead copies the keys that stay (for a
reindex: the block bodies, own votes, evidence, peers and the reindex
marker) into a fresh LevelDB next to the database, then swaps the
directories, so the dropped key spaces go with the old directory in one
``rmtree``.  Its cost follows the bytes kept, not the number of keys dropped.

Crash safety.  The swap is::

    1. copy the kept keys into PATH.swap-new (fsync'd, closed)
    2. rename PATH → PATH.swap-old
    3. rename PATH.swap-new → PATH
    4. remove PATH.swap-old

Both directories carry a marker file (:data:`MARKER`, which LevelDB ignores)
so that recovery never touches a directory it did not make (an operator's
``chaindata.old`` backup, say).

:func:`recover` (run by every :class:`~o2ocli.storage.db.Database` open)
finishes a swap a crash interrupted: killed during 1, PATH is untouched and
the partial copy is removed; between 2 and 3, the copy is complete, so it
becomes PATH; after 3, PATH.swap-old is removed.  The caller must be able to
redo its work from either side (a reindex keeps its marker in the copied
keys: it redoes the copy, then replays the blocks).
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import plyvel

from o2ocli.fsmodes import make_private_dir, private_umask

__all__ = ["COPY_BATCH_BYTES", "MARKER", "rebuild_keeping", "recover"]

MARKER = "O2O-SWAP"
"""File written into both directories of a swap (removed from the result)."""

COPY_BATCH_BYTES = 8 << 20
"""Bytes copied per write batch into the new directory."""


def _new_path(path: Path) -> Path:
    return path.with_name(path.name + ".swap-new")


def _old_path(path: Path) -> Path:
    return path.with_name(path.name + ".swap-old")


def _ours(path: Path) -> bool:
    return (path / MARKER).is_file()


@contextmanager
def _swap_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``PATH.swap-lock`` for the time of a swap or a
    recovery (raises :class:`BlockingIOError` if another process holds it).
    The empty lock file stays (removing it would race with another process
    opening it)."""
    lock = path.with_name(path.name + ".swap-lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)


def _mark(path: Path) -> None:
    (path / MARKER).write_bytes(b"o2ocli key-space drop in progress\n")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for child in path.iterdir():
        if child.is_file():
            fd = os.open(child, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    _fsync_dir(path)


def recover(path: Path) -> None:
    """Finish or clean up a swap of ``path`` that a crash interrupted (see the
    module docstring); nothing to do in the usual case.  Raises
    :class:`BlockingIOError` while another process is swapping ``path``."""
    new, old = _new_path(path), _old_path(path)
    if not (_ours(new) or _ours(old) or _ours(path)):
        return
    with _swap_lock(path):
        if not path.exists() and _ours(new) and _ours(old):
            os.rename(new, path)  # the copy was complete before PATH was moved away
            _fsync_dir(path.parent)
        if path.exists():
            if _ours(new):
                shutil.rmtree(new)  # an unfinished copy
            if _ours(old):
                shutil.rmtree(old)
            if _ours(path):
                (path / MARKER).unlink()


def rebuild_keeping(
    path: Path,
    items: Callable[[int], Iterable[tuple[bytes, bytes]]],
    dropped: frozenset[int],
    *,
    close: Callable[[], None],
    step: Callable[[str], None] | None = None,
) -> None:
    """Replace the LevelDB at ``path`` by one holding only the keys whose first
    byte is not in ``dropped``.  ``items(first_byte)`` yields the (key, value)
    pairs of the open database whose key starts with that byte; ``close()``
    closes it (the caller reopens it afterwards).  ``step(name)`` is called
    before each stage (``copy``, ``move-old``, ``move-new``, ``remove-old``),
    for crash tests."""
    with _swap_lock(path):
        _rebuild(path, items, dropped, close, step)


def _rebuild(
    path: Path,
    items: Callable[[int], Iterable[tuple[bytes, bytes]]],
    dropped: frozenset[int],
    close: Callable[[], None],
    step: Callable[[str], None] | None,
) -> None:
    new, old = _new_path(path), _old_path(path)
    if _ours(new):
        shutil.rmtree(new)
    if new.exists() or old.exists():
        raise FileExistsError(f"{new} or {old} is in the way; move it elsewhere")
    if step is not None:
        step("copy")
    make_private_dir(new)
    _mark(new)
    with private_umask():
        target = plyvel.DB(str(new), create_if_missing=True, error_if_exists=True)
    try:
        for first in range(256):
            if first in dropped:
                continue
            batch = target.write_batch()
            size = 0
            for key, value in items(first):
                batch.put(key, value)
                size += len(key) + len(value)
                if size >= COPY_BATCH_BYTES:
                    batch.write()
                    batch = target.write_batch()
                    size = 0
            batch.write()
    finally:
        target.close()
    _fsync_tree(new)
    close()
    _mark(path)
    if step is not None:
        step("move-old")
    os.rename(path, old)
    _fsync_dir(path.parent)
    if step is not None:
        step("move-new")
    os.rename(new, path)
    _fsync_dir(path.parent)
    if step is not None:
        step("remove-old")
    shutil.rmtree(old)
    (path / MARKER).unlink()

"""The worker process's side of :mod:`.sigworker`: its loop, and what
starting one needs (socket buffers, exit with the parent).

Messages are ``(kind, tag, payload)`` in and ``(tag, answer)`` out, pickled
over the pipe: a chunk of checks (answer: the first failing index or None),
a prefetch part (every failing index), a block's MuHash elements (the two
products), a received block's transaction encodings (their txids, wtxids
and merkle root, :func:`~o2ocli.crypto.merkle.block_ids`), a ping (the
worker's pid) or a cancel (no answer: drop the queued prefetch part of that
tag, which the caller verified itself).  A worker serves the other kinds
between slices of :data:`PREEMPT_EVERY` checks of a prefetch part.
"""

from __future__ import annotations

import os
import pickle
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from queue import SimpleQueue

from .backends import verify_cached
from .merkle import block_ids
from .muhash import RecentNumbers, products

__all__ = ["CANCEL", "EACH", "FIRST", "IDS", "MUHASH", "PING", "PREEMPT_EVERY", "SOCKET_BUFFER",
           "grow_buffers", "take_next", "worker_main"]

SigCheck = tuple[bytes, bytes, bytes]

PING, FIRST, EACH, MUHASH, IDS, CANCEL = range(6)
"""Message kinds.  ``CANCEL`` (no answer) drops the prefetch part of its tag
if the worker has not started it: the caller verified it itself."""
SOCKET_BUFFER = 1 << 20
"""Bytes of socket buffer asked for each way (a chunk is ~36 kB: sending
the pool's PREFETCH_DEPTH of them must not block the caller)."""
PARENT_POLL_SECONDS = 0.5
RECENT_NUMBERS = 8192
"""MuHash numbers of recently created coins a worker keeps (see
:class:`~o2ocli.crypto.muhash.RecentNumbers`)."""


PREEMPT_EVERY = 32
"""Checks of a prefetch part verified between two looks at the pipe.  A
block's chunk or MuHash job (or a block's ids) that arrives meanwhile is
served there, so it waits for at most this many checks (~1.5 ms) rather
than for the rest of a part of up to 256 (~12 ms): with blocks of 100
payments the connecting thread spent half its time waiting for MuHash
answers queued behind the next block's prefetched signatures."""


def _failing(checks: Sequence[SigCheck], cache: dict[bytes, object],
             between: Callable[[], None] | None = None) -> list[int]:
    """Indexes of every failing check; ``between()`` runs after every
    :data:`PREEMPT_EVERY` checks but the last ones."""
    failed = []
    for first in range(0, len(checks), PREEMPT_EVERY):
        if first and between is not None:
            between()
        part = checks[first : first + PREEMPT_EVERY]
        start = 0
        while start < len(part):
            bad = verify_cached(part[start:], cache)
            if bad is None:
                break
            failed.append(first + start + bad)
            start += bad + 1
    return failed


def _exit_with_parent(parent: int) -> None:
    """In a worker: exit as soon as ``parent`` is gone (a second guard: the
    closed pipe normally ends the worker first)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _answer_writer(conn: Connection) -> Callable[[bytes], None]:
    """A thread that writes the worker's answers, in order; returns what
    queues one.  The loop never blocks on a send, so it keeps reading what
    the caller sends: with both sides writing blockingly, an answer larger
    than the free pipe buffer (a big block's txids, 64 bytes a transaction)
    and a request larger than the other buffer (the next block's parts)
    waited for each other for ever."""
    outbox: SimpleQueue[bytes] = SimpleQueue()

    def write() -> None:
        while True:
            data = outbox.get()
            try:
                conn.send_bytes(data)
            except (EOFError, OSError):
                os._exit(0)

    threading.Thread(target=write, name="answers", daemon=True).start()
    return outbox.put


def take_next(waiting: deque[tuple[int, int, object]]) -> tuple[int, int, object]:
    """Remove and return the message to work on next: the connecting block's
    chunks and MuHash job first (the caller waits on them), then a waiting
    block's ids (a few ms of hashing, wanted before it connects), then
    prefetched signatures; each kind in the order sent."""
    chosen = (next((m for m in waiting if m[0] not in (EACH, IDS)), None)
              or next((m for m in waiting if m[0] == IDS), None))
    if chosen is None:
        return waiting.popleft()
    waiting.remove(chosen)
    return chosen


def worker_main(conn: Connection, parent: int) -> None:
    """A worker's loop: ``(kind, tag, payload)`` in, ``(tag, answer)`` out
    (written by :func:`_answer_writer`'s thread).

    Everything the caller has sent is read before each piece of work, and the
    block being connected goes first (its signature chunks and its MuHash
    job before prefetch parts: the caller waits for those)."""
    _exit_with_parent(parent)
    send = _answer_writer(conn)
    cache: dict[bytes, object] = {}
    recent = RecentNumbers(RECENT_NUMBERS)
    waiting: deque[tuple[int, int, object]] = deque()

    def read(block: bool) -> None:
        try:
            if block and not waiting:
                waiting.append(pickle.loads(conn.recv_bytes()))
            while conn.poll():
                waiting.append(pickle.loads(conn.recv_bytes()))
        except (EOFError, OSError):
            os._exit(0)

    def serve_urgent() -> None:
        """Between two slices of a prefetch part: serve every message that
        :func:`take_next` puts before prefetch parts."""
        read(False)
        while any(message[0] != EACH for message in waiting):
            serve(take_next(waiting))

    def serve(message: tuple[int, int, object]) -> None:
        kind, tag, work = message
        answer: object
        if kind == CANCEL:
            for queued in waiting:
                if queued[0] == EACH and queued[1] == tag:
                    waiting.remove(queued)
                    break
            return
        if kind == FIRST:
            answer = verify_cached(work, cache)  # type: ignore[arg-type]
        elif kind == EACH:
            answer = _failing(work, cache, serve_urgent)  # type: ignore[arg-type]
        elif kind == MUHASH:
            answer = products(work[0], work[1], recent)  # type: ignore[index]
        elif kind == IDS:
            answer = block_ids(work)  # type: ignore[arg-type]
        else:  # a ping (tests, start-up): answer at once
            answer = os.getpid()
        send(pickle.dumps((tag, answer), protocol=5))

    while True:
        read(True)
        serve(take_next(waiting))


def grow_buffers(*conns: Connection) -> None:
    """Ask for :data:`SOCKET_BUFFER` bytes each way on a pipe's sockets (the
    kernel may give less: then a send can wait for the worker to read)."""
    for conn in conns:
        try:
            sock = socket.socket(fileno=os.dup(conn.fileno()))
        except OSError:  # pragma: no cover - not a socket on this platform
            continue
        with sock:
            for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
                except OSError:  # pragma: no cover - refused: keep the default
                    pass

"""Signature-verifying worker processes, driven over pipes.

:class:`WorkerPool` starts ``n`` worker processes (``spawn``: no copy of the
caller's state or threads) and talks to each over its own
:func:`multiprocessing.Pipe`: the caller writes a chunk of checks, the worker
answers with the index of the first failing one.  There are no helper threads
in the caller: :class:`concurrent.futures.ProcessPoolExecutor` hands every
chunk through a management thread and a queue feeder thread, each of which
must win the GIL back from the thread that is checking a block's other rules
(up to a 5 ms switch interval per hop), so the worker sat idle and the caller
ended up verifying most chunks itself.  Here the caller sends and receives in
its own thread, between transactions (:meth:`Stream.add`) and at the end of
the block (:meth:`Stream.finish`, which blocks in ``wait()`` without the GIL).

Work stealing: at most :data:`DEPTH` chunks are in flight per worker; the rest
wait in the caller's queue, and :meth:`Stream.finish` verifies queued chunks
itself (newest first) while the workers finish theirs, so neither side idles
at the end of a block.

Each worker keeps the parsed form of the public keys it has seen
(:data:`~o2ocli.crypto.backends.PUBKEY_CACHE` at most,
:func:`~o2ocli.crypto.backends.verify_cached`): parsing a compressed key costs a square root
(about 5 of the 43 µs of one verification), and a merchant's or a customer's
key signs many transactions.  The answer is the same as
:func:`~o2ocli.crypto.backends.verify`'s (a test compares them on good, bad
and malformed checks).

A worker exits when its pipe closes (the caller closed it or died) or, as a
second guard, when its parent process is gone.  A worker that dies is noticed
(EOF on its pipe): its chunks are verified by the caller and the pool carries
on without it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import threading
import time
from collections import deque
from collections.abc import Sequence
from multiprocessing.connection import Connection, wait

from .backends import verify, verify_cached
from .muhash import RecentNumbers, products

__all__ = ["DEPTH", "MuHashJob", "Stream", "WorkerPool", "verify_batch"]

log = logging.getLogger(__name__)

SigCheck = tuple[bytes, bytes, bytes]

DEPTH = 2
"""Chunks in flight per worker (one being verified, one waiting in the pipe)."""
PARENT_POLL_SECONDS = 0.5
RECENT_NUMBERS = 8192
"""MuHash numbers of recently created coins a worker keeps (see
:class:`~o2ocli.crypto.muhash.RecentNumbers`)."""


def verify_batch(checks: Sequence[SigCheck]) -> int | None:
    """Index of the first failing check, verified on this thread, or None."""
    for i, (pubkey, signature, digest) in enumerate(checks):
        if not verify(pubkey, signature, digest):
            return i
    return None


def _exit_with_parent(parent: int) -> None:
    """In a worker: exit as soon as ``parent`` is gone (a second guard: the
    closed pipe normally ends the worker first)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _worker_main(conn: Connection, parent: int) -> None:
    """A worker's loop: ``(tag, checks)`` in, ``(tag, failing index | None)``
    out; ``(-tag, (added, removed))`` in, ``(-tag, muhash products)`` out."""
    _exit_with_parent(parent)
    cache: dict[bytes, object] = {}
    recent = RecentNumbers(RECENT_NUMBERS)
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            os._exit(0)
        tag, work = pickle.loads(data)
        if tag is None:  # a ping (tests, start-up): answer at once
            answer: object = os.getpid()
        elif tag < 0:
            answer = products(work[0], work[1], recent)
        else:
            answer = verify_cached(work, cache)
        conn.send_bytes(pickle.dumps((tag, answer), protocol=5))


class _Worker:
    __slots__ = ("process", "conn", "inflight")

    def __init__(self, process: multiprocessing.process.BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.inflight: dict[int, tuple[Stream, int, list[SigCheck]]] = {}
        """Tag → (stream, offset of the chunk in the stream, the chunk)."""


class WorkerPool:
    """``n`` worker processes, started at once."""

    def __init__(self, n: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        self._tags = 0
        self._jobs: dict[int, MuHashJob] = {}
        """Tag → a MuHash job in flight (tags of jobs are negative)."""
        for _ in range(n):
            mine, theirs = ctx.Pipe(duplex=True)
            process = ctx.Process(target=_worker_main, args=(theirs, os.getpid()),
                                  name="o2o-sigverify", daemon=True)
            process.start()
            theirs.close()
            self._workers.append(_Worker(process, mine))

    @property
    def pids(self) -> list[int]:
        """The live workers' process ids."""
        return [w.process.pid for w in self._workers if w.process.pid is not None]

    @property
    def alive(self) -> bool:
        """True while at least one worker is left."""
        return bool(self._workers)

    def ping(self) -> list[int]:
        """Round trip to every worker (waits for them to start); their pids."""
        pids = []
        for worker in list(self._workers):
            try:
                worker.conn.send_bytes(pickle.dumps((None, None)))
                while True:
                    tag, value = pickle.loads(worker.conn.recv_bytes())
                    if tag is None:
                        pids.append(value)
                        break
                    self._deliver(worker, tag, value)
            except (EOFError, OSError):
                self._lost(worker)
        return pids

    # -------------------------------------------------------------- plumbing
    def _send(self, stream: Stream) -> None:
        """Hand queued chunks of ``stream`` to workers with room."""
        queue = stream._queue
        for worker in self._workers:
            while queue and len(worker.inflight) < DEPTH:
                offset, part = queue.popleft()
                self._tags += 1
                tag = self._tags
                try:
                    worker.conn.send_bytes(pickle.dumps((tag, part), protocol=5))
                except (EOFError, OSError):
                    queue.appendleft((offset, part))
                    self._lost(worker)
                    return self._send(stream)
                worker.inflight[tag] = (stream, offset, part)

    def _receive(self, block: bool) -> None:
        """Collect the answers that are ready (with ``block``: wait for one)."""
        jobs = {job._worker for job in self._jobs.values()}
        busy = [w for w in self._workers if w.inflight or w in jobs]
        if not busy:
            return
        ready = wait([w.conn for w in busy], None if block else 0)
        for worker in busy:
            if worker.conn not in ready:
                continue
            try:
                while True:
                    tag, bad = pickle.loads(worker.conn.recv_bytes())
                    self._deliver(worker, tag, bad)
                    if not worker.conn.poll():
                        break
            except (EOFError, OSError):
                self._lost(worker)

    def muhash(self, added: list[bytes], removed: list[bytes]) -> MuHashJob:
        """Start computing :func:`~o2ocli.crypto.muhash.products` of a block's
        elements on the first worker (whose recent numbers then match the
        coins it saw created); :meth:`MuHashJob.result` waits for it."""
        job = MuHashJob(self, added, removed)
        if self._workers:
            worker = self._workers[0]
            self._tags += 1
            tag = -self._tags
            try:
                worker.conn.send_bytes(pickle.dumps((tag, (added, removed)), protocol=5))
            except (EOFError, OSError):
                self._lost(worker)
            else:
                self._jobs[tag] = job
                job._worker = worker
        return job

    def _deliver(self, worker: _Worker, tag: int, bad: object) -> None:
        if tag < 0:
            job = self._jobs.pop(tag, None)
            if job is not None:
                job._value = bad  # type: ignore[assignment]
                job._worker = None
            return
        entry = worker.inflight.pop(tag, None)
        if entry is not None:
            stream, offset, _ = entry
            if bad is not None and not stream._dropped:
                stream._failures.append(offset + bad)  # type: ignore[operator]

    def _lost(self, worker: _Worker) -> None:
        """A worker died: its chunks go back to their streams' queues."""
        if worker in self._workers:
            self._workers.remove(worker)
            log.warning("signature worker %s exited; verifying on the main thread",
                        worker.process.pid)
        for stream, offset, part in worker.inflight.values():
            if not stream._dropped:
                stream._queue.append((offset, part))
        worker.inflight.clear()
        for tag, job in list(self._jobs.items()):
            if job._worker is worker:  # computed on this thread when asked for
                del self._jobs[tag]
                job._worker = None
        try:
            worker.conn.close()
        except OSError:  # pragma: no cover - already closed
            pass

    def close(self) -> None:
        """Stop the workers (closing a pipe ends its worker)."""
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.conn.close()
        for worker in workers:
            worker.process.join(timeout=5)
            if worker.process.is_alive():  # pragma: no cover - a stuck worker
                worker.process.kill()
                worker.process.join(timeout=5)


class MuHashJob:
    """A block's MuHash products being computed by a worker."""

    __slots__ = ("_pool", "_added", "_removed", "_worker", "_value")

    def __init__(self, pool: WorkerPool, added: list[bytes], removed: list[bytes]) -> None:
        self._pool = pool
        self._added = added
        self._removed = removed
        self._worker: _Worker | None = None
        self._value: tuple[int, int] | None = None

    def result(self) -> tuple[int, int]:
        """(product of the added numbers, product of the removed ones); on
        this thread if no worker has it (none left, or it died)."""
        while self._value is None and self._worker is not None:
            self._pool._receive(True)
        if self._value is None:
            self._value = products(self._added, self._removed)
        return self._value


class Stream:
    """One block's checks, streamed to a :class:`WorkerPool` (see the module
    docstring); :meth:`finish` returns what :func:`verify_batch` over all the
    checks added would."""

    def __init__(self, pool: WorkerPool, chunk: int) -> None:
        self._pool = pool
        self._chunk = chunk
        self._pending: list[SigCheck] = []
        self._offset = 0
        self._queue: deque[tuple[int, list[SigCheck]]] = deque()
        self._failures: list[int] = []
        self._dropped = False

    def add(self, checks: Sequence[SigCheck]) -> None:
        """Hand over more checks (in order)."""
        self._pending.extend(checks)
        if len(self._pending) >= self._chunk:
            self._queue.append((self._offset, self._pending))
            self._offset += len(self._pending)
            self._pending = []
            pool = self._pool
            pool._receive(False)
            pool._send(self)

    def finish(self) -> int | None:
        """Index (over everything added) of the first failing check, or None."""
        failures = self._failures
        if self._pending:
            bad = verify_batch(self._pending)
            if bad is not None:
                failures.append(self._offset + bad)
            self._pending = []
        pool = self._pool
        queue = self._queue
        while True:
            pool._receive(False)
            pool._send(self)
            if queue:
                offset, part = queue.pop()  # newest: the workers are furthest from it
                if failures and offset > min(failures):
                    continue  # an earlier check failed already
                bad = verify_batch(part)
                if bad is not None:
                    failures.append(offset + bad)
            elif any(entry[0] is self for w in pool._workers for entry in w.inflight.values()):
                pool._receive(True)
            else:
                break
        return min(failures) if failures else None

    def cancel(self) -> None:
        """Drop what is not verified yet (the block failed another rule);
        answers still in flight are read and ignored later."""
        self._dropped = True
        self._queue.clear()
        self._pending = []

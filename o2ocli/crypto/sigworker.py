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

Prefetch (:meth:`WorkerPool.prefetch`): the witness signatures of a block
that has arrived but cannot be connected yet (its parent is still being
connected, or has not arrived) are verified when a worker has nothing of the
current block to do, with an answer per check; the caller's signature cache
(:class:`~o2ocli.crypto.batch.CachingVerifier`) keeps the ones that pass, so
the worker is busy while the caller writes a block, and the next block's
checks are cache hits.  A stream's chunks always go first.

The worker's side (its loop, which does the connecting block's work before
prefetch parts) is :mod:`.workerproc`.  A worker exits when its pipe closes
(the caller closed it or died) or, as a second guard, when its parent
process is gone.  A worker that dies is noticed (EOF on its pipe): its chunks
are verified by the caller and the pool carries on without it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait

from .backends import verify
from .muhash import products
from .workerproc import CANCEL, EACH, FIRST, IDS, MUHASH, PING, grow_buffers, worker_main

__all__ = ["DEPTH", "MuHashJob", "Stream", "WorkerPool", "prefetch_part_size", "verify_batch"]

log = logging.getLogger(__name__)

SigCheck = tuple[bytes, bytes, bytes]

DEPTH = 2
"""Chunks of a block in flight per worker (one being verified, one waiting)."""
PREFETCH_DEPTH = 8
"""Chunks in flight per worker counting prefetch parts: enough to keep a
worker busy while the caller decodes, checks or writes a block without
calling us (at 4 parts of ~40 checks a syncing node's worker idled a quarter
of the time); a caller left waiting takes queued parts back (``_steal``)."""
PREFETCH_CHUNK = 256
"""Most checks per prefetch message (~12 ms of work; a worker looks for more
urgent messages every :data:`~o2ocli.crypto.workerproc.PREEMPT_EVERY` of them)."""
PREFETCH_PARTS, PREFETCH_MIN = 8, 32
"""A block's prefetched checks go in about PREFETCH_PARTS messages of at
least PREFETCH_MIN checks (:func:`prefetch_part_size`)."""


def prefetch_part_size(n: int) -> int:
    """Checks per prefetch message for a block of ``n`` checks: an eighth,
    from :data:`PREFETCH_MIN` to :data:`PREFETCH_CHUNK`.  In one message, a
    small block's checks all went to the worker and left the caller, done
    with its own part, none to take (``benchmarks/connect.py``, 100 payments
    a block); parts of 32 cost a big block more in messages than they saved."""
    return max(PREFETCH_MIN, min(PREFETCH_CHUNK, -(-n // PREFETCH_PARTS)))


def verify_batch(checks: Sequence[SigCheck]) -> int | None:
    """Index of the first failing check, verified on this thread, or None."""
    for i, (pubkey, signature, digest) in enumerate(checks):
        if not verify(pubkey, signature, digest):
            return i
    return None


def _failing_here(checks: Sequence[SigCheck]) -> list[int]:
    """Indexes of every failing check, verified on this thread."""
    return [i for i, (pubkey, signature, digest) in enumerate(checks)
            if not verify(pubkey, signature, digest)]


class _Worker:
    __slots__ = ("process", "conn", "inflight", "load")

    def __init__(self, process: multiprocessing.process.BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.inflight: dict[int, _Work] = {}
        """Tag → what was sent (answered through its ``deliver``)."""
        self.load = 0
        """Chunks of checks in flight (a MuHash job does not count)."""


class _Work:
    """Something sent to a worker: ``deliver(answer)`` or, if the worker
    dies first, ``lost()``."""

    counts = True  # towards the worker's DEPTH

    def deliver(self, answer: object) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def lost(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class WorkerPool:
    """``n`` worker processes, started at once."""

    def __init__(self, n: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        self._tags = 0
        self._prefetch: deque[_Prefetch] = deque()
        self.stolen = 0
        """Prefetch parts taken back from a worker's queue and verified here."""
        for _ in range(n):
            mine, theirs = ctx.Pipe(duplex=True)
            grow_buffers(mine, theirs)
            process = ctx.Process(target=worker_main, args=(theirs, os.getpid()),
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
            answer: list[int] = []
            if self._post(worker, PING, None, _Ping(answer)):
                while not answer and worker in self._workers:
                    self._receive(True)
            pids.extend(answer)
        return pids

    # ------------------------------------------------------------ requests
    def muhash(self, added: list[bytes], removed: list[bytes]) -> MuHashJob:
        """Start computing :func:`~o2ocli.crypto.muhash.products` of a block's
        elements on the first worker (whose recent numbers then match the
        coins it saw created); :meth:`MuHashJob.result` waits for it, or
        computes it on this thread when it was not sent."""
        job = MuHashJob(self, added, removed)
        if self._workers and self._post(self._workers[0], MUHASH, (added, removed), job):
            job._sent = True
        return job

    def block_ids(self, parts: list[tuple[bytes, int]],
                  done: Callable[[tuple[bytes, bytes, bytes]], None]) -> bool:
        """Hash a received block's transactions on the least loaded worker
        (:func:`~o2ocli.crypto.merkle.block_ids` of ``parts``);
        ``done(answer)`` is called from a later call on this pool, on this
        thread.  Nothing is called if the worker dies first (the caller
        hashes what it needs itself).  False if no worker took it."""
        if not self._workers:
            return False
        worker = min(self._workers, key=lambda w: w.load)
        return self._post(worker, IDS, parts, _Ids(done))

    def prefetch(self, checks: list[SigCheck],
                 done: Callable[[list[SigCheck], list[int]], None]) -> None:
        """Verify ``checks`` when a worker has nothing more urgent to do;
        ``done(part, failing indexes in part)`` is called for each part
        answered (from a later call on this pool, on this thread).  Parts a
        dying worker held are reported with every index failing (unknown)."""
        size = prefetch_part_size(len(checks))
        for start in range(0, len(checks), size):
            self._prefetch.append(_Prefetch(checks[start : start + size], done))
        self.pump()

    def pump(self) -> None:
        """Collect the answers that are ready and hand out waiting work."""
        self._receive(False)
        self._send(None)

    def settle(self, waiting: Callable[[], bool],
               wanted: Callable[[SigCheck], bool] | None = None) -> None:
        """While ``waiting()``: collect answers, hand out work, and verify
        here the prefetch parts no worker has taken yet (oldest first, as the
        workers would: those of the block being connected), then parts a
        worker holds queued that have a check ``wanted`` (any, without it),
        waiting only when the workers hold the rest."""
        while True:
            self.pump()
            if not waiting():
                return
            if self._prefetch:  # verify here rather than wait
                part = self._prefetch.popleft()
                part.deliver(_failing_here(part.checks))
            elif self._steal(wanted):
                pass
            elif any(w.inflight for w in self._workers):
                self._receive(True)
            else:
                return

    def _steal(self, wanted: Callable[[SigCheck], bool] | None) -> bool:
        """Verify here the newest prefetch part a worker holds queued behind
        another (so it has most likely not started it) with a ``wanted``
        check, and tell the worker to drop it (``CANCEL``; an answer that
        comes all the same is ignored).  Only wanted parts: a syncing node's
        caller is busier than its worker, so it must not take on the
        worker's later work.  False if no worker holds such a part."""
        for worker in self._workers:
            queued = [(tag, work) for tag, work in worker.inflight.items()
                      if type(work) is _Prefetch][1:]
            if wanted is not None:
                queued = [(tag, work) for tag, work in queued
                          if any(map(wanted, work.checks))]  # type: ignore[attr-defined]
            if not queued:
                continue
            tag = queued[-1][0]
            try:
                worker.conn.send_bytes(pickle.dumps((CANCEL, tag, None), protocol=5))
            except (EOFError, OSError):
                self._lost(worker)
                return True
            part = worker.inflight.pop(tag)
            worker.load -= 1
            part.deliver(_failing_here(part.checks))  # type: ignore[attr-defined]
            self.stolen += 1
            return True
        return False

    def discard_prefetch(self) -> None:
        """Forget prefetch parts not sent yet (each reported as unknown)."""
        while self._prefetch:
            self._prefetch.popleft().lost()

    # -------------------------------------------------------------- plumbing
    def _post(self, worker: _Worker, kind: int, payload: object, work: _Work) -> bool:
        self._tags += 1
        tag = self._tags
        try:
            worker.conn.send_bytes(pickle.dumps((kind, tag, payload), protocol=5))
        except (EOFError, OSError):
            self._lost(worker)
            return False
        worker.inflight[tag] = work
        if work.counts:
            worker.load += 1
        return True

    def _send(self, stream: Stream | None) -> None:
        """Hand queued chunks of ``stream``, then prefetch parts, to workers
        with room."""
        queue = stream._queue if stream is not None else None
        prefetch = self._prefetch
        for worker in list(self._workers):
            while worker.load < PREFETCH_DEPTH:
                if queue and worker.load < DEPTH:
                    chunk = queue.popleft()
                    if not self._post(worker, FIRST, chunk.part, chunk):
                        queue.appendleft(chunk)
                        break
                    stream._inflight += 1  # type: ignore[union-attr]
                elif prefetch and not queue:
                    part = prefetch.popleft()
                    if not self._post(worker, EACH, part.checks, part):
                        prefetch.appendleft(part)
                        break
                else:
                    break

    def _receive(self, block: bool) -> None:
        """Collect the answers that are ready (with ``block``: wait for one)."""
        busy = [w for w in self._workers if w.inflight]
        if not busy:
            return
        ready = wait([w.conn for w in busy], None if block else 0)
        for worker in busy:
            if worker.conn not in ready:
                continue
            try:
                while True:
                    tag, answer = pickle.loads(worker.conn.recv_bytes())
                    work = worker.inflight.pop(tag, None)
                    if work is not None:
                        if work.counts:
                            worker.load -= 1
                        work.deliver(answer)
                    if not worker.conn.poll():
                        break
            except (EOFError, OSError):
                self._lost(worker)

    def _lost(self, worker: _Worker) -> None:
        """A worker died: what it held is verified or computed elsewhere."""
        if worker in self._workers:
            self._workers.remove(worker)
            log.warning("signature worker %s exited; verifying on the main thread",
                        worker.process.pid)
        held = list(worker.inflight.values())
        worker.inflight.clear()
        worker.load = 0
        try:
            worker.conn.close()
        except OSError:  # pragma: no cover - already closed
            pass
        for work in held:
            work.lost()
        if not self._workers:
            self.discard_prefetch()

    def close(self) -> None:
        """Stop the workers (closing a pipe ends its worker)."""
        workers, self._workers = self._workers, []
        self.discard_prefetch()
        for worker in workers:
            worker.conn.close()
            held = list(worker.inflight.values())
            worker.inflight.clear()
            for work in held:
                work.lost()
        for worker in workers:
            worker.process.join(timeout=5)
            if worker.process.is_alive():  # pragma: no cover - a stuck worker
                worker.process.kill()
                worker.process.join(timeout=5)


class _Ping(_Work):
    counts = False

    def __init__(self, answer: list[int]) -> None:
        self.answer = answer

    def deliver(self, answer: object) -> None:
        self.answer.append(answer)  # type: ignore[arg-type]

    def lost(self) -> None:
        pass


class _Ids(_Work):
    __slots__ = ("done",)
    counts = False

    def __init__(self, done: Callable[[tuple[bytes, bytes, bytes]], None]) -> None:
        self.done = done

    def deliver(self, answer: object) -> None:
        self.done(answer)  # type: ignore[arg-type]

    def lost(self) -> None:
        pass


class _Prefetch(_Work):
    __slots__ = ("checks", "done")

    def __init__(self, checks: list[SigCheck],
                 done: Callable[[list[SigCheck], list[int]], None]) -> None:
        self.checks = checks
        self.done = done

    def deliver(self, answer: object) -> None:
        self.done(self.checks, answer)  # type: ignore[arg-type]

    def lost(self) -> None:
        self.done(self.checks, list(range(len(self.checks))))


class MuHashJob(_Work):
    """A block's MuHash products being computed by a worker."""

    counts = False

    def __init__(self, pool: WorkerPool, added: list[bytes], removed: list[bytes]) -> None:
        self._pool = pool
        self._added = added
        self._removed = removed
        self._sent = False
        self._value: tuple[int, int] | None = None

    def deliver(self, answer: object) -> None:
        self._value = answer  # type: ignore[assignment]
        self._sent = False

    def lost(self) -> None:
        self._sent = False  # computed on this thread when asked for

    def result(self) -> tuple[int, int]:
        """(product of the added numbers, product of the removed ones); on
        this thread if no worker has it (none left, or it died)."""
        while self._value is None and self._sent:
            self._pool._receive(True)
        if self._value is None:
            self._value = products(self._added, self._removed)
        return self._value


class _Chunk(_Work):
    __slots__ = ("stream", "offset", "part")

    def __init__(self, stream: Stream, offset: int, part: list[SigCheck]) -> None:
        self.stream = stream
        self.offset = offset
        self.part = part

    def deliver(self, answer: object) -> None:
        stream = self.stream
        stream._inflight -= 1
        if answer is not None and not stream._dropped:
            stream._failures.append(self.offset + answer)  # type: ignore[operator]

    def lost(self) -> None:
        stream = self.stream
        stream._inflight -= 1
        if not stream._dropped:
            stream._queue.append(self)


class Stream:
    """One block's checks, streamed to a :class:`WorkerPool` (see the module
    docstring); :meth:`finish` returns what :func:`verify_batch` over all the
    checks added would."""

    def __init__(self, pool: WorkerPool, chunk: int) -> None:
        self._pool = pool
        self._chunk = chunk
        self._pending: list[SigCheck] = []
        self._offset = 0
        self._queue: deque[_Chunk] = deque()
        self._inflight = 0
        self._failures: list[int] = []
        self._dropped = False

    def add(self, checks: Sequence[SigCheck]) -> None:
        """Hand over more checks (in order)."""
        self._pending.extend(checks)
        if len(self._pending) >= self._chunk:
            self._queue.append(_Chunk(self, self._offset, self._pending))
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
                chunk = queue.pop()  # newest: the workers are furthest from it
                if failures and chunk.offset > min(failures):
                    continue  # an earlier check failed already
                bad = verify_batch(chunk.part)
                if bad is not None:
                    failures.append(chunk.offset + bad)
            elif self._inflight:
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

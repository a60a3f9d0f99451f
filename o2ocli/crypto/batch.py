"""Batch signature verification, optionally spread over threads or processes.

libsecp256k1 (through coincurve's cffi bindings) releases the GIL while it
verifies, so plain threads scale across cores without pickling anything to
other processes *while the calling thread waits*.  When the calling thread
keeps running Python meanwhile (a block's contextual checks), a verifying
thread must win the GIL back after every signature and gets about a third of
a core (measured: 2,600-3,600 vs 8,600 verifies/s); a worker process does
not share the GIL, so :class:`ProcessVerifier` streams the checks there
(over pipes, :mod:`.sigworker`).

Streaming (``verifier.stream()``, used by
:func:`~o2ocli.consensus.block.apply_block`): the block's checks are handed
over in chunks as they are found and verified while the block's remaining
transactions are checked; :meth:`VerifySession.finish` returns the first
failing check, exactly what one batch call over all of them would.

Small batches stay on the calling thread, where handing work to a pool would
cost more than it saves.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor

from .sigworker import MuHashJob, Stream, WorkerPool, verify_batch

__all__ = [
    "verify_batch",
    "ThreadedVerifier",
    "ProcessVerifier",
    "CachingVerifier",
    "VerifySession",
    "STREAM_CHUNK",
]

STREAM_CHUNK = 256
"""Checks handed to the pool at a time when streaming (~10 ms of work: the
last chunk is what the block waits for after its last transaction)."""

SigCheck = tuple[bytes, bytes, bytes]


class VerifySession:
    """Checks verified on a pool as they are added (see the module docstring).

    Chunks of ``chunk`` checks go to the pool (started by ``get_pool`` at the
    first full chunk: a small block never starts it); :meth:`finish` verifies
    the remainder, and any chunk no worker has started yet, on the calling
    thread, then collects the pool's answers.
    """

    def __init__(self, get_pool: Callable[[], Executor], chunk: int = STREAM_CHUNK) -> None:
        self._get_pool = get_pool
        self._chunk = chunk
        self._pending: list[SigCheck] = []
        self._offset = 0
        self._futures: list[tuple[int, list[SigCheck], Future[int | None]]] = []

    def add(self, checks: Sequence[SigCheck]) -> None:
        """Hand over more checks (in order)."""
        self._pending.extend(checks)
        if len(self._pending) >= self._chunk:
            part = self._pending
            self._futures.append((self._offset, part, self._get_pool().submit(verify_batch, part)))
            self._offset += len(part)
            self._pending = []

    def finish(self) -> int | None:
        """Index (over everything added) of the first failing check, or None."""
        failures = []
        if self._pending:
            tail = verify_batch(self._pending)
            if tail is not None:
                failures.append(self._offset + tail)
        # Newest first: the chunks the workers are furthest from.
        for offset, part, future in reversed(self._futures):
            if future.cancel():
                bad = verify_batch(part)
            else:
                bad = future.result()
            if bad is not None:
                failures.append(offset + bad)
        self._futures = []
        self._pending = []
        return min(failures) if failures else None

    def cancel(self) -> None:
        """Drop what is not verified yet (the block failed another rule)."""
        for _, _, future in self._futures:
            future.cancel()
        self._futures = []
        self._pending = []


class ThreadedVerifier:
    """A verifier (``checks -> failing index | None``) using ``workers`` threads.

    Batches shorter than ``min_batch`` are verified on the calling thread.  With
    ``workers=1`` it is exactly :func:`verify_batch` (the single-core path).
    """

    def __init__(self, workers: int | None = None, min_batch: int = 64) -> None:
        self.workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
        self.min_batch = min_batch
        self._pool: ThreadPoolExecutor | None = None

    def __call__(self, checks: Sequence[SigCheck]) -> int | None:
        n = len(checks)
        if self.workers == 1 or n < self.min_batch:
            return verify_batch(checks)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="sigverify")
        step = -(-n // self.workers)
        starts = range(0, n, step)
        results = self._pool.map(lambda s: verify_batch(checks[s : s + step]), starts)
        failures = [s + r for s, r in zip(starts, results, strict=True) if r is not None]
        return min(failures) if failures else None

    def close(self) -> None:
        """Stop the worker threads."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


class ProcessVerifier:
    """A verifier on ``workers`` worker processes (default: one less than the
    cores, at least one), which do not compete with the caller for the GIL
    (:mod:`.sigworker`: pipes, no helper threads, work stealing at the end).

    The workers start at the first batch of at least ``min_batch`` checks (or
    the first full chunk of a stream); smaller batches are verified on the
    calling thread.  :meth:`stream` is what connecting a block uses: the
    caller keeps checking transactions while the workers verify.
    """

    def __init__(self, workers: int | None = None, min_batch: int = 64) -> None:
        default = max(1, (os.cpu_count() or 1) - 1)
        self.workers = max(1, workers if workers is not None else default)
        self.min_batch = min_batch
        self._pool: WorkerPool | None = None
        self.hashed_ahead = 0
        """Blocks whose ids and merkle root a worker hashed (:meth:`hash_ahead`)."""

    def _get_pool(self) -> WorkerPool:
        if self._pool is None or not self._pool.alive:
            self._pool = WorkerPool(self.workers)
        return self._pool

    def start(self) -> list[int]:
        """Start the workers now and wait until they answer; their pids."""
        return self._get_pool().ping()

    def __call__(self, checks: Sequence[SigCheck]) -> int | None:
        n = len(checks)
        if n < self.min_batch:
            return verify_batch(checks)
        # Split over the workers and the calling thread.
        parts = self.workers + 1
        step = -(-n // parts)
        session = Stream(self._get_pool(), step)
        for start in range(0, n, step):
            session.add(checks[start : start + step])
        return session.finish()

    def stream(self, chunk: int = STREAM_CHUNK) -> VerifySession:
        """A streaming session on the worker processes (started at its first
        full chunk: a small block never starts them)."""
        return _LazyStream(self, chunk)  # type: ignore[return-value]

    def muhash(self, added: list[bytes], removed: list[bytes]) -> MuHashJob | None:
        """Start a block's MuHash products on a worker (see
        :meth:`~.sigworker.WorkerPool.muhash`); None when no worker is running
        (a node that has only seen small blocks: the caller computes them)."""
        if self._pool is None or not self._pool.alive:
            return None
        return self._pool.muhash(added, removed)

    def hash_ahead(self, parts: list[tuple[bytes, int]],
                   done: Callable[[tuple[bytes, bytes, bytes]], None]) -> bool:
        """Hash a received block's transactions on a worker (see
        :meth:`~.sigworker.WorkerPool.block_ids`); False (nothing done) for
        fewer than ``min_batch`` transactions or when no worker is running."""
        if len(parts) < self.min_batch or self._pool is None or not self._pool.alive:
            return False

        def delivered(answer: tuple[bytes, bytes, bytes]) -> None:
            self.hashed_ahead += 1
            done(answer)

        return self._pool.block_ids(parts, delivered)

    def verify_ahead(self, checks: list[SigCheck],
                     done: Callable[[list[SigCheck], list[int]], None]) -> bool:
        """Verify ``checks`` on the workers when they have nothing more
        urgent (see :meth:`~.sigworker.WorkerPool.prefetch`); False (nothing
        done) for fewer than ``min_batch`` checks."""
        if len(checks) < self.min_batch:
            return False
        self._get_pool().prefetch(checks, done)
        return True

    def pump(self) -> None:
        """See :meth:`~.sigworker.WorkerPool.pump`."""
        if self._pool is not None:
            self._pool.pump()

    def settle(self, waiting: Callable[[], bool],
               wanted: Callable[[SigCheck], bool] | None = None) -> None:
        """See :meth:`~.sigworker.WorkerPool.settle`."""
        if self._pool is not None:
            self._pool.settle(waiting, wanted)

    def close(self) -> None:
        """Stop the worker processes."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None


class _LazyStream:
    """A :class:`~.sigworker.Stream` created at the first full chunk."""

    __slots__ = ("_owner", "_chunk", "_pending", "_stream")

    def __init__(self, owner: ProcessVerifier, chunk: int) -> None:
        self._owner = owner
        self._chunk = chunk
        self._pending: list[SigCheck] = []
        self._stream: Stream | None = None

    def add(self, checks: Sequence[SigCheck]) -> None:
        if self._stream is not None:
            self._stream.add(checks)
            return
        self._pending.extend(checks)
        if len(self._pending) >= self._chunk:
            self._stream = Stream(self._owner._get_pool(), self._chunk)
            pending, self._pending = self._pending, []
            self._stream.add(pending)

    def finish(self) -> int | None:
        if self._stream is None:
            pending, self._pending = self._pending, []
            return verify_batch(pending)
        return self._stream.finish()

    def cancel(self) -> None:
        self._pending = []
        if self._stream is not None:
            self._stream.cancel()


class CachingVerifier:
    """A verifier that remembers the checks that passed (like Bitcoin Core's
    signature cache): a transaction verified when it entered the mempool is
    not verified again when a block carrying it is connected.

    The cache holds the exact (pubkey, signature, digest) triples, compared
    byte for byte (no hash of them), so a cached answer is never wrong; at most
    ``max_entries`` are kept, the least recently used dropped first.  Only
    successes are cached.  Not thread-safe: call it from one thread.
    """

    def __init__(self, inner: Callable[[Sequence[SigCheck]], int | None],
                 max_entries: int = 100_000) -> None:
        self.inner = inner
        self.max_entries = max_entries
        self._cache: OrderedDict[SigCheck, None] = OrderedDict()
        self._inflight: set[SigCheck] = set()
        """Checks handed to :meth:`prefetch` and not answered yet."""
        self.hits = 0
        """Checks answered from the cache so far."""
        self.prefetched = 0
        """Checks verified ahead by :meth:`prefetch` that passed."""

    def prefetch(self, checks: Sequence[SigCheck]) -> None:
        """Verify ``checks`` ahead, on the inner verifier's workers when they
        are idle, and remember those that pass (for a block that has arrived
        and will be connected after the current one; see
        :func:`~o2ocli.consensus.block.witness_checks`).  A no-op without
        workers.  A block's checks that are still being prefetched when it is
        connected are waited for, not verified twice."""
        inner = getattr(self.inner, "verify_ahead", None)
        if inner is None:
            return
        cache, inflight = self._cache, self._inflight
        todo = [check for check in dict.fromkeys(checks)
                if check not in cache and check not in inflight]
        if todo and inner(todo, self._prefetched):
            inflight.update(todo)

    def _prefetched(self, part: list[SigCheck], failing: list[int]) -> None:
        self._inflight.difference_update(part)
        if failing:
            bad = set(failing)
            part = [check for i, check in enumerate(part) if i not in bad]
        self.prefetched += len(part)
        self.remember(part)

    def __len__(self) -> int:
        return len(self._cache)

    def __call__(self, checks: Sequence[SigCheck]) -> int | None:
        cache = self._cache
        todo = [i for i, check in enumerate(checks) if check not in cache]
        self.hits += len(checks) - len(todo)
        if not todo:
            return None
        batch = [checks[i] for i in todo]
        bad = self.inner(batch)
        passed = batch if bad is None else batch[:bad]
        for check in passed:
            cache[check] = None
        while len(cache) > self.max_entries:
            cache.popitem(last=False)
        # Cached checks passed, so the first failure overall is the batch's first.
        return None if bad is None else todo[bad]

    def stream(self) -> _CachingSession | None:
        """A streaming session over the inner verifier's (None if it has none):
        cached checks are skipped, the ones that pass are remembered."""
        inner_stream = getattr(self.inner, "stream", None)
        if inner_stream is None:
            return None
        return _CachingSession(self, inner_stream())

    def muhash(self, added: list[bytes], removed: list[bytes]) -> MuHashJob | None:
        """The inner verifier's :meth:`ProcessVerifier.muhash`, if it has one."""
        inner = getattr(self.inner, "muhash", None)
        return None if inner is None else inner(added, removed)

    def hash_ahead(self, parts: list[tuple[bytes, int]],
                   done: Callable[[tuple[bytes, bytes, bytes]], None]) -> bool:
        """The inner verifier's :meth:`ProcessVerifier.hash_ahead`, if it has one."""
        inner = getattr(self.inner, "hash_ahead", None)
        return False if inner is None else inner(parts, done)

    def remember(self, passed: Sequence[SigCheck]) -> None:
        """Record checks that passed."""
        cache = self._cache
        for check in passed:
            cache[check] = None
        while len(cache) > self.max_entries:
            cache.popitem(last=False)

    def close(self) -> None:
        """Close the inner verifier (if it has threads) and forget the cache."""
        self._cache.clear()
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()


class _CachingSession:
    """:meth:`CachingVerifier.stream`: skips cached checks, remembers passes."""

    def __init__(self, owner: CachingVerifier, inner: VerifySession) -> None:
        self._owner = owner
        self._inner = inner
        self._count = 0
        self._todo: list[int] = []
        """Index (over everything added) of each check handed to ``inner``."""
        self._sent: list[SigCheck] = []
        self._deferred: list[tuple[int, SigCheck]] = []
        """(index, check) of checks being prefetched when they were added."""
        self._pumped = 0

    def add(self, checks: Sequence[SigCheck]) -> None:
        owner = self._owner
        cache, inflight = owner._cache, owner._inflight
        base = self._count
        self._count += len(checks)
        todo = []
        deferred = self._deferred
        for i, check in enumerate(checks):
            if check in cache:
                owner.hits += 1
            elif inflight and check in inflight:
                deferred.append((base + i, check))
            else:
                todo.append(i)
        if len(deferred) >= self._pumped + STREAM_CHUNK:
            # Nothing of these goes through the stream: keep the workers fed
            # with the prefetched parts (and collect their answers) meanwhile.
            self._pumped = len(deferred)
            pump = getattr(owner.inner, "pump", None)
            if pump is not None:
                pump()
        if todo:
            batch = [checks[i] for i in todo]
            self._todo.extend(base + i for i in todo)
            self._sent.extend(batch)
            self._inner.add(batch)

    def finish(self) -> int | None:
        owner = self._owner
        bad = self._inner.finish()
        owner.remember(self._sent if bad is None else self._sent[:bad])
        failed = [] if bad is None else [self._todo[bad]]
        if self._deferred:
            inflight = owner._inflight
            deferred = self._deferred
            settle = getattr(owner.inner, "settle", None)
            if settle is not None:
                wanted = {check for _, check in deferred}
                settle(lambda: any(check in inflight for check in wanted), wanted.__contains__)
            cache = owner._cache
            for index, check in deferred:  # a prefetch that failed (or was lost)
                if check not in cache:
                    if verify_batch([check]) is None:
                        owner.remember([check])
                    else:
                        failed.append(index)
                        break
                else:
                    owner.hits += 1
        return min(failed) if failed else None

    def cancel(self) -> None:
        self._inner.cancel()
        self._deferred = []

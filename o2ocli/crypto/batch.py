"""Batch signature verification, optionally spread over threads.

libsecp256k1 (through coincurve's cffi bindings) releases the GIL while it
verifies, so plain threads scale across cores without pickling anything to
other processes.  Small batches stay on the calling thread, where handing
work to a pool would cost more than it saves.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from .backends import verify

__all__ = ["verify_batch", "ThreadedVerifier", "CachingVerifier"]

SigCheck = tuple[bytes, bytes, bytes]


def verify_batch(checks: Sequence[SigCheck]) -> int | None:
    """Verify ``checks`` (pubkey, sig64, digest) in order on this thread.

    Returns the index of the first failing check, or None if all pass.
    """
    for i, (pubkey, signature, digest) in enumerate(checks):
        if not verify(pubkey, signature, digest):
            return i
    return None


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
        self.hits = 0
        """Checks answered from the cache so far."""

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

    def close(self) -> None:
        """Close the inner verifier (if it has threads) and forget the cache."""
        self._cache.clear()
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()

"""A signature worker serves urgent messages in the middle of a long
prefetch part (crypto/workerproc.py), and a block's prefetched checks are
split into parts the connecting thread can share (crypto/sigworker.py)."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import random
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection

import pytest

from o2ocli.crypto.hashes import sha256d
from o2ocli.crypto.keys import PrivateKey
from o2ocli.crypto.muhash import products
from o2ocli.crypto.sigworker import PREFETCH_CHUNK, PREFETCH_MIN, prefetch_part_size
from o2ocli.crypto.workerproc import (
    EACH,
    MUHASH,
    PING,
    PREEMPT_EVERY,
    _failing,
    grow_buffers,
    worker_main,
)

SEED = int(os.environ.get("O2O_TEST_SEED", "4242"))
KEYS = [PrivateKey(sha256d(b"preempt" + bytes([i]))) for i in range(4)]


def check(i: int, ok: bool = True) -> tuple[bytes, bytes, bytes]:
    key = KEYS[i % len(KEYS)]
    digest = sha256d(b"p" + i.to_bytes(4, "big"))
    return key.public_key.to_bytes(), key.sign(digest), digest if ok else sha256d(digest)


def test_every_failure_is_found_across_the_slices() -> None:
    rng = random.Random(SEED)
    good = [check(i) for i in range(4 * PREEMPT_EVERY + 5)]
    for trial in range(20):
        n = rng.choice([0, 1, PREEMPT_EVERY - 1, PREEMPT_EVERY, PREEMPT_EVERY + 1, len(good)])
        bad_at = sorted(rng.sample(range(n), min(n, rng.randint(0, 6))))
        checks = [check(i, ok=False) if i in bad_at else good[i] for i in range(n)]
        calls: list[int] = []
        assert _failing(checks, {}, lambda calls=calls: calls.append(1)) == bad_at, (SEED, trial)
        assert len(calls) == max(0, -(-n // PREEMPT_EVERY) - 1)


def test_prefetch_parts_are_an_eighth_of_a_block_within_bounds() -> None:
    assert prefetch_part_size(0) == PREFETCH_MIN
    assert prefetch_part_size(150) == PREFETCH_MIN  # a block of 100 payments: 5 parts
    assert prefetch_part_size(300) == 38
    assert prefetch_part_size(3000) == PREFETCH_CHUNK  # 2,000 payments: 12 parts
    assert prefetch_part_size(10**6) == PREFETCH_CHUNK


@contextmanager
def spawned_worker() -> Iterator[tuple[Connection, multiprocessing.process.BaseProcess]]:
    """A worker process (workerproc.worker_main) and this end of its pipe."""
    ctx = multiprocessing.get_context("spawn")
    mine, theirs = ctx.Pipe(duplex=True)
    grow_buffers(mine, theirs)
    process = ctx.Process(target=worker_main, args=(theirs, os.getpid()), daemon=True)
    process.start()
    theirs.close()
    try:
        yield mine, process
    finally:
        mine.close()
        process.join(10)
        if process.is_alive():
            process.kill()


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_muhash_job_is_answered_in_the_middle_of_a_long_prefetch_part() -> None:
    with spawned_worker() as (mine, process):
        mine.send_bytes(pickle.dumps((PING, 1, None)))
        assert mine.poll(60), "the worker did not start"
        assert pickle.loads(mine.recv_bytes()) == (1, process.pid)
        # A part of 6,000 checks (a quarter to half a second of verifying).
        part = [check(i % 64) for i in range(6000)]
        part[5999] = check(5999, ok=False)
        before = _cpu_seconds(process.pid)
        mine.send_bytes(pickle.dumps((EACH, 2, part)))
        deadline = time.monotonic() + 30
        while _cpu_seconds(process.pid) - before < 0.03:  # it is verifying the part
            assert time.monotonic() < deadline, "the worker never started the part"
            time.sleep(0.002)
        added = [sha256d(b"added" + bytes([i])) for i in range(5)]
        removed = [sha256d(b"removed")]
        mine.send_bytes(pickle.dumps((MUHASH, 3, (added, removed))))
        answers = []
        while len(answers) < 2:
            assert mine.poll(60), "no answer"
            answers.append(pickle.loads(mine.recv_bytes()))
        # The job sent after the part is answered first, with the right products.
        assert answers[0] == (3, products(added, removed))
        assert answers[1] == (2, [5999])


def test_a_waiting_caller_takes_queued_parts_back_and_loses_none() -> None:
    """settle() verifies here the newest parts a worker has queued (and
    cancels them there): every check is answered once, failures included,
    and the worker goes on answering afterwards."""
    from o2ocli.crypto.batch import CachingVerifier, ProcessVerifier

    caching = CachingVerifier(ProcessVerifier(1, min_batch=8))
    caching.inner.start()
    try:
        rng = random.Random(SEED)
        for trial in range(3):
            checks = [check(4000 * trial + i) for i in range(2000)]
            bad_at = sorted(rng.sample(range(2000), 3))
            for i in bad_at:
                checks[i] = check(4000 * trial + i, ok=False)
            prefetched = caching.prefetched
            caching.prefetch(checks)
            caching.inner.settle(lambda: bool(caching._inflight))
            assert not caching._inflight
            assert caching.prefetched - prefetched == 2000 - len(bad_at), (SEED, trial)
            session = caching.stream()
            session.add(checks)
            assert session.finish() == bad_at[0], (SEED, trial)
        pool = caching.inner._pool
        assert pool.stolen > 0  # parts were taken back (8 parts of 250 sent at once)
        assert pool.ping() == pool.pids  # the worker still answers
    finally:
        caching.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="spawned worker")
def test_a_cancelled_part_is_dropped_and_the_rest_answered_in_order() -> None:
    """EACH 1 (long), EACH 2, CANCEL 2, EACH 4: the worker answers 1 and 4
    and never 2 (were 2 still queued, it would come before 4: parts are
    taken in the order sent)."""
    from o2ocli.crypto.workerproc import CANCEL

    with spawned_worker() as (mine, _):
        long_part = [check(i % 64) for i in range(4000)]
        for message in ((EACH, 1, long_part), (EACH, 2, [check(1, ok=False)]),
                        (CANCEL, 2, None), (EACH, 4, [check(2), check(3, ok=False)])):
            mine.send_bytes(pickle.dumps(message))
        answers = []
        while not answers or answers[-1][0] != 4:
            assert mine.poll(60), f"no answer after {answers}"
            answers.append(pickle.loads(mine.recv_bytes()))
        assert answers == [(1, []), (4, [1])]


def _stopped_pool_with_parts(n_parts: int):
    """A one-worker pool, stopped (SIGSTOP) once started, given ``n_parts``
    (≥ 8) prefetch parts of PREFETCH_CHUNK checks (part p's check i fails
    when i == p; up to PREFETCH_DEPTH of them sent); returns (pool, worker
    pid, the checks, the answers by part)."""
    import signal

    from o2ocli.crypto.sigworker import WorkerPool

    pool = WorkerPool(1)
    pid = pool.ping()[0]
    os.kill(pid, signal.SIGSTOP)
    checks = [check(i, ok=(i % PREFETCH_CHUNK != i // PREFETCH_CHUNK))
              for i in range(n_parts * PREFETCH_CHUNK)]
    answers: dict[int, list[list[int]]] = {}

    def done(part: list, failing: list[int]) -> None:
        answers.setdefault(checks.index(part[0]) // PREFETCH_CHUNK, []).append(failing)

    pool.prefetch(checks, done)
    assert prefetch_part_size(len(checks)) == PREFETCH_CHUNK
    return pool, pid, checks, answers


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIGSTOP")
def test_only_parts_with_a_wanted_check_are_taken_back() -> None:
    """_steal(wanted) takes the queued part holding a wanted check and no
    other; the worker answers the rest once, and never the cancelled one."""
    import signal

    pool, pid, checks, answers = _stopped_pool_with_parts(10)
    try:
        wanted = set(checks[4 * PREFETCH_CHUNK : 5 * PREFETCH_CHUNK])
        assert pool._steal(lambda c: c in wanted)
        assert answers == {4: [[4]]}  # verified here, its failure found
        assert not pool._steal(lambda c: c in wanted)  # nothing wanted is left there
        assert not pool._steal(lambda c: False)
        assert pool.stolen == 1
        os.kill(pid, signal.SIGCONT)
        deadline = time.monotonic() + 60
        while len(answers) < 10:
            assert time.monotonic() < deadline, f"answers so far: {sorted(answers)}"
            pool.pump()  # also sends the 2 parts that waited here
            pool._receive(True)
        assert answers == {p: [[p]] for p in range(10)}  # each part once, by one side
        assert pool.ping() == [pid]  # the worker dropped part 4 and goes on
        assert answers == {p: [[p]] for p in range(10)}
    finally:
        os.kill(pid, signal.SIGCONT)
        pool.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIGKILL")
def test_a_cancel_that_cannot_be_sent_loses_no_part() -> None:
    """The worker died with parts queued: the CANCEL send fails, the pool
    drops the worker, and every part is reported once (unknown: all its
    checks failing), so the caller verifies them itself."""
    import signal

    pool, pid, checks, answers = _stopped_pool_with_parts(10)
    try:
        process = pool._workers[0].process
        os.kill(pid, signal.SIGKILL)
        process.join(30)
        assert not process.is_alive()
        assert pool._steal(None)  # the send failed: the worker is dropped
        assert not pool.alive
        # The 8 parts it held and the 2 not sent yet.
        assert answers == {p: [list(range(PREFETCH_CHUNK))] for p in range(10)}
        assert not pool._steal(None)
    finally:
        pool.close()

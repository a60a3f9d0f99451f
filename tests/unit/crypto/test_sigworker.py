"""The pipe-driven signature workers (crypto/sigworker.py): the cached
verify gives verify()'s answer on every kind of check, a worker killed
mid-block costs nothing but time, and the MuHash products a worker computes
are the ones computed here."""

from __future__ import annotations

import os
import random
import signal

import coincurve
import pytest

from o2ocli.crypto.backends import SECP256K1_N, verify, verify_cached
from o2ocli.crypto.batch import ProcessVerifier
from o2ocli.crypto.hashes import sha256d
from o2ocli.crypto.keys import PrivateKey
from o2ocli.crypto.muhash import MuHash3072, RecentNumbers, products

SEED = int(os.environ.get("O2O_TEST_SEED", "4242"))
KEYS = [PrivateKey(sha256d(b"worker" + bytes([i]))) for i in range(6)]


def good(i: int) -> tuple[bytes, bytes, bytes]:
    key = KEYS[i % len(KEYS)]
    digest = sha256d(b"w" + i.to_bytes(4, "big"))
    return key.public_key.to_bytes(), key.sign(digest), digest


def malformed_checks() -> list[tuple[object, object, object]]:
    pubkey, sig, digest = good(0)
    r, s = sig[:32], int.from_bytes(sig[32:], "big")
    high_s = r + (SECP256K1_N - s).to_bytes(32, "big")
    off_curve = b"\x02" + bytes(31) + b"\x07"  # x = 7: no point has it
    uncompressed = coincurve.PublicKey(good(1)[0]).format(compressed=False)
    return [
        (pubkey, sig, sha256d(digest)),            # another digest
        (pubkey, high_s, digest),                   # high S
        (pubkey, bytes(32) + sig[32:], digest),     # r = 0
        (pubkey, sig[:32] + bytes(32), digest),     # s = 0
        (pubkey, b"\xff" * 64, digest),             # r, s >= n
        (pubkey, sig[:63], digest),                 # short signature
        (pubkey, sig, digest[:31]),                 # short digest
        (pubkey[:32], sig, digest),                 # short key
        (b"\x05" + pubkey[1:], sig, digest),        # bad prefix
        (off_curve, sig, digest),                   # not on the curve
        (uncompressed, sig, digest),                # another key, uncompressed
        (coincurve.PublicKey(pubkey).format(compressed=False), sig, digest),  # good
        (bytearray(pubkey), sig, digest),           # bytes-like: a good check
        (pubkey, bytearray(sig), memoryview(digest)),
        (None, sig, digest),                        # not bytes at all
        (pubkey, sig, digest),                      # the good one, cached key
    ]


def test_cached_verify_answers_exactly_as_verify_on_every_kind_of_check():
    cache: dict[bytes, object] = {}
    checks = [good(i) for i in range(12)] + malformed_checks()
    rng = random.Random(SEED)
    for trial in range(3):
        rng.shuffle(checks)
        for check in checks:
            expected = verify(*check)  # type: ignore[arg-type]
            got = verify_cached([check], cache) is None  # type: ignore[list-item]
            assert got == expected, (SEED, trial, check)
    assert 0 < len(cache) <= len(KEYS) + 2  # parsed keys (+ 2 uncompressed) kept, malformed not
    assert all(type(key) is bytes for key in cache)


def test_the_key_cache_starts_over_when_full(monkeypatch):
    import o2ocli.crypto.backends as backends

    monkeypatch.setattr(backends, "PUBKEY_CACHE", 3)
    cache: dict[bytes, object] = {}
    assert verify_cached([good(i) for i in range(6)], cache) is None
    assert len(cache) <= 3


@pytest.fixture()
def verifier():
    v = ProcessVerifier(1, min_batch=8)
    v.start()
    yield v
    v.close()


def test_a_worker_killed_mid_block_loses_no_answer(verifier):
    """SIGKILL the worker while it holds chunks: the block's answer is still
    the first failing check, found on this thread; the next block starts a
    new worker."""
    checks = [good(i) for i in range(400)]
    checks[333] = (checks[333][0], checks[333][1], sha256d(b"x"))
    session = verifier.stream(chunk=20)
    session.add(checks[:200])
    (pid,) = verifier._pool.pids
    os.kill(pid, signal.SIGKILL)
    session.add(checks[200:])
    assert session.finish() == 333
    assert not verifier._pool.alive
    session = verifier.stream(chunk=20)
    session.add(checks[:300])
    assert session.finish() is None
    assert verifier._pool.alive and verifier._pool.pids != [pid]


def test_a_cancelled_block_does_not_leak_into_the_next(verifier):
    bad = [(c[0], c[1], sha256d(c[2])) for c in (good(i) for i in range(100))]
    session = verifier.stream(chunk=10)
    session.add(bad)
    session.cancel()  # answers still in flight must not count for the next block
    session = verifier.stream(chunk=10)
    session.add([good(i) for i in range(100)])
    assert session.finish() is None


def elements(n: int, salt: bytes) -> list[bytes]:
    return [sha256d(salt + i.to_bytes(4, "big")) * 2 for i in range(n)]


def test_a_worker_computes_the_same_muhash_products(verifier):
    added, removed = elements(150, b"a"), elements(90, b"r")
    job = verifier.muhash(added, removed)
    assert job is not None
    assert job.result() == products(added, removed)
    # Recent numbers in the worker: removing what it added gives 1 / 1 overall.
    job = verifier.muhash([], added)
    local = MuHash3072().update(added, [], RecentNumbers(16))
    local.update_products(1, job.result()[1])
    assert local.digest() == MuHash3072().digest()


def test_a_muhash_job_whose_worker_dies_is_computed_here(verifier):
    added, removed = elements(300, b"k"), elements(5, b"q")
    job = verifier.muhash(added, removed)
    (pid,) = verifier._pool.pids
    os.kill(pid, signal.SIGKILL)
    assert job.result() == products(added, removed)


def test_no_worker_no_offload():
    v = ProcessVerifier(1)
    try:
        assert v.muhash(elements(100, b"z"), []) is None  # never started: caller computes
    finally:
        v.close()


# -- verifying ahead (prefetch) ---------------------------------------------------------------

from o2ocli.crypto.batch import CachingVerifier  # noqa: E402


def bad(i: int) -> tuple[bytes, bytes, bytes]:
    pubkey, sig, digest = good(i)
    return pubkey, sig, sha256d(digest)


@pytest.fixture()
def caching():
    v = CachingVerifier(ProcessVerifier(1, min_batch=8))
    v.inner.start()
    yield v
    v.close()


def test_prefetched_checks_are_cache_hits_and_failures_are_not_cached(caching):
    checks = [good(i) for i in range(600)]
    checks[10] = bad(10)
    caching.prefetch(checks)
    caching.inner.settle(lambda: bool(caching._inflight))
    assert caching.prefetched == 599 and not caching._inflight
    session = caching.stream()
    session.add(checks[:300])
    assert session.finish() == 10  # the bad one is verified again, and fails
    hits = caching.hits
    session = caching.stream()
    session.add([good(i) for i in range(11, 600)])
    assert session.finish() is None
    assert caching.hits - hits == 589


def test_a_block_whose_checks_are_still_being_prefetched_waits_for_them(caching):
    """Connecting right after the prefetch: the checks in flight are waited
    for (or verified here), never lost, and the first failing index is the
    one a plain batch finds."""
    rng = random.Random(SEED)
    for trial in range(6):
        checks = [good(1000 * trial + i) for i in range(rng.randint(50, 700))]
        for _ in range(rng.randint(0, 2)):
            i = rng.randrange(len(checks))
            checks[i] = bad(1000 * trial + i)
        expected = next((i for i, c in enumerate(checks) if not verify(*c)), None)
        caching.prefetch(checks[: rng.randint(0, len(checks))])
        session = caching.stream()
        pos = 0
        while pos < len(checks):
            step = rng.randint(1, 9)
            session.add(checks[pos : pos + step])
            pos += step
        assert session.finish() == expected, (SEED, trial)
    assert not caching._inflight


def test_a_worker_killed_while_prefetching_loses_nothing(caching):
    checks = [good(i) for i in range(2000)]
    checks[1500] = bad(1500)
    caching.prefetch(checks)
    (pid,) = caching.inner._pool.pids
    os.kill(pid, signal.SIGKILL)
    session = caching.stream()
    session.add(checks)
    assert session.finish() == 1500
    assert not caching._inflight



def test_waiting_messages_are_taken_connecting_block_first_then_ids_then_prefetch():
    """What a worker does next among the messages it has read: the
    connecting block's chunks and MuHash job (the caller waits on them), then
    a waiting block's ids, then prefetched signatures; each kind in the order
    sent (workerproc.take_next, as the worker's loop uses it)."""
    from collections import deque

    from o2ocli.crypto.workerproc import EACH, FIRST, IDS, MUHASH, PING, take_next

    sent = [(EACH, 1, None), (IDS, 2, None), (FIRST, 3, None), (EACH, 4, None),
            (MUHASH, 5, None), (IDS, 6, None), (FIRST, 7, None), (PING, 8, None)]
    waiting = deque(sent)
    taken = [take_next(waiting)[1] for _ in sent]
    assert taken == [3, 5, 7, 8, 2, 6, 1, 4] and not waiting
    only_prefetch = deque([(EACH, 1, None), (EACH, 2, None)])
    assert [take_next(only_prefetch)[1] for _ in range(2)] == [1, 2]

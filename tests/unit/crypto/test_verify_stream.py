"""Streaming signature checks to a worker process (ProcessVerifier): the same
answer as one batch on the calling thread, whatever the chunking."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from o2ocli.crypto.batch import CachingVerifier, ProcessVerifier, verify_batch
from o2ocli.crypto.hashes import sha256d
from o2ocli.crypto.keys import PrivateKey

SEED = int(os.environ.get("O2O_TEST_SEED", "77"))
KEYS = [PrivateKey(sha256d(b"stream" + bytes([i]))) for i in range(8)]


def good_check(i: int) -> tuple[bytes, bytes, bytes]:
    key = KEYS[i % len(KEYS)]
    digest = sha256d(b"msg" + i.to_bytes(4, "big"))
    return key.public_key.to_bytes(), key.sign(digest), digest


def bad_check(i: int) -> tuple[bytes, bytes, bytes]:
    pubkey, sig, digest = good_check(i)
    return pubkey, sig, sha256d(digest)  # signed another digest


CHECKS = [good_check(i) for i in range(300)]


@pytest.fixture(scope="module")
def verifier():
    v = ProcessVerifier(1, min_batch=16)
    yield v
    v.close()


def test_streamed_checks_find_the_first_failure_like_one_batch(verifier):
    rng = random.Random(SEED)
    for trial in range(12):
        checks = list(CHECKS[: rng.randint(1, len(CHECKS))])
        for _ in range(rng.randint(0, 3)):
            i = rng.randrange(len(checks))
            checks[i] = bad_check(i)
        expected = verify_batch(checks)
        session = verifier.stream(chunk=rng.randint(1, 64))
        position = 0
        while position < len(checks):  # handed over in uneven pieces, as txs are
            step = rng.randint(1, 5)
            session.add(checks[position : position + step])
            position += step
        assert session.finish() == expected, (SEED, trial)
        assert verifier(checks) == expected, (SEED, trial)


def test_a_small_block_never_starts_the_worker_process():
    v = ProcessVerifier(1)
    try:
        session = v.stream()
        session.add(CHECKS[:10])
        assert session.finish() is None
        assert v._pool is None
        assert v([bad_check(0)]) == 0 and v._pool is None
    finally:
        v.close()


def test_caching_verifier_streams_only_uncached_checks_and_remembers_passes(verifier):
    caching = CachingVerifier(verifier)
    assert caching(CHECKS[:20]) is None  # now cached
    session = caching.stream()
    session.add(CHECKS[:40])
    session.add([bad_check(40), *CHECKS[41:50]])
    assert session.finish() == 40
    assert caching.hits == 20
    # The passes before the failure were remembered; the failure was not.
    assert all(check in caching._cache for check in CHECKS[:40])
    assert bad_check(40) not in caching._cache


KILLED_PARENT = """
import os
from o2ocli.crypto.batch import ProcessVerifier
if __name__ == "__main__":
    v = ProcessVerifier(1)
    print(" ".join(str(p) for p in v.start()), flush=True)
    os.kill(os.getpid(), 9)
"""


def test_worker_processes_exit_when_their_parent_is_killed():
    root = Path(__file__).resolve().parents[3]  # this checkout's o2ocli, not an installed one
    with subprocess.Popen([sys.executable, "-c", KILLED_PARENT], stdout=subprocess.PIPE,
                          cwd=root) as proc:
        line = proc.stdout.readline()  # not to EOF: a surviving worker holds the pipe
        proc.wait(timeout=120)
    pids = [int(p) for p in line.split()]
    assert pids, "the parent did not start its worker"
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in pids):
        assert time.monotonic() < deadline, f"worker processes {pids} outlived their parent"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True

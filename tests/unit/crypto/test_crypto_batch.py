"""Batch verification: the threaded path gives the same verdicts as the serial one."""

from __future__ import annotations

import pytest

from o2ocli.crypto.batch import ThreadedVerifier, verify_batch
from o2ocli.crypto.hashes import sha256
from o2ocli.crypto.keys import PrivateKey


def make_checks(n: int) -> list[tuple[bytes, bytes, bytes]]:
    checks = []
    for i in range(n):
        key = PrivateKey(sha256(b"batch" + i.to_bytes(4, "big")))
        digest = sha256(b"msg" + i.to_bytes(4, "big"))
        checks.append((key.public_key.to_bytes(), key.sign(digest), digest))
    return checks


def corrupt(check: tuple[bytes, bytes, bytes]) -> tuple[bytes, bytes, bytes]:
    pubkey, sig, digest = check
    return pubkey, sig, bytes([digest[0] ^ 1]) + digest[1:]


@pytest.mark.parametrize("workers,min_batch", [(1, 1), (2, 1), (2, 64), (4, 8)])
def test_all_valid(workers, min_batch):
    verifier = ThreadedVerifier(workers, min_batch)
    try:
        assert verifier(make_checks(150)) is None
        assert verifier([]) is None
    finally:
        verifier.close()


@pytest.mark.parametrize("bad", [[0], [149], [75, 140], [10, 120, 130]])
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_first_failure_index_matches_serial(bad, workers):
    checks = make_checks(150)
    for i in bad:
        checks[i] = corrupt(checks[i])
    verifier = ThreadedVerifier(workers, min_batch=1)
    try:
        assert verifier(checks) == min(bad) == verify_batch(checks)
    finally:
        verifier.close()

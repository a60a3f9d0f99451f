"""CachingVerifier: a signature verified once (mempool) is not verified again
(block connect), and a cached answer is never wrong."""

from __future__ import annotations

from o2ocli.crypto.batch import CachingVerifier, verify_batch
from o2ocli.crypto.hashes import sha256d
from o2ocli.crypto.keys import PrivateKey

KEYS = [PrivateKey(sha256d(b"sigcache" + bytes([i]))) for i in range(4)]


def check(i: int, msg: bytes = b"m") -> tuple[bytes, bytes, bytes]:
    digest = sha256d(msg + bytes([i]))
    return KEYS[i].public_key.to_bytes(), KEYS[i].sign(digest), digest


class Counting:
    def __init__(self) -> None:
        self.seen = 0

    def __call__(self, checks):
        self.seen += len(checks)
        return verify_batch(checks)


def test_passed_checks_are_not_verified_again():
    inner = Counting()
    verifier = CachingVerifier(inner)
    good = [check(i) for i in range(3)]
    assert verifier(good) is None and inner.seen == 3
    assert verifier(good) is None and inner.seen == 3  # all from the cache
    assert verifier.hits == 3
    assert verifier([*good, check(3)]) is None and inner.seen == 4


def test_failures_are_reported_at_their_index_and_never_cached():
    inner = Counting()
    verifier = CachingVerifier(inner)
    good = [check(i) for i in range(3)]
    pubkey, sig, digest = check(1)
    forged = (pubkey, sig, sha256d(b"other"))  # a valid signature on another digest
    verifier(good[:1])  # check 0 cached
    assert verifier([good[0], good[1], forged, good[2]]) == 2
    assert verifier([forged]) == 0  # not cached as good
    assert verifier([good[0], forged]) == 1
    # A cached triple matches only exactly: the same signature under another key fails.
    other_key = (KEYS[2].public_key.to_bytes(), sig, digest)
    assert verifier([good[1], other_key]) == 1


def test_the_cache_is_bounded():
    verifier = CachingVerifier(verify_batch, max_entries=2)
    for i in range(4):
        assert verifier([check(i)]) is None
    assert len(verifier) == 2

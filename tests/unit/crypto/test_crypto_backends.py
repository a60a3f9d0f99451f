"""Backend behaviour and differential tests: coincurve (libsecp256k1) vs python-ecdsa."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
from pathlib import Path

import coincurve
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from o2ocli.crypto import (
    DEFAULT_BACKEND,
    SECP256K1_HALF_N,
    SECP256K1_N,
    Backend,
    der_decode_signature,
    der_encode_signature,
    get_backend,
    sha256,
    sign,
    verify,
)
from o2ocli.crypto.backends import CoincurveBackend, EcdsaBackend

N = SECP256K1_N
CC = get_backend("coincurve")
EC = get_backend("ecdsa")
BACKENDS = [CC, EC]
BACKEND_IDS = ["coincurve", "ecdsa"]


def _b32(x: int) -> bytes:
    return x.to_bytes(32, "big")


def _uncompressed(pubkey33: bytes) -> bytes:
    return coincurve.PublicKey(pubkey33).format(compressed=False)


def _high_s(sig64: bytes) -> bytes:
    return sig64[:32] + _b32(N - int.from_bytes(sig64[32:], "big"))


def _flip(data: bytes, index: int, mask: int = 1) -> bytes:
    out = bytearray(data)
    out[index] ^= mask
    return bytes(out)


EDGE_SECRETS = [1, 2, 3, N - 1, N - 2, SECP256K1_HALF_N, SECP256K1_HALF_N + 1, 2**128, 2**255]
EDGE_DIGESTS = [bytes(32), b"\xff" * 32, _b32(N), _b32(N - 1), _b32(N + 1), _b32(1)]


def _cases(count: int = 200, seed: int = 0x0207) -> list[tuple[bytes, bytes]]:
    rng = random.Random(seed)
    cases = [(_b32(s), d) for s, d in zip(EDGE_SECRETS, EDGE_DIGESTS * 2, strict=False)]
    while len(cases) < count:
        secret = rng.randrange(1, N)
        cases.append((_b32(secret), rng.randbytes(32)))
    return cases


# --------------------------------------------------------------------------- registry


def test_registry():
    assert CC is DEFAULT_BACKEND
    assert isinstance(CC, CoincurveBackend) and CC.name == "coincurve"
    assert isinstance(EC, EcdsaBackend) and EC.name == "ecdsa"
    assert get_backend() is CC
    assert get_backend("ecdsa") is EC
    assert isinstance(CC, Backend) and isinstance(EC, Backend)
    with pytest.raises(ValueError):
        get_backend("openssl")


def test_package_import_does_not_load_ecdsa():
    repo_root = Path(__file__).resolve().parents[3]
    code = (
        "import sys, o2ocli.crypto\n"
        "assert 'ecdsa' not in sys.modules, 'ecdsa imported eagerly'\n"
        "o2ocli.crypto.get_backend('ecdsa')\n"
        "assert 'ecdsa' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=repo_root, check=True)


# --------------------------------------------------------------------------- differential


def test_differential_sign_verify():
    for secret, digest in _cases():
        pk_cc = CC.pubkey_from_secret(secret)
        pk_ec = EC.pubkey_from_secret(secret)
        assert pk_cc == pk_ec and len(pk_cc) == 33
        pk_full = _uncompressed(pk_cc)

        sig_cc = CC.sign(secret, digest)
        sig_ec = EC.sign(secret, digest)
        assert sig_cc == sig_ec, secret.hex()
        assert len(sig_cc) == 64
        s = int.from_bytes(sig_cc[32:], "big")
        assert 1 <= s <= SECP256K1_HALF_N

        high = _high_s(sig_cc)
        bad_digest = _flip(digest, 31)
        bad_sig = _flip(sig_cc, 5)
        for backend in BACKENDS:
            for pk in (pk_cc, pk_full):
                assert backend.verify(pk, sig_cc, digest)
                assert not backend.verify(pk, high, digest, require_low_s=True)
                assert backend.verify(pk, high, digest, require_low_s=False)
                assert not backend.verify(pk, sig_cc, bad_digest)
                assert not backend.verify(pk, sig_cc, bad_digest, require_low_s=False)
                assert not backend.verify(pk, bad_sig, digest, require_low_s=False)
            assert backend.normalize_pubkey(pk_full) == pk_cc
            assert backend.normalize_pubkey(pk_cc) == pk_cc


def test_module_level_sign_verify_is_consensus():
    secret, digest = _b32(0xC0FFEE), sha256(b"consensus")
    pk = CC.pubkey_from_secret(secret)
    sig = sign(secret, digest)
    assert sig == CC.sign(secret, digest)
    assert verify(pk, sig, digest)
    assert not verify(pk, _high_s(sig), digest)


def test_signatures_match_coincurve_high_level_api():
    """Our r||s equals coincurve's own (DER) signature, decoded."""
    for secret, digest in _cases(50, seed=7):
        der = coincurve.PrivateKey(secret).sign(digest, hasher=None)
        assert der_decode_signature(der) == CC.sign(secret, digest)


@settings(max_examples=40, deadline=None)
@given(secret=st.integers(min_value=1, max_value=N - 1), digest=st.binary(min_size=32, max_size=32))
def test_differential_hypothesis(secret, digest):
    sk = _b32(secret)
    sig = CC.sign(sk, digest)
    assert sig == EC.sign(sk, digest)
    pk = CC.pubkey_from_secret(sk)
    assert EC.verify(pk, sig, digest) and CC.verify(pk, sig, digest)


# --------------------------------------------------------------------------- rejection paths

_SECRET = _b32(0x1234567890ABCDEF)
_DIGEST = sha256(b"message")
_PK = CC.pubkey_from_secret(_SECRET)
_PK65 = _uncompressed(_PK)
_SIG = CC.sign(_SECRET, _DIGEST)
_R, _S = _SIG[:32], _SIG[32:]

BAD_VERIFY_INPUTS = {
    "r=0": (_PK, bytes(32) + _S, _DIGEST),
    "s=0": (_PK, _R + bytes(32), _DIGEST),
    "r=n": (_PK, _b32(N) + _S, _DIGEST),
    "s=n": (_PK, _R + _b32(N), _DIGEST),
    "r=n+1": (_PK, _b32(N + 1) + _S, _DIGEST),
    "r,s=ff..": (_PK, b"\xff" * 64, _DIGEST),
    "sig 63 bytes": (_PK, _SIG[:63], _DIGEST),
    "sig 65 bytes": (_PK, _SIG + b"\x00", _DIGEST),
    "sig DER": (_PK, der_encode_signature(_SIG), _DIGEST),
    "digest 31": (_PK, _SIG, _DIGEST[:31]),
    "digest 33": (_PK, _SIG, _DIGEST + b"\x00"),
    "pk empty": (b"", _SIG, _DIGEST),
    "pk 32": (_PK[1:], _SIG, _DIGEST),
    "pk raw64": (_PK65[1:], _SIG, _DIGEST),
    "pk prefix 04 on 33": (b"\x04" + _PK[1:], _SIG, _DIGEST),
    "pk prefix 02 on 65": (b"\x02" + _PK65[1:], _SIG, _DIGEST),
    "pk hybrid 06/07": (bytes([6 + (_PK[0] & 1)]) + _PK65[1:], _SIG, _DIGEST),
    "pk off curve (x=0)": (b"\x02" + bytes(32), _SIG, _DIGEST),
    "pk off curve uncompressed": (_PK65[:-1] + bytes([_PK65[-1] ^ 1]), _SIG, _DIGEST),
    "pk x >= p": (b"\x02" + b"\xff" * 32, _SIG, _DIGEST),
    "pk None": (None, _SIG, _DIGEST),
    "sig None": (_PK, None, _DIGEST),
    "digest None": (_PK, _SIG, None),
    "pk str": ("02" * 33, _SIG, _DIGEST),
    "pk int": (33, _SIG, _DIGEST),
    "wrong key": (CC.pubkey_from_secret(_b32(7)), _SIG, _DIGEST),
}


@pytest.mark.parametrize("backend", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("case", sorted(BAD_VERIFY_INPUTS))
def test_verify_rejects_without_raising(backend, case):
    pk, sig, digest = BAD_VERIFY_INPUTS[case]
    assert backend.verify(pk, sig, digest, require_low_s=True) is False
    assert backend.verify(pk, sig, digest, require_low_s=False) is False


@pytest.mark.parametrize("backend", BACKENDS, ids=BACKEND_IDS)
def test_verify_accepts_bytes_like(backend):
    assert backend.verify(bytearray(_PK), bytearray(_SIG), bytearray(_DIGEST)) is True
    assert backend.verify(memoryview(_PK65), memoryview(_SIG), _DIGEST) is True


@pytest.mark.parametrize("backend", BACKENDS, ids=BACKEND_IDS)
def test_normalize_pubkey_rejects(backend):
    for name in (
        "pk empty",
        "pk 32",
        "pk raw64",
        "pk prefix 04 on 33",
        "pk prefix 02 on 65",
        "pk hybrid 06/07",
        "pk off curve (x=0)",
        "pk off curve uncompressed",
        "pk x >= p",
        "pk None",
        "pk str",
        "pk int",
    ):
        assert backend.normalize_pubkey(BAD_VERIFY_INPUTS[name][0]) is None, name


@pytest.mark.parametrize("backend", BACKENDS, ids=BACKEND_IDS)
def test_sign_and_derive_reject_bad_secret(backend):
    for bad in (bytes(32), _b32(N), _b32(N + 1), b"\xff" * 32, b"\x01" * 31, b"\x01" * 33):
        with pytest.raises(ValueError):
            backend.pubkey_from_secret(bad)
        with pytest.raises(ValueError):
            backend.sign(bad, _DIGEST)
    with pytest.raises(ValueError):
        backend.sign(_SECRET, _DIGEST[:31])


def test_verify_is_thread_safe():
    """Many threads verifying a mix of good and bad signatures all get correct answers."""
    items = []
    for i, (secret, digest) in enumerate(_cases(64, seed=99)):
        pk = CC.pubkey_from_secret(secret)
        sig = CC.sign(secret, digest)
        if i % 3 == 0:
            items.append((pk, _high_s(sig), digest, False))
        elif i % 3 == 1:
            items.append((_uncompressed(pk), sig, digest, True))
        else:
            items.append((pk, sig, _flip(digest, 0), False))
    errors: list[str] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for _ in range(30):
            for pk, sig, digest, expected in items:
                if CC.verify(pk, sig, digest) is not expected:
                    errors.append(pk.hex())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors

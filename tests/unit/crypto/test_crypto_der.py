"""Strict DER signature codec."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from o2ocli.crypto import DerError, der_decode_signature, der_encode_signature

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _sig(r: int, s: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def test_known_encoding():
    sig = _sig(1, 0x80)
    der = der_encode_signature(sig)
    assert der == bytes.fromhex("3007020101020200 80".replace(" ", ""))
    assert der_decode_signature(der) == sig


def test_high_bit_gets_leading_zero_and_max_length():
    sig = _sig(N - 1, N - 1)
    der = der_encode_signature(sig)
    assert len(der) == 72
    assert der[:4] == bytes((0x30, 70, 0x02, 33)) and der[4] == 0
    assert der_decode_signature(der) == sig


def test_round_trip_random_and_edges():
    rng = random.Random(1)
    values = [0, 1, 0x7F, 0x80, 0xFF, 0x100, 2**255 - 1, 2**255, N - 1, N, 2**256 - 1]
    values += [rng.getrandbits(rng.choice((8, 64, 200, 248, 256))) for _ in range(300)]
    for _ in range(500):
        sig = _sig(rng.choice(values), rng.choice(values))
        der = der_encode_signature(sig)
        assert der_decode_signature(der) == sig
        assert 8 <= len(der) <= 72


@given(st.binary(min_size=64, max_size=64))
def test_round_trip_hypothesis(sig):
    assert der_decode_signature(der_encode_signature(sig)) == sig


@given(st.binary(max_size=80))
def test_decode_never_raises_anything_but_der_error(blob):
    try:
        sig = der_decode_signature(blob)
    except DerError:
        return
    # Anything accepted must be canonical: re-encoding gives the same bytes.
    assert der_encode_signature(sig) == blob


@pytest.mark.parametrize("bad", [b"", b"\x00" * 63, b"\x00" * 65])
def test_encode_rejects_wrong_length(bad):
    with pytest.raises(DerError):
        der_encode_signature(bad)


GOOD = bytes.fromhex("3006020101020101")

MALFORMED = {
    "empty": "",
    "only tag": "30",
    "wrong sequence tag": "3106020101020101",
    "sequence len too long": "3007020101020101",
    "sequence len too short": "3005020101020101",
    "trailing byte after sequence": "300602010102010100",
    "trailing bytes inside sequence": "3009020101020101020100",
    "long-form sequence length": "308106020101020101",
    "long-form sequence len 0x80 (indefinite)": "3080020101020101 0000",
    "wrong r tag": "3006030101020101",
    "wrong s tag": "3006020101030101",
    "zero-length r": "30050200020101",
    "zero-length s": "30050201010200",
    "r length overruns": "3006020201020101",
    "s length overruns": "3006020101020201",
    "missing s": "3003020101",
    "negative r": "3006020181020101",
    "negative s": "3006020101020181",
    "non-minimal r (00 01)": "300702020001020101",
    "non-minimal s (00 7f)": "30070201010202007f",
    "non-minimal r (00 00)": "300702020000020101",
    "long-form r length": "300702810101020101",
    "r = 2^256 (33 bytes, leading 01)": "3026" + "0221" + "01" + "00" * 32 + "020101",
    "r 33 bytes high": "3026" + "0221" + "ff" * 33 + "020101",
    "r 34 bytes": "3027" + "0222" + "0080" + "00" * 32 + "020101",
    "r = 2^256 with leading zero": "3027" + "0222" + "0001" + "00" * 32 + "020101",
    "sequence of three integers": "3009020101020101020101",
    "not a sequence at all": "020101",
    "too long overall": "3049" + "0221" + "00" + "ff" * 32 + "0224" + "00" * 36,
}


def test_good_minimal_signature_decodes():
    assert der_decode_signature(GOOD) == _sig(1, 1)


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_rejected(name):
    blob = bytes.fromhex(MALFORMED[name].replace(" ", ""))
    with pytest.raises(DerError):
        der_decode_signature(blob)


def test_non_bytes_rejected():
    with pytest.raises(DerError):
        der_decode_signature("3006020101020101")  # type: ignore[arg-type]
    assert issubclass(DerError, ValueError)

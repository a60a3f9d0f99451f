"""PrivateKey / PublicKey."""

from __future__ import annotations

import copy
import pickle

import coincurve
import pytest

from o2ocli.crypto import (
    SECP256K1_N,
    InvalidKeyError,
    PrivateKey,
    PublicKey,
    get_backend,
    hash160,
    sha256,
    verify,
)

N = SECP256K1_N
G_COMPRESSED = bytes.fromhex("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
G_UNCOMPRESSED = bytes.fromhex(
    "0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
    "483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8"
)


def _b32(x: int) -> bytes:
    return x.to_bytes(32, "big")


@pytest.mark.parametrize(
    "secret",
    [bytes(32), _b32(N), _b32(N + 1), b"\xff" * 32, b"\x01" * 31, b"\x01" * 33, b""],
    ids=["zero", "n", "n+1", "max", "31 bytes", "33 bytes", "empty"],
)
def test_private_key_range(secret):
    with pytest.raises(InvalidKeyError):
        PrivateKey(secret)


def test_private_key_rejects_non_bytes():
    with pytest.raises(InvalidKeyError):
        PrivateKey(1)  # type: ignore[arg-type]
    with pytest.raises(InvalidKeyError):
        PrivateKey("00" * 32)  # type: ignore[arg-type]
    assert issubclass(InvalidKeyError, ValueError)


def test_private_key_bounds_accepted():
    for value in (1, 2, N - 1):
        key = PrivateKey(_b32(value))
        assert key.secret == _b32(value)
    assert PrivateKey(_b32(1)).public_key.to_bytes() == G_COMPRESSED


def test_generate():
    keys = {PrivateKey.generate().secret for _ in range(20)}
    assert len(keys) == 20
    for secret in keys:
        assert 1 <= int.from_bytes(secret, "big") < N


def test_repr_does_not_leak_secret():
    secret = bytes.fromhex("8f8943bf956de595665c38ffff23827e17c10cdc1c27a028caae6c9810626198")
    key = PrivateKey(secret)
    for text in (repr(key), str(key), f"{key}", repr([key])):
        assert secret.hex() not in text.lower()
        assert secret.hex()[:16] not in text.lower()
        assert str(int.from_bytes(secret, "big")) not in text
    assert key.public_key.to_bytes().hex() in repr(key)


def test_private_key_immutable_and_cached_public_key():
    key = PrivateKey(_b32(12345))
    pub = key.public_key
    assert key.public_key is pub
    with pytest.raises(AttributeError):
        key.secret = _b32(2)  # type: ignore[misc]
    with pytest.raises(AttributeError):
        key._secret = _b32(2)  # type: ignore[misc]
    with pytest.raises(AttributeError):
        key.other = 1  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        del key._secret
    assert key.secret == _b32(12345)


def test_private_key_equality_copy_pickle():
    a, b = PrivateKey(_b32(99)), PrivateKey(_b32(99))
    assert a == b and hash(a) == hash(b)
    assert a != PrivateKey(_b32(100))
    assert copy.copy(a) == a and copy.deepcopy(a) == a
    assert pickle.loads(pickle.dumps(a)) == a


def test_sign_and_verify():
    key = PrivateKey(_b32(0xDEADBEEF))
    digest = sha256(b"hello")
    sig = key.sign(digest)
    assert len(sig) == 64
    assert sig == get_backend("ecdsa").sign(key.secret, digest)
    assert key.public_key.verify(sig, digest)
    assert verify(key.public_key.to_bytes(), sig, digest)
    assert not key.public_key.verify(sig, sha256(b"hellO"))
    assert not PrivateKey(_b32(1)).public_key.verify(sig, digest)
    high = sig[:32] + _b32(N - int.from_bytes(sig[32:], "big"))
    assert not key.public_key.verify(high, digest)
    with pytest.raises(ValueError):
        key.sign(digest[:31])


def test_public_key_normalizes_uncompressed():
    a = PublicKey(G_UNCOMPRESSED)
    b = PublicKey(G_COMPRESSED)
    assert a.to_bytes() == G_COMPRESSED and len(a.to_bytes()) == 33
    assert a == b and hash(a) == hash(b)
    assert bytes(a) == G_COMPRESSED
    assert a.hash160() == hash160(G_COMPRESSED)
    assert a.hash160().hex() == "751e76e8199196d454941c45d1b3a323f1433bd6"
    assert PublicKey(bytearray(G_COMPRESSED)) == a
    assert {a, b} == {a}
    assert a != G_COMPRESSED
    assert pickle.loads(pickle.dumps(a)) == a
    with pytest.raises(AttributeError):
        a._data = b"x"  # type: ignore[misc]


def test_public_key_odd_y():
    pub = coincurve.PrivateKey(_b32(3)).public_key
    full = pub.format(compressed=False)
    assert PublicKey(full).to_bytes() == pub.format(compressed=True)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        G_COMPRESSED[1:],
        G_UNCOMPRESSED[1:],  # raw 64-byte point
        G_COMPRESSED + b"\x00",
        b"\x04" + G_COMPRESSED[1:],
        b"\x02" + G_UNCOMPRESSED[1:],
        b"\x06" + G_UNCOMPRESSED[1:],  # hybrid encoding
        b"\x07" + G_UNCOMPRESSED[1:],
        b"\x02" + bytes(32),  # x = 0 is not on the curve
        b"\x02" + b"\xff" * 32,  # x >= p
        G_UNCOMPRESSED[:-1] + bytes([G_UNCOMPRESSED[-1] ^ 1]),  # off-curve y
        b"\x04" + bytes(64),
    ],
)
def test_public_key_rejects_invalid(data):
    with pytest.raises(InvalidKeyError):
        PublicKey(data)


def test_public_key_rejects_non_bytes():
    with pytest.raises(InvalidKeyError):
        PublicKey(G_COMPRESSED.hex())  # type: ignore[arg-type]

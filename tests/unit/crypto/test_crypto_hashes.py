"""Known-answer tests for the hash helpers."""

from __future__ import annotations

from o2ocli.crypto import hash160, sha256, sha256d
from o2ocli.crypto.hashes import RIPEMD160_IMPL, ripemd160

G_COMPRESSED = bytes.fromhex("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
G_UNCOMPRESSED = bytes.fromhex(
    "0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
    "483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8"
)


def test_sha256():
    assert sha256(b"").hex() == ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert sha256(b"abc").hex() == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_sha256d():
    assert sha256d(b"").hex() == (
        "5df6e0e2761359d30a8275058e299fcc0381534545f55cf43e41983f5d4c9456"
    )
    assert sha256d(b"abc") == sha256(sha256(b"abc"))


def test_ripemd160():
    assert RIPEMD160_IMPL in ("hashlib", "pycryptodome")
    assert ripemd160(b"").hex() == "9c1185a5c5e9fc54612808977ee8f548b2258d31"
    assert ripemd160(b"abc").hex() == "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc"


def test_hash160_of_generator_point():
    # Public keys of secret 1 (addresses 1BgGZ9tc... and 1EHNa6Q4...).
    assert hash160(G_COMPRESSED).hex() == "751e76e8199196d454941c45d1b3a323f1433bd6"
    assert hash160(G_UNCOMPRESSED).hex() == "91b24bf9f5288532960ac687abb035127b1d28a5"


def test_accepts_bytes_like():
    assert sha256(bytearray(b"abc")) == sha256(b"abc")
    assert hash160(memoryview(G_COMPRESSED)) == hash160(G_COMPRESSED)

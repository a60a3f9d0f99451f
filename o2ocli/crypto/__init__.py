"""Cryptographic primitives for o2ocli: hashes, secp256k1 ECDSA, keys, Base58Check, addresses.

Signatures are 64 bytes ``r || s`` and always low-S; :func:`verify` is the consensus check.
The pure-Python ``ecdsa`` reference backend is loaded only on ``get_backend("ecdsa")``.
"""

from __future__ import annotations

from .address import (
    AddressError,
    WifError,
    address_from_pubkey,
    decode_address,
    decode_wif,
    encode_address,
    encode_wif,
)
from .backends import (
    DEFAULT_BACKEND,
    SECP256K1_HALF_N,
    SECP256K1_N,
    Backend,
    get_backend,
    sign,
    verify,
)
from .base58check import Base58Error, b58check_decode, b58check_encode, b58decode, b58encode
from .der import DerError, der_decode_signature, der_encode_signature
from .hashes import hash160, sha256, sha256d
from .keys import InvalidKeyError, PrivateKey, PublicKey

__all__ = [
    "DEFAULT_BACKEND",
    "SECP256K1_HALF_N",
    "SECP256K1_N",
    "AddressError",
    "Backend",
    "Base58Error",
    "DerError",
    "InvalidKeyError",
    "PrivateKey",
    "PublicKey",
    "WifError",
    "address_from_pubkey",
    "b58check_decode",
    "b58check_encode",
    "b58decode",
    "b58encode",
    "decode_address",
    "decode_wif",
    "der_decode_signature",
    "der_encode_signature",
    "encode_address",
    "encode_wif",
    "get_backend",
    "hash160",
    "sha256",
    "sha256d",
    "sign",
    "verify",
]

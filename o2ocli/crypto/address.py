"""Base58Check addresses (version byte || HASH160) and WIF private keys.

The version bytes are supplied by the caller (they come from the chain parameters), e.g.
``0x00``/``0x80`` for a mainnet-style P2PKH address/WIF and ``0x6f``/``0xef`` for testnet.
"""

from __future__ import annotations

from .backends import DEFAULT_BACKEND, SECP256K1_N
from .base58check import Base58Error, b58check_decode, b58check_encode
from .hashes import hash160

__all__ = [
    "AddressError",
    "WifError",
    "address_from_pubkey",
    "decode_address",
    "decode_wif",
    "encode_address",
    "encode_wif",
]

# Longest legitimate strings are 35 (address) and 52 (WIF) characters; anything much longer is
# refused before the quadratic Base58 decode runs.
_MAX_ENCODED_LEN = 128
_N_BYTES = SECP256K1_N.to_bytes(32, "big")
_ZERO32 = bytes(32)


class AddressError(ValueError):
    """Raised when a string is not a valid address for the expected network."""


class WifError(AddressError):
    """Raised when a string is not a valid WIF private key for the expected network."""


def _check_version(version: int) -> None:
    if not isinstance(version, int) or isinstance(version, bool) or not 0 <= version <= 0xFF:
        raise ValueError(f"version must be an int in [0, 255], got {version!r}")


def _b58check_payload(s: str, what: str, error: type[AddressError]) -> bytes:
    """Base58Check-decode *s*, converting every failure to *error*."""
    if not isinstance(s, str):
        raise error(f"{what} must be a str, got {type(s).__name__}")
    if not s:
        raise error(f"{what} is empty")
    if len(s) > _MAX_ENCODED_LEN:
        raise error(f"{what} is too long ({len(s)} characters)")
    try:
        return b58check_decode(s)
    except Base58Error as exc:
        raise error(f"invalid {what}: {exc}") from None


def encode_address(pubkey_hash: bytes, version: int) -> str:
    """Return Base58Check(version || pubkey_hash) for a 20-byte HASH160."""
    _check_version(version)
    if not isinstance(pubkey_hash, bytes | bytearray) or len(pubkey_hash) != 20:
        raise ValueError("pubkey_hash must be 20 bytes")
    return b58check_encode(bytes((version,)) + bytes(pubkey_hash))


def address_from_pubkey(pubkey: bytes, version: int) -> str:
    """Return the address of a SEC1 public key (33 or 65 bytes).

    The key is validated and normalized to its 33-byte compressed form before hashing, so a
    key has exactly one address (the HASH160 of the compressed encoding, as
    :meth:`o2ocli.crypto.keys.PublicKey.hash160`). Raises :class:`AddressError` for an invalid key.
    """
    compressed = DEFAULT_BACKEND.normalize_pubkey(pubkey)
    if compressed is None:
        raise AddressError("not a valid secp256k1 public key")
    return encode_address(hash160(compressed), version)


def decode_address(s: str, version: int) -> bytes:
    """Decode an address and return its 20-byte HASH160.

    Raises :class:`AddressError` for a non-str, bad characters, a bad checksum, a payload that
    is not 21 bytes, or a version byte other than *version* (another network).
    """
    _check_version(version)
    payload = _b58check_payload(s, "address", AddressError)
    if len(payload) != 21:
        raise AddressError(
            f"invalid address: payload is {len(payload)} bytes, expected 21 (version + hash160)"
        )
    if payload[0] != version:
        raise AddressError(
            f"address is for another network (version 0x{payload[0]:02x}), expected 0x{version:02x}"
        )
    return payload[1:]


def encode_wif(secret: bytes, *, compressed: bool = True, version: int = 0x80) -> str:
    """Encode a 32-byte secret as WIF: Base58Check(version || secret [|| 0x01 if compressed])."""
    _check_version(version)
    if not isinstance(secret, bytes | bytearray) or len(secret) != 32:
        raise ValueError("secret must be 32 bytes")
    secret = bytes(secret)
    if secret == _ZERO32 or secret >= _N_BYTES:
        raise ValueError("secret is out of range [1, n-1]")
    body = bytes((version,)) + secret + (b"\x01" if compressed else b"")
    return b58check_encode(body)


def decode_wif(s: str, *, version: int = 0x80) -> tuple[bytes, bool]:
    """Decode a WIF private key; return ``(secret, compressed)``.

    Raises :class:`WifError` for a non-str, bad characters, a bad checksum, a payload that is
    neither 33 bytes nor 34 bytes ending in 0x01, a version byte other than *version*, or a
    secret outside [1, n-1].
    """
    _check_version(version)
    payload = _b58check_payload(s, "WIF private key", WifError)
    if len(payload) == 33:
        compressed = False
    elif len(payload) == 34:
        if payload[33] != 0x01:
            raise WifError(
                f"invalid WIF private key: compression flag is 0x{payload[33]:02x}, expected 0x01"
            )
        compressed = True
    else:
        raise WifError(
            f"invalid WIF private key: payload is {len(payload)} bytes, expected 33 or 34"
        )
    if payload[0] != version:
        raise WifError(
            f"WIF private key is for another network (version 0x{payload[0]:02x}), "
            f"expected 0x{version:02x}"
        )
    secret = payload[1:33]
    if secret == _ZERO32 or secret >= _N_BYTES:
        raise WifError("invalid WIF private key: secret is out of range [1, n-1]")
    return secret, compressed

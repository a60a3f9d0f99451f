"""Base58 (Bitcoin alphabet) and Base58Check encoding.

Thin, strict wrappers around the ``base58`` package: decoding rejects every character outside
the alphabet, including whitespace (the package itself silently strips trailing whitespace).
"""

from __future__ import annotations

import hmac

import base58

from .hashes import sha256d

__all__ = [
    "ALPHABET",
    "Base58Error",
    "b58check_decode",
    "b58check_encode",
    "b58decode",
    "b58encode",
]

#: The Bitcoin Base58 alphabet (no 0, O, I or l).
ALPHABET = base58.BITCOIN_ALPHABET.decode("ascii")
_ALPHABET_SET = frozenset(ALPHABET)


class Base58Error(ValueError):
    """Raised for strings that are not valid Base58 or fail the Base58Check checksum."""


def b58encode(data: bytes) -> str:
    """Encode bytes as Base58 (no checksum). Each leading zero byte becomes a ``1``."""
    return base58.b58encode(bytes(data)).decode("ascii")


def b58decode(s: str) -> bytes:
    """Decode a Base58 string (no checksum).

    Raises :class:`Base58Error` if *s* is not a ``str`` or contains any character outside the
    Base58 alphabet (whitespace included).
    """
    if not isinstance(s, str):
        raise Base58Error(f"expected str, got {type(s).__name__}")
    if not _ALPHABET_SET.issuperset(s):
        bad = next(c for c in s if c not in _ALPHABET_SET)
        raise Base58Error(f"invalid Base58 character {bad!r}")
    return base58.b58decode(s)


def b58check_encode(payload: bytes) -> str:
    """Encode *payload* followed by its 4-byte double-SHA-256 checksum as Base58."""
    payload = bytes(payload)
    return b58encode(payload + sha256d(payload)[:4])


def b58check_decode(s: str) -> bytes:
    """Decode a Base58Check string and return the payload without its checksum.

    Raises :class:`Base58Error` for invalid characters, input shorter than a checksum, or a
    checksum mismatch.
    """
    raw = b58decode(s)
    if len(raw) < 4:
        raise Base58Error("Base58Check string is too short to hold a checksum")
    payload, checksum = raw[:-4], raw[-4:]
    if not hmac.compare_digest(sha256d(payload)[:4], checksum):
        raise Base58Error("Base58Check checksum mismatch")
    return payload

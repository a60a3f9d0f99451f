"""Strict DER codec for ECDSA signatures (``SEQUENCE { r INTEGER, s INTEGER }``).

Internally the node handles signatures as 64 bytes ``r || s`` (two 32-byte big-endian
integers). DER only appears at the edges (imports, interop, test vectors), and the decoder
accepts exactly one encoding per signature: the minimal, definite-length DER form. Range checks
against the curve order are left to the verifier; values that do not fit in 32 bytes are
rejected here.
"""

from __future__ import annotations

__all__ = ["DerError", "der_decode_signature", "der_encode_signature"]

_SEQUENCE = 0x30
_INTEGER = 0x02
# 0x30 len 0x02 len r(<=33) 0x02 len s(<=33)
_MAX_DER_LEN = 6 + 33 + 33


class DerError(ValueError):
    """Raised when bytes are not a strict-DER ECDSA signature (or cannot be encoded as one)."""


def _encode_integer(value: bytes) -> bytes:
    """DER-encode a non-negative big-endian integer given as raw bytes."""
    value = value.lstrip(b"\x00") or b"\x00"
    if value[0] & 0x80:
        value = b"\x00" + value
    return bytes((_INTEGER, len(value))) + value


def der_encode_signature(sig64: bytes) -> bytes:
    """Encode a 64-byte ``r || s`` signature as strict DER.

    Raises :class:`DerError` if *sig64* is not exactly 64 bytes.
    """
    if len(sig64) != 64:
        raise DerError(f"signature must be 64 bytes (r || s), got {len(sig64)}")
    body = _encode_integer(sig64[:32]) + _encode_integer(sig64[32:])
    return bytes((_SEQUENCE, len(body))) + body


def _decode_integer(der: bytes, pos: int, name: str) -> tuple[bytes, int]:
    """Parse one strict-DER INTEGER at *pos*; return (32-byte value, next position)."""
    if pos + 2 > len(der):
        raise DerError(f"truncated signature: missing {name}")
    if der[pos] != _INTEGER:
        raise DerError(f"{name}: expected INTEGER tag 0x02, got 0x{der[pos]:02x}")
    length = der[pos + 1]
    if length & 0x80:
        # Long-form lengths are never minimal for values this small.
        raise DerError(f"{name}: long-form length is not allowed")
    if length == 0:
        raise DerError(f"{name}: zero-length integer")
    start = pos + 2
    end = start + length
    if end > len(der):
        raise DerError(f"{name}: length exceeds the signature")
    value = der[start:end]
    if value[0] & 0x80:
        raise DerError(f"{name}: negative integer")
    if length > 1 and value[0] == 0 and not value[1] & 0x80:
        raise DerError(f"{name}: non-minimal integer encoding (superfluous leading zero)")
    if length > 33 or (length == 33 and value[0] != 0):
        raise DerError(f"{name}: integer does not fit in 32 bytes")
    if length == 33:
        value = value[1:]
    return value.rjust(32, b"\x00"), end


def der_decode_signature(der: bytes) -> bytes:
    """Decode a strict-DER ECDSA signature into 64 bytes ``r || s``.

    Raises :class:`DerError` for empty or truncated input, wrong tags, long-form or
    inconsistent lengths, trailing bytes, negative or non-minimally encoded integers, and
    integers of 2**256 or more. Zero values and values >= the curve order are *not* rejected
    here; the verifier does that.
    """
    if not isinstance(der, bytes | bytearray | memoryview):
        raise DerError(f"expected bytes, got {type(der).__name__}")
    der = bytes(der)
    if len(der) < 8:
        raise DerError(f"signature too short ({len(der)} bytes)")
    if len(der) > _MAX_DER_LEN:
        raise DerError(f"signature too long ({len(der)} bytes)")
    if der[0] != _SEQUENCE:
        raise DerError(f"expected SEQUENCE tag 0x30, got 0x{der[0]:02x}")
    if der[1] & 0x80:
        raise DerError("long-form sequence length is not allowed")
    if der[1] != len(der) - 2:
        raise DerError(
            f"sequence length {der[1]} does not match the {len(der) - 2} bytes that follow"
        )
    r, pos = _decode_integer(der, 2, "r")
    s, pos = _decode_integer(der, pos, "s")
    if pos != len(der):
        raise DerError(f"{len(der) - pos} trailing bytes inside the sequence")
    return r + s

"""Canonical binary encoding primitives.

Every structure in :mod:`o2ocli.core` is encoded with these few primitives,
and there is exactly one encoding for every value:

* fixed-width unsigned integers are little-endian (``u8``, ``u16``, ``u32``,
  ``u64``);
* lengths and counts are *varints* in Bitcoin's CompactSize form (one byte
  below ``0xfd``; ``0xfd`` + u16; ``0xfe`` + u32; ``0xff`` + u64) and must use
  the shortest form, otherwise decoding fails;
* variable-length byte strings are a varint length followed by the bytes.

:class:`Reader` is the only way untrusted bytes are read.  Every read checks
that enough bytes remain, every length is capped by the caller *before*
anything is allocated, and :meth:`Reader.finish` refuses trailing bytes.  All
failures raise :class:`DecodeError` with a readable reason.
"""

from __future__ import annotations

import struct

__all__ = [
    "DecodeError",
    "Reader",
    "Writer",
    "varint_size",
    "domain_preimage",
    "MAX_U64",
    "MAX_U32",
]

MAX_U32 = 0xFFFF_FFFF
MAX_U64 = 0xFFFF_FFFF_FFFF_FFFF

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class DecodeError(ValueError):
    """Raised for any malformed encoding; ``str(err)`` is a readable reason."""


def varint_size(n: int) -> int:
    """Number of bytes the canonical varint encoding of ``n`` takes."""
    if n < 0xFD:
        return 1
    if n <= 0xFFFF:
        return 3
    if n <= MAX_U32:
        return 5
    return 9


class Writer:
    """Append-only encoder; ``bytes(writer)`` or :meth:`getvalue` gives the result."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def getvalue(self) -> bytes:
        """The bytes written so far."""
        return bytes(self._buf)

    def __len__(self) -> int:
        return len(self._buf)

    def raw(self, data: bytes) -> None:
        """Append ``data`` verbatim (fixed-size fields)."""
        self._buf += data

    def u8(self, n: int) -> None:
        """Append one byte."""
        if not 0 <= n <= 0xFF:
            raise ValueError(f"u8 out of range: {n}")
        self._buf.append(n)

    def u16(self, n: int) -> None:
        """Append a little-endian u16."""
        self._buf += _U16.pack(n)

    def u32(self, n: int) -> None:
        """Append a little-endian u32."""
        self._buf += _U32.pack(n)

    def u64(self, n: int) -> None:
        """Append a little-endian u64."""
        self._buf += _U64.pack(n)

    def varint(self, n: int) -> None:
        """Append ``n`` as a canonical (shortest) CompactSize varint."""
        if n < 0:
            raise ValueError("varint cannot be negative")
        if n < 0xFD:
            self._buf.append(n)
        elif n <= 0xFFFF:
            self._buf.append(0xFD)
            self._buf += _U16.pack(n)
        elif n <= MAX_U32:
            self._buf.append(0xFE)
            self._buf += _U32.pack(n)
        elif n <= MAX_U64:
            self._buf.append(0xFF)
            self._buf += _U64.pack(n)
        else:
            raise ValueError("varint too large")

    def var_bytes(self, data: bytes) -> None:
        """Append a varint length and then ``data``."""
        self.varint(len(data))
        self._buf += data


def domain_preimage(tag: bytes, chain_id: str, data: bytes) -> bytes:
    """``var_bytes(tag) ‖ var_bytes(chain_id as UTF-8) ‖ data``: what every
    signed digest hashes, so a signature is bound to its purpose and network."""
    cid = chain_id.encode()
    if len(tag) < 0xFD and len(cid) < 0xFD:  # one-byte lengths: the usual case
        return b"".join((bytes((len(tag),)), tag, bytes((len(cid),)), cid, data))
    w = Writer()
    w.var_bytes(tag)
    w.var_bytes(cid)
    w.raw(data)
    return w.getvalue()


class Reader:
    """Bounds-checked decoder over a bytes-like object.

    ``what`` arguments name the field being read; they appear in the error
    message so a user learns *which* field is malformed.
    """

    __slots__ = ("_data", "_pos", "_end")

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise DecodeError(f"expected bytes, got {type(data).__name__}")
        self._data = bytes(data)
        self._pos = 0
        self._end = len(self._data)

    @property
    def pos(self) -> int:
        """Offset of the next unread byte."""
        return self._pos

    @property
    def remaining(self) -> int:
        """Number of unread bytes."""
        return self._end - self._pos

    def slice(self, start: int, end: int) -> bytes:
        """Bytes between two offsets already read (used to hash an encoded prefix)."""
        return self._data[start:end]

    def raw(self, n: int, what: str = "field") -> bytes:
        """Read exactly ``n`` bytes."""
        pos = self._pos
        end = pos + n
        if end > self._end:
            raise DecodeError(f"truncated {what}: need {n} bytes, {self._end - pos} left")
        self._pos = end
        return self._data[pos:end]

    def u8(self, what: str = "u8") -> int:
        """Read one byte."""
        pos = self._pos
        if pos >= self._end:
            raise DecodeError(f"truncated {what}: need 1 byte, 0 left")
        self._pos = pos + 1
        return self._data[pos]

    def u16(self, what: str = "u16") -> int:
        """Read a little-endian u16."""
        pos = self._pos
        if pos + 2 > self._end:
            raise DecodeError(f"truncated {what}: need 2 bytes, {self._end - pos} left")
        self._pos = pos + 2
        return _U16.unpack_from(self._data, pos)[0]

    def u32(self, what: str = "u32") -> int:
        """Read a little-endian u32."""
        pos = self._pos
        if pos + 4 > self._end:
            raise DecodeError(f"truncated {what}: need 4 bytes, {self._end - pos} left")
        self._pos = pos + 4
        return _U32.unpack_from(self._data, pos)[0]

    def u64(self, what: str = "u64") -> int:
        """Read a little-endian u64."""
        pos = self._pos
        if pos + 8 > self._end:
            raise DecodeError(f"truncated {what}: need 8 bytes, {self._end - pos} left")
        self._pos = pos + 8
        return _U64.unpack_from(self._data, pos)[0]

    def varint(self, what: str = "varint", maximum: int = MAX_U64) -> int:
        """Read a canonical varint no larger than ``maximum``."""
        pos = self._pos
        if pos >= self._end:
            raise DecodeError(f"truncated {what}: need 1 byte, 0 left")
        first = self._data[pos]
        if first < 0xFD:
            self._pos = pos + 1
            n = first
        else:
            self._pos = pos + 1
            if first == 0xFD:
                n = self.u16(what)
                if n < 0xFD:
                    raise DecodeError(f"non-canonical varint in {what}")
            elif first == 0xFE:
                n = self.u32(what)
                if n <= 0xFFFF:
                    raise DecodeError(f"non-canonical varint in {what}")
            else:
                n = self.u64(what)
                if n <= MAX_U32:
                    raise DecodeError(f"non-canonical varint in {what}")
        if n > maximum:
            raise DecodeError(f"{what} too large: {n} > {maximum}")
        return n

    def count(self, what: str, maximum: int) -> int:
        """Read a list length, capped at ``maximum`` before anything is allocated."""
        return self.varint(f"{what} count", maximum)

    def var_bytes(self, what: str, maximum: int) -> bytes:
        """Read a varint length (≤ ``maximum``) followed by that many bytes."""
        n = self.varint(f"{what} length", maximum)
        return self.raw(n, what)

    def finish(self, what: str = "data") -> None:
        """Fail if any bytes are left unread."""
        if self._pos != self._end:
            raise DecodeError(f"{self._end - self._pos} trailing bytes after {what}")

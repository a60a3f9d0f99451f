"""The canonical encoding primitives: :class:`Writer`, :class:`Reader`, varints."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from o2ocli.core.encoding import MAX_U32, MAX_U64, DecodeError, Reader, Writer, varint_size

from .strategies import u32s, u64s

FAST = settings(max_examples=200, deadline=None)

# (value, exact canonical encoding)
VARINT_BOUNDARIES = [
    (0, "00"),
    (1, "01"),
    (0xFC, "fc"),
    (0xFD, "fdfd00"),
    (0xFE, "fdfe00"),
    (0xFF, "fdff00"),
    (0x100, "fd0001"),
    (0xFFFF, "fdffff"),
    (0x1_0000, "fe00000100"),
    (MAX_U32, "feffffffff"),
    (MAX_U32 + 1, "ff0000000001000000"),
    (MAX_U64, "ffffffffffffffffff"),
]


def _varint(n: int) -> bytes:
    w = Writer()
    w.varint(n)
    return w.getvalue()


def _long_form(n: int, prefix: int) -> bytes:
    """``n`` encoded with the given (possibly too long) CompactSize prefix."""
    fmt = {0xFD: "<H", 0xFE: "<I", 0xFF: "<Q"}[prefix]
    return bytes([prefix]) + struct.pack(fmt, n)


# -- varints -------------------------------------------------------------------


@pytest.mark.parametrize(("value", "encoded"), VARINT_BOUNDARIES)
def test_varint_boundaries_exact_bytes(value, encoded):
    data = _varint(value)
    assert data.hex() == encoded
    assert len(data) == varint_size(value)
    r = Reader(data)
    assert r.varint() == value
    r.finish()


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (0, 1),
        (0xFC, 1),
        (0xFD, 3),
        (0xFFFF, 3),
        (0x1_0000, 5),
        (MAX_U32, 5),
        (MAX_U32 + 1, 9),
        (MAX_U64, 9),
    ],
)
def test_varint_size(value, size):
    assert varint_size(value) == size


@FAST
@given(u64s)
def test_varint_roundtrip(n):
    data = _varint(n)
    assert len(data) == varint_size(n)
    r = Reader(data)
    assert r.varint() == n
    assert r.remaining == 0


def test_varint_writer_rejects_out_of_range():
    w = Writer()
    with pytest.raises(ValueError, match="negative"):
        w.varint(-1)
    with pytest.raises(ValueError, match="too large"):
        w.varint(MAX_U64 + 1)
    assert len(w) == 0


@pytest.mark.parametrize(
    ("value", "prefix"),
    [
        # every value below 0xfd in each long form
        (0, 0xFD),
        (0xFC, 0xFD),
        (0, 0xFE),
        (0xFC, 0xFE),
        (0, 0xFF),
        (0xFC, 0xFF),
        # 16-bit values in the 32- and 64-bit forms
        (0xFD, 0xFE),
        (0xFFFF, 0xFE),
        (0xFD, 0xFF),
        (0xFFFF, 0xFF),
        # 32-bit values in the 64-bit form
        (0x1_0000, 0xFF),
        (MAX_U32, 0xFF),
    ],
)
def test_noncanonical_varint_boundaries_rejected(value, prefix):
    with pytest.raises(DecodeError, match="non-canonical varint in length"):
        Reader(_long_form(value, prefix)).varint("length")


@FAST
@given(st.data())
def test_every_noncanonical_varint_rejected(data):
    n = data.draw(u64s)
    canonical = _varint(n)
    longer = [p for p, size in ((0xFD, 3), (0xFE, 5), (0xFF, 9)) if size > len(canonical)]
    longer = [p for p in longer if n <= {0xFD: 0xFFFF, 0xFE: MAX_U32, 0xFF: MAX_U64}[p]]
    if not longer:
        return  # n needs the 9-byte form: it has no longer encoding
    prefix = data.draw(st.sampled_from(longer))
    with pytest.raises(DecodeError, match="non-canonical"):
        Reader(_long_form(n, prefix)).varint()


@FAST
@given(u64s)
def test_canonical_forms_accepted(n):
    # For each prefix, the value range it may carry is exactly the canonical one.
    for prefix, lo, hi in (
        (0xFD, 0xFD, 0xFFFF),
        (0xFE, 0x1_0000, MAX_U32),
        (0xFF, MAX_U32 + 1, MAX_U64),
    ):
        if lo <= n <= hi:
            assert Reader(_long_form(n, prefix)).varint() == n


@pytest.mark.parametrize(("value", "encoded"), VARINT_BOUNDARIES)
def test_varint_truncated_at_every_position(value, encoded):
    data = bytes.fromhex(encoded)
    for cut in range(len(data)):
        with pytest.raises(DecodeError, match="truncated size"):
            Reader(data[:cut]).varint("size")


def test_varint_maximum_enforced():
    assert Reader(_varint(10)).varint("count", maximum=10) == 10
    with pytest.raises(DecodeError, match=r"count too large: 11 > 10"):
        Reader(_varint(11)).varint("count", maximum=10)


# -- fixed-width integers ----------------------------------------------------------


@FAST
@given(st.integers(0, 0xFF), st.integers(0, 0xFFFF), u32s, u64s)
def test_fixed_width_roundtrip_little_endian(a, b, c, d):
    w = Writer()
    w.u8(a)
    w.u16(b)
    w.u32(c)
    w.u64(d)
    data = w.getvalue()
    assert data == bytes([a]) + b.to_bytes(2, "little") + c.to_bytes(4, "little") + d.to_bytes(
        8, "little"
    )
    r = Reader(data)
    assert (r.u8(), r.u16(), r.u32(), r.u64()) == (a, b, c, d)
    r.finish()


def test_writer_u8_range():
    with pytest.raises(ValueError, match="u8 out of range"):
        Writer().u8(256)
    with pytest.raises(ValueError, match="u8 out of range"):
        Writer().u8(-1)


def test_writer_fixed_width_range():
    with pytest.raises(struct.error):
        Writer().u32(MAX_U32 + 1)
    with pytest.raises(struct.error):
        Writer().u64(-1)


# -- var_bytes, raw, truncation, trailing bytes ---------------------------------------


@FAST
@given(st.binary(max_size=70_000))
def test_var_bytes_roundtrip(blob):
    w = Writer()
    w.var_bytes(blob)
    data = w.getvalue()
    assert len(data) == varint_size(len(blob)) + len(blob)
    r = Reader(data)
    assert r.var_bytes("blob", maximum=len(blob)) == blob
    r.finish()


def _sample_record() -> bytes:
    w = Writer()
    w.u8(7)
    w.u16(0xBEEF)
    w.u32(0xDEADBEEF)
    w.u64(MAX_U64)
    w.varint(0x1_0000)
    w.var_bytes(b"hello")
    w.raw(b"\xaa" * 20)
    return w.getvalue()


def _read_sample(r: Reader) -> tuple:
    return (
        r.u8("a"),
        r.u16("b"),
        r.u32("c"),
        r.u64("d"),
        r.varint("e"),
        r.var_bytes("f", 16),
        r.raw(20, "g"),
    )


def test_truncation_at_every_position():
    data = _sample_record()
    r = Reader(data)
    assert _read_sample(r) == (7, 0xBEEF, 0xDEADBEEF, MAX_U64, 0x1_0000, b"hello", b"\xaa" * 20)
    r.finish()
    for cut in range(len(data)):
        with pytest.raises(DecodeError, match="truncated"):
            _read_sample(Reader(data[:cut]))


def test_truncation_message_names_field_and_counts():
    with pytest.raises(DecodeError, match=r"^truncated prev_hash: need 32 bytes, 5 left$"):
        Reader(bytes(5)).raw(32, "prev_hash")
    with pytest.raises(DecodeError, match=r"^truncated flag: need 1 byte, 0 left$"):
        Reader(b"").u8("flag")


def test_finish_rejects_trailing_bytes():
    data = _sample_record()
    for extra in (b"\x00", b"\x00\x01\x02"):
        r = Reader(data + extra)
        _read_sample(r)
        assert r.remaining == len(extra)
        with pytest.raises(DecodeError, match=rf"^{len(extra)} trailing bytes after record$"):
            r.finish("record")


def test_reader_position_and_slice():
    r = Reader(b"\x01\x02\x03\x04")
    assert r.pos == 0 and r.remaining == 4
    r.u16()
    assert r.pos == 2 and r.remaining == 2
    assert r.slice(0, 2) == b"\x01\x02"


@pytest.mark.parametrize("buffer", [bytearray(b"\x05abcde"), memoryview(b"\x05abcde")])
def test_reader_accepts_bytes_like(buffer):
    r = Reader(buffer)
    value = r.var_bytes("s", 5)
    assert value == b"abcde" and type(value) is bytes
    r.finish()


@pytest.mark.parametrize("value", [None, 5, "abc", [1, 2], 1.5])
def test_reader_rejects_non_bytes(value):
    with pytest.raises(DecodeError, match="expected bytes, got"):
        Reader(value)


# -- caps are enforced before allocating -------------------------------------------------


@pytest.mark.parametrize("huge", [0x1_0000, MAX_U32, MAX_U32 + 1, MAX_U64])
def test_var_bytes_cap_checked_before_reading(huge):
    data = _varint(huge) + b"xy"
    with pytest.raises(DecodeError, match=rf"blob length too large: {huge} > 1000"):
        Reader(data).var_bytes("blob", 1000)


def test_huge_length_without_cap_is_truncation_not_memory_error():
    # Even with the cap at its maximum, a 2^64-1 byte claim on a 2-byte buffer
    # is a clean truncation error: nothing is allocated up front.
    data = _varint(MAX_U64) + b"xy"
    with pytest.raises(DecodeError, match="truncated blob"):
        Reader(data).var_bytes("blob", MAX_U64)


@pytest.mark.parametrize("huge", [0xFD, MAX_U32, MAX_U64])
def test_count_cap(huge):
    with pytest.raises(DecodeError, match=rf"^input count too large: {huge} > 10$"):
        Reader(_varint(huge)).count("input", 10)

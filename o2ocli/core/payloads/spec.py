"""The declarative field spec: a record's wire format, written once, next to its fields.

A *record* (a payload type, or a part of one such as :class:`~.base.KeySig`) is
a frozen, slotted dataclass whose every field is declared with :func:`wire` and
a codec::

    @register(0x20)
    @dataclass(frozen=True, slots=True)
    class Review(PayloadType):
        merchant: bytes = wire(Fixed(20, "review merchant"))
        rating: int = wire(U8("review rating"))
        text: bytes = wire(Bytes(MAX_TEXT_FIELD, "review text"))
        ...

The body encoding is the fields' encodings in declaration order, nothing else.
``what`` names the field in every error message (``truncated review merchant:
need 20 bytes, 3 left``, ``review text length too large: 5000 > 4096``).

:func:`compile_record` (run once per class, by ``register``) turns the spec into
three functions, generated as Python source the way :mod:`dataclasses` builds
``__init__``, so a decoder runs the same straight-line reads a hand-written one
would, with no per-field dispatch:

* ``_encode_body(self, w)`` — the body;
* ``_encode_signed(self, w)`` — what a signature covers: the body without its
  :class:`Signature` fields (see :meth:`Record.signed_body`);
* ``_decode_body(r)`` — reads the body.  Every length and count is capped
  before anything is allocated; the object is assembled without re-running the
  constructor's checks, which the reads already imply.

Constructing a record checks every field against its codec (``ValueError``), so
a record that exists can always be encoded, and decodes back equal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, ClassVar

from ..encoding import MAX_U32, MAX_U64, DecodeError, Reader, Writer

__all__ = [
    "Codec",
    "Fixed",
    "Signature",
    "U8",
    "U32",
    "U64",
    "Bytes",
    "Flag",
    "Optional",
    "Pair",
    "List",
    "Record",
    "wire",
    "compile_record",
]

CODEC_KEY = "o2o_codec"
"""Key of a field's codec in its dataclass metadata."""


class Source:
    """The namespace of the source generated for one record class: the objects
    the source refers to (codecs, helpers), each under a unique name."""

    __slots__ = ("namespace", "_counter")

    def __init__(self, namespace: dict[str, Any]) -> None:
        self.namespace = namespace
        self._counter = 0

    def fresh(self, stem: str) -> str:
        """A local name not used before in this class's source."""
        self._counter += 1
        return f"_{stem}{self._counter}"

    def ref(self, obj: object) -> str:
        """A name under which the generated code can reach ``obj``."""
        name = self.fresh("o")
        self.namespace[name] = obj
        return name


class Codec:
    """How one field is encoded.

    A codec checks a value (:meth:`check`, at construction) and writes the
    source that reads it (:meth:`read_expr`: one expression over the reader
    ``r``) and writes it (:meth:`write_lines`: statements over the writer ``w``).
    """

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what
        """Names the field in error messages."""

    def check(self, value: Any) -> None:
        """Raise ``ValueError`` unless ``value`` can be encoded."""
        raise NotImplementedError

    def read_expr(self, src: Source) -> str:
        """An expression that reads one value from ``r``."""
        raise NotImplementedError

    def write_lines(self, src: Source, value: str, signed: bool) -> list[str]:
        """Statements that append ``value`` (an expression) to ``w``; with
        ``signed``, only the part a signature covers."""
        raise NotImplementedError


class _Call(Codec):
    """A codec that is one :class:`Reader` call and one :class:`Writer` call."""

    __slots__ = ()
    READ: ClassVar[str]
    """The Reader method; :meth:`read_args` are its arguments."""
    WRITE: ClassVar[str]
    """The Writer method; the value is its one argument."""

    def read_args(self) -> tuple[object, ...]:
        """The arguments of the :attr:`READ` call (literals: ints and strings)."""
        return (self.what,)

    def read_expr(self, src: Source) -> str:
        return f"r.{self.READ}({', '.join(repr(arg) for arg in self.read_args())})"

    def write_lines(self, src: Source, value: str, signed: bool) -> list[str]:
        return [f"w.{self.WRITE}({value})"]


class Fixed(_Call):
    """Exactly ``size`` bytes, written as they are (hashes, keys, ids)."""

    __slots__ = ("size",)
    READ = WRITE = "raw"

    def __init__(self, size: int, what: str) -> None:
        super().__init__(what)
        self.size = size

    def check(self, value: Any) -> None:
        if not isinstance(value, bytes) or len(value) != self.size:
            raise ValueError(f"{self.what} must be {self.size} bytes")

    def read_args(self) -> tuple[object, ...]:
        return (self.size, self.what)


class Signature(Fixed):
    """A 64-byte ``r‖s`` signature: fixed bytes that no signature covers."""

    __slots__ = ()

    def __init__(self, what: str) -> None:
        super().__init__(64, what)

    def write_lines(self, src: Source, value: str, signed: bool) -> list[str]:
        return [] if signed else super().write_lines(src, value, signed)


class _Uint(_Call):
    """A little-endian unsigned integer of a fixed width."""

    __slots__ = ()
    MAXIMUM: ClassVar[int]

    def check(self, value: Any) -> None:
        if not isinstance(value, int) or not 0 <= value <= self.MAXIMUM:
            raise ValueError(f"{self.what} out of range")


class U8(_Uint):
    """One byte, 0..255."""

    __slots__ = ()
    READ = WRITE = "u8"
    MAXIMUM = 0xFF


class U32(_Uint):
    """A u32."""

    __slots__ = ()
    READ = WRITE = "u32"
    MAXIMUM = MAX_U32


class U64(_Uint):
    """A u64."""

    __slots__ = ()
    READ = WRITE = "u64"
    MAXIMUM = MAX_U64


class Bytes(_Call):
    """A varint length (at most ``limit``) and that many bytes."""

    __slots__ = ("limit",)
    READ = WRITE = "var_bytes"

    def __init__(self, limit: int, what: str) -> None:
        super().__init__(what)
        self.limit = limit

    def check(self, value: Any) -> None:
        if not isinstance(value, bytes):
            raise ValueError(f"{self.what} must be bytes")
        if len(value) > self.limit:
            raise ValueError(f"{self.what} too long: {len(value)} > {self.limit} bytes")

    def read_args(self) -> tuple[object, ...]:
        return (self.what, self.limit)


def read_flag(r: Reader, what: str) -> bool:
    """Read a u8 that must be 0 (False) or 1 (True)."""
    flag = r.u8(what)
    if flag > 1:
        raise DecodeError(f"{what} must be 0 or 1")
    return flag == 1


class Flag(Codec):
    """A boolean as one byte, 0 or 1 (any other byte is a decode error)."""

    __slots__ = ()

    def check(self, value: Any) -> None:
        if value not in (0, 1):
            raise ValueError(f"{self.what} must be True or False")

    def read_expr(self, src: Source) -> str:
        return f"{src.ref(read_flag)}(r, {self.what!r})"

    def write_lines(self, src: Source, value: str, signed: bool) -> list[str]:
        return [f"w.u8(1 if {value} else 0)"]


class Optional(Codec):
    """A flag byte (``what``), then the value if the flag is 1; None if 0."""

    __slots__ = ("inner",)

    def __init__(self, inner: Codec, what: str) -> None:
        super().__init__(what)
        self.inner = inner

    def check(self, value: Any) -> None:
        if value is not None:
            self.inner.check(value)

    def read_expr(self, src: Source) -> str:
        present = f"{src.ref(read_flag)}(r, {self.what!r})"
        return f"({self.inner.read_expr(src)} if {present} else None)"

    def write_lines(self, src: Source, value: str, signed: bool) -> list[str]:
        inner = self.inner.write_lines(src, value, signed)
        return [f"if {value} is None:", "    w.u8(0)", "else:", "    w.u8(1)"] + _indent(inner)


class Pair(Codec):
    """Two values one after the other, as a 2-tuple (e.g. a key and its value)."""

    __slots__ = ("first", "second")

    def __init__(self, first: Codec, second: Codec) -> None:
        super().__init__(f"{first.what} / {second.what}")
        self.first = first
        self.second = second

    def check(self, value: Any) -> None:
        if not isinstance(value, tuple) or len(value) != 2:
            raise ValueError(f"{self.what} must be a pair")
        self.first.check(value[0])
        self.second.check(value[1])

    def read_expr(self, src: Source) -> str:
        return f"({self.first.read_expr(src)}, {self.second.read_expr(src)})"

    def write_lines(self, src: Source, value: str, signed: bool) -> list[str]:
        return (self.first.write_lines(src, f"{value}[0]", signed)
                + self.second.write_lines(src, f"{value}[1]", signed))


class List(Codec):
    """A varint count (at most ``limit``), then that many items, as a tuple."""

    __slots__ = ("item", "limit")

    def __init__(self, item: Codec, limit: int, what: str) -> None:
        super().__init__(what)
        self.item = item
        self.limit = limit

    def check(self, value: Any) -> None:
        if not isinstance(value, tuple):
            raise ValueError(f"{self.what} must be a tuple")
        if len(value) > self.limit:
            raise ValueError(f"too many {self.what}: {len(value)} > {self.limit}")
        for item in value:
            self.item.check(item)

    def read_expr(self, src: Source) -> str:
        count = f"r.count({self.what!r}, {self.limit!r})"
        return f"tuple([{self.item.read_expr(src)} for _ in range({count})])"

    def write_lines(self, src: Source, value: str, signed: bool) -> list[str]:
        item = src.fresh("item")
        body = self.item.write_lines(src, item, signed)
        return [f"w.varint(len({value}))", f"for {item} in {value}:"] + _indent(body)


def _indent(lines: list[str]) -> list[str]:
    return ["    " + line for line in lines] or ["    pass"]


def wire(codec: Codec) -> Any:
    """Declare a record field encoded by ``codec`` (a required dataclass field)."""
    return dataclasses.field(metadata={CODEC_KEY: codec})


class Record:
    """Base of every spec'd record: checks its fields at construction and
    gives the part of its encoding that signatures cover."""

    __slots__ = ()
    _SPEC: ClassVar[tuple[tuple[str, Codec], ...] | None] = None
    """(field name, codec) in wire order; set by :func:`compile_record`."""

    def __post_init__(self) -> None:
        spec = type(self)._SPEC
        if spec is None:
            raise TypeError(
                f"{type(self).__name__} is not compiled: decorate it with register(tag) "
                "or compile_record"
            )
        for name, codec in spec:
            codec.check(getattr(self, name))

    def signed_body(self) -> bytes:
        """The fields a signature covers: the body without its signatures."""
        w = Writer()
        self._encode_signed(w)  # type: ignore[attr-defined]
        return w.getvalue()


def record_spec(cls: type) -> Iterator[tuple[str, Codec]]:
    """(name, codec) of each field of dataclass ``cls``, in declaration order."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__name__} must be a dataclass")
    for f in dataclasses.fields(cls):
        codec = f.metadata.get(CODEC_KEY)
        if not isinstance(codec, Codec):
            raise TypeError(f"{cls.__name__}.{f.name} has no codec: declare it with wire()")
        yield f.name, codec


def compile_record(cls: type) -> type:
    """Generate ``cls``'s encoder, signed-part encoder and decoder from its spec,
    once (a class keeps any of the three it defines itself).  Used as a class
    decorator for records that are not payloads (``register`` calls it for those)."""
    spec = tuple(record_spec(cls))
    src = Source({"_new": object.__new__, "_set": object.__setattr__, "_cls": cls})
    lines = ["def _decode_body(r):", "    obj = _new(_cls)"]
    lines += [f"    _set(obj, {name!r}, {codec.read_expr(src)})" for name, codec in spec]
    lines.append("    return obj")
    for fname, signed in (("_encode_body", False), ("_encode_signed", True)):
        body = [line for name, codec in spec
                for line in codec.write_lines(src, f"self.{name}", signed)]
        lines += [f"def {fname}(self, w):"] + _indent(body)
    exec("\n".join(lines), src.namespace)  # the source is built above, from the codecs only
    generated = {
        "_decode_body": staticmethod(src.namespace["_decode_body"]),
        "_encode_body": src.namespace["_encode_body"],
        "_encode_signed": src.namespace["_encode_signed"],
    }
    for name, function in generated.items():
        if name not in cls.__dict__:
            setattr(cls, name, function)
    cls._SPEC = spec  # type: ignore[attr-defined]
    return cls

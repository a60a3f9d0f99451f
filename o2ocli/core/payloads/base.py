"""The payload registry, the tagged encoding, and the payloads of the base chain.

Every payload type registers itself by its tag with :func:`register`; the
registry is what :func:`decode_payload` reads (one table, no hand-kept list).
It is filled when :mod:`o2ocli.core.payloads` is imported and is not changed
afterwards, except by a test through :func:`registered`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

from ..encoding import DecodeError, Reader, Writer
from .spec import U32, Bytes, Codec, Fixed, Record, Source, compile_record, wire

__all__ = [
    "PayloadType",
    "register",
    "registered",
    "PAYLOAD_TYPES",
    "encode_payload",
    "decode_payload",
    "NoPayload",
    "NO_PAYLOAD",
    "Coinbase",
    "GenesisAlloc",
    "MAX_GENESIS_NOTE",
    "KeySig",
    "KeySigs",
    "bound_body",
]

MAX_GENESIS_NOTE = 256


class PayloadType(Record):
    """Base of every payload type: a :class:`~.spec.Record` with a tag."""

    __slots__ = ()
    TAG: ClassVar[int]
    """The tag byte that precedes the body (set by :func:`register`)."""


_TYPES: dict[int, type[PayloadType]] = {}
_DECODERS: dict[int, Callable[[Reader], Any]] = {}
PAYLOAD_TYPES = MappingProxyType(_TYPES)
"""Every registered payload type by tag (a read-only view of the registry)."""


def register(tag: int) -> Callable[[type[PayloadType]], type[PayloadType]]:
    """Class decorator: make a :class:`PayloadType` dataclass the payload of
    ``tag``, with its codec generated from its field spec.  A tag can be
    registered once (``ValueError`` otherwise)."""

    def decorate(cls: type[PayloadType]) -> type[PayloadType]:
        if not isinstance(tag, int) or not 0 <= tag <= 0xFF:
            raise ValueError(f"payload tag must be a byte, got {tag!r}")
        if not issubclass(cls, PayloadType):
            raise TypeError(f"{cls.__name__} must subclass PayloadType")
        taken = _TYPES.get(tag)
        if taken is not None:
            raise ValueError(
                f"payload tag 0x{tag:02x} is already registered to {taken.__name__}"
            )
        compile_record(cls)
        cls.TAG = tag
        _TYPES[tag] = cls
        _DECODERS[tag] = cls._decode_body  # type: ignore[attr-defined]
        return cls

    return decorate


@contextmanager
def registered(tag: int, cls: type[PayloadType]) -> Iterator[type[PayloadType]]:
    """Register ``cls`` as ``tag`` for the duration of a ``with`` block, then
    remove it (for tests that add a payload family of their own)."""
    register(tag)(cls)
    try:
        yield cls
    finally:
        del _TYPES[tag], _DECODERS[tag]


def encode_payload(payload: PayloadType, w: Writer) -> None:
    """Append the tagged encoding of ``payload``."""
    w.u8(payload.TAG)
    payload._encode_body(w)  # type: ignore[attr-defined]


def decode_payload(r: Reader) -> PayloadType:
    """Read one tagged payload; unknown tags are a :class:`DecodeError`."""
    tag = r.u8("payload tag")
    decode = _DECODERS.get(tag)
    if decode is None:
        raise DecodeError(f"unknown payload type 0x{tag:02x}")
    return decode(r)


@register(0x00)
@dataclass(frozen=True, slots=True)
class NoPayload(PayloadType):
    """An ordinary transaction: no O2O data."""

    @classmethod
    def _decode_body(cls, r: Reader) -> NoPayload:
        return NO_PAYLOAD


NO_PAYLOAD = NoPayload()


@register(0x01)
@dataclass(frozen=True, slots=True)
class Coinbase(PayloadType):
    """Marks the fee-claim transaction of block ``height`` (no inputs)."""

    height: int = wire(U32("coinbase height"))
    """Height of the block that contains this transaction."""


@register(0x02)
@dataclass(frozen=True, slots=True)
class GenesisAlloc(PayloadType):
    """Marks the genesis allocation transaction (valid only in block 0)."""

    note: bytes = wire(Bytes(MAX_GENESIS_NOTE, "genesis note"))
    """Free text committed to by the genesis block (the chain id, by convention)."""


@compile_record
@dataclass(frozen=True, slots=True)
class KeySig(Record):
    """A public key and its signature inside a payload."""

    pubkey: bytes = wire(Fixed(33, "pubkey"))
    """33-byte compressed public key."""
    signature: bytes = wire(Fixed(64, "signature"))
    """64-byte ``r‖s`` signature."""


class KeySigs(Codec):
    """Keys that each sign the payload: a count (at most ``limit``), every
    pubkey, then every signature; the signed part stops before the signatures."""

    __slots__ = ("limit", "pubkey_what", "signature_what")

    def __init__(self, limit: int, what: str, pubkey_what: str, signature_what: str) -> None:
        super().__init__(what)
        self.limit = limit
        self.pubkey_what = pubkey_what
        self.signature_what = signature_what

    def check(self, value: Any) -> None:
        if not isinstance(value, tuple) or len(value) > self.limit:
            raise ValueError(f"{self.what} must be a tuple of at most {self.limit}")
        for pair in value:
            if not isinstance(pair, KeySig):
                raise ValueError(f"{self.what} must be KeySig pairs")

    def read(self, r: Reader) -> tuple[KeySig, ...]:
        """Read the count, the pubkeys, then their signatures."""
        n = r.count(self.what, self.limit)
        pubkeys = [r.raw(33, self.pubkey_what) for _ in range(n)]
        return tuple([KeySig(p, r.raw(64, self.signature_what)) for p in pubkeys])

    def read_expr(self, src: Source) -> str:
        return f"{src.ref(self.read)}(r)"

    def write_lines(self, src: Source, value: str, signed: bool) -> list[str]:
        pair = src.fresh("pair")
        lines = [f"w.varint(len({value}))", f"for {pair} in {value}:", f"    w.raw({pair}.pubkey)"]
        if not signed:
            lines += [f"for {pair} in {value}:", f"    w.raw({pair}.signature)"]
        return lines


def bound_body(payload: PayloadType, outpoints: Sequence[bytes]) -> bytes:
    """``signed_body ‖ count ‖ outpoints``: a payload's signed part bound to the
    wire-form outpoints of its carrying transaction's inputs, so that a signed
    payload cannot be replayed in another transaction."""
    w = Writer()
    w.raw(payload.signed_body())
    w.varint(len(outpoints))
    for outpoint in outpoints:
        w.raw(outpoint)
    return w.getvalue()

"""Transaction payloads: O2O data carried by a transaction.

Like locks, a payload is a tagged union (one tag byte, then the body).  Tag
``0x00`` means "no payload" and has no body.  Later features (tokens,
reviews, escrow, traceability, consent) add new tags without touching these.

=====  ======================  =============================================
tag    type                    body
=====  ======================  =============================================
0x00   :class:`NoPayload`      (nothing)
0x01   :class:`Coinbase`       u32 block height (makes every fee claim unique)
0x02   :class:`GenesisAlloc`   var_bytes note (≤ 256 bytes), e.g. the chain id
=====  ======================  =============================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .encoding import MAX_U32, DecodeError, Reader, Writer

__all__ = [
    "Payload",
    "NoPayload",
    "Coinbase",
    "GenesisAlloc",
    "NO_PAYLOAD",
    "encode_payload",
    "decode_payload",
    "PAYLOAD_TYPES",
]

MAX_GENESIS_NOTE = 256


@dataclass(frozen=True, slots=True)
class NoPayload:
    """An ordinary transaction: no O2O data."""

    TAG: ClassVar[int] = 0x00

    def _encode_body(self, w: Writer) -> None:
        pass

    @classmethod
    def _decode_body(cls, r: Reader) -> NoPayload:
        return NO_PAYLOAD


NO_PAYLOAD = NoPayload()


@dataclass(frozen=True, slots=True)
class Coinbase:
    """Marks the fee-claim transaction of block ``height`` (no inputs)."""

    TAG: ClassVar[int] = 0x01
    height: int
    """Height of the block that contains this transaction."""

    def __post_init__(self) -> None:
        if not 0 <= self.height <= MAX_U32:
            raise ValueError("coinbase height out of range")

    def _encode_body(self, w: Writer) -> None:
        w.u32(self.height)

    @classmethod
    def _decode_body(cls, r: Reader) -> Coinbase:
        return cls(r.u32("coinbase height"))


@dataclass(frozen=True, slots=True)
class GenesisAlloc:
    """Marks the genesis allocation transaction (valid only in block 0)."""

    TAG: ClassVar[int] = 0x02
    note: bytes
    """Free text committed to by the genesis block (the chain id, by convention)."""

    def __post_init__(self) -> None:
        if len(self.note) > MAX_GENESIS_NOTE:
            raise ValueError("genesis note too long")

    def _encode_body(self, w: Writer) -> None:
        w.var_bytes(self.note)

    @classmethod
    def _decode_body(cls, r: Reader) -> GenesisAlloc:
        return cls(r.var_bytes("genesis note", MAX_GENESIS_NOTE))


Payload = NoPayload | Coinbase | GenesisAlloc
PAYLOAD_TYPES: dict[int, type] = {
    NoPayload.TAG: NoPayload,
    Coinbase.TAG: Coinbase,
    GenesisAlloc.TAG: GenesisAlloc,
}


def encode_payload(payload: Payload, w: Writer) -> None:
    """Append the tagged encoding of ``payload``."""
    w.u8(payload.TAG)
    payload._encode_body(w)


def decode_payload(r: Reader) -> Payload:
    """Read one tagged payload; unknown tags are a :class:`DecodeError`."""
    tag = r.u8("payload tag")
    cls = PAYLOAD_TYPES.get(tag)
    if cls is None:
        raise DecodeError(f"unknown payload type 0x{tag:02x}")
    return cls._decode_body(r)

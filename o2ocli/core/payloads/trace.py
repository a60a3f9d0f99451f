"""Traceability: item registration and custody events (tags 0x30, 0x31)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from o2ocli.crypto.hashes import sha256d

from ..encoding import Writer, domain_preimage
from .base import PayloadType, bound_body, register
from .spec import U8, Bytes, Fixed, List, Optional, Pair, Signature, wire

__all__ = [
    "TraceRegister",
    "TraceEvent",
    "TRACE_EVENTS",
    "MAX_ITEM_ID_FIELD",
    "MAX_TRACE_FIELD",
    "MAX_TRACE_DATA",
    "ITEM_SIG_TAG",
    "item_asset_id",
    "item_sig_digest",
]

MAX_ITEM_ID_FIELD = 128
"""Decoder cap on an item id, a data key or a consent scope."""
MAX_TRACE_FIELD = 1024
"""Decoder cap on a product, a data value, a location or a note."""
MAX_TRACE_DATA = 32
"""Most key/value facts one registration may carry."""
TRACE_EVENTS = ("produced", "processed", "shipped", "received", "inspected", "sold", "note")
"""Trace event types, by code (u8)."""
ITEM_SIG_TAG = b"o2o/item"


def item_asset_id(merchant: bytes, item_id: str | bytes) -> bytes:
    """The asset id of item ``item_id`` registered by ``merchant`` (pubkey hash)."""
    raw = item_id.encode() if isinstance(item_id, str) else item_id
    w = Writer()
    w.raw(b"o2o/item\x00")
    w.raw(merchant)
    w.var_bytes(raw)
    return sha256d(w.getvalue())


@register(0x30)
@dataclass(frozen=True, slots=True)
class TraceRegister(PayloadType):
    """Registers an item or batch: the tx creates the item asset (amount 1),
    whose holder is its first custodian.  The merchant's key signs
    :func:`item_sig_digest` (the fields and the tx's inputs)."""

    merchant: bytes = wire(Fixed(20, "trace merchant"))
    """Pubkey hash whose namespace the item id lives in."""
    item_id: bytes = wire(Bytes(MAX_ITEM_ID_FIELD, "trace item id"))
    """The merchant's id for the item or batch (ASCII, checked by consensus)."""
    product: bytes = wire(Bytes(MAX_TRACE_FIELD, "trace product"))
    """Product description (UTF-8)."""
    data: tuple[tuple[bytes, bytes], ...] = wire(List(
        Pair(Bytes(MAX_ITEM_ID_FIELD, "trace data key"),
             Bytes(MAX_TRACE_FIELD, "trace data value")),
        MAX_TRACE_DATA,
        "trace data",
    ))
    """Key/value facts (e.g. ``origin=Yunnan``)."""
    pubkey: bytes = wire(Fixed(33, "trace merchant pubkey"))
    """The merchant's compressed public key."""
    signature: bytes = wire(Signature("trace signature"))
    """64-byte signature over :func:`item_sig_digest`."""

    @property
    def asset(self) -> bytes:
        """The item's asset id."""
        return item_asset_id(self.merchant, self.item_id)


@register(0x31)
@dataclass(frozen=True, slots=True)
class TraceEvent(PayloadType):
    """A custody change or processing step: the tx spends the item (so the
    current custodian signs) and re-creates it for the next custodian."""

    asset: bytes = wire(Fixed(32, "trace asset"))
    """The item's asset id."""
    event: int = wire(U8("trace event"))
    """Index into :data:`TRACE_EVENTS`."""
    location: bytes = wire(Bytes(MAX_TRACE_FIELD, "trace location"))
    """Where (UTF-8)."""
    note: bytes = wire(Bytes(MAX_TRACE_FIELD, "trace note"))
    """Free text (UTF-8)."""
    document: bytes | None = wire(
        Optional(Fixed(32, "trace document hash"), "trace document flag")
    )
    """SHA-256 of a document (certificate, invoice, photo), or None."""


def item_sig_digest(
    register: TraceRegister, chain_id: str, outpoints: Sequence[bytes] = ()
) -> bytes:
    """The digest a merchant signs to register an item: the fields and the
    wire-form outpoints of the carrying tx's inputs (so nobody can copy a
    pending registration into a tx of their own and hold the item)."""
    return sha256d(domain_preimage(ITEM_SIG_TAG, chain_id, bound_body(register, outpoints)))

"""Consensus rules of the traceability family: items and their trace events.

* A merchant registers an item (or batch) in its own namespace: the
  :class:`~o2ocli.core.payloads.TraceRegister` is signed by the merchant's
  key together with the tx's inputs, and the tx creates the item asset (one
  output of amount 1).  An item id is registered once per merchant.
* A :class:`~o2ocli.core.payloads.TraceEvent` records what happened to an
  item; it must spend the item (so it is signed by its custodian).

State (namespaces, see :mod:`.state`): :data:`ITEM`, and the index
:data:`ITEM_MOVES` (every main-chain tx that moved a registered item), which
:func:`index_item_moves` derives from a whole block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from o2ocli.core.encoding import Reader, Writer
from o2ocli.core.payloads import TRACE_EVENTS, TraceEvent, TraceRegister, item_sig_digest
from o2ocli.core.tx import NATIVE_ASSET, Coin, Tx
from o2ocli.crypto.hashes import hash160

from .errors import TxInvalid
from .fields import ITEM_ID_CHARS, SCOPE_CHARS, TextField, check_name, check_text
from .params import ConsensusParams
from .state import FamilyRules, Namespace, O2OEffect, O2OState, StateKey

__all__ = [
    "STATE_DEPENDENT_REASONS",
    "MAX_ITEM_ID",
    "MAX_DATA_KEY",
    "MAX_TRACE_TEXT",
    "PRODUCT_TEXT",
    "DATA_VALUE_TEXT",
    "LOCATION_TEXT",
    "NOTE_TEXT",
    "ITEM",
    "ITEM_MOVES",
    "NAMESPACES",
    "ItemRecord",
    "read_item",
    "check_item_id",
    "check_data_key",
    "check_trace_register_fields",
    "check_trace_event_fields",
    "check_trace_register",
    "check_trace_event",
    "index_item_moves",
    "RULES",
]

MAX_ITEM_ID = 64
"""Most characters of an item id (``A-Z a-z 0-9 . _ : / -``)."""
MAX_DATA_KEY = 32
"""Most characters of a trace data key (``a-z 0-9 . _ -``)."""
MAX_TRACE_TEXT = 256
"""Most bytes of a product, location, note or data value (UTF-8)."""
PRODUCT_TEXT = TextField("product", MAX_TRACE_TEXT, False,
                         "bad-trace-product-length", "bad-trace-product-utf8",
                         "bad-trace-product-control")
DATA_VALUE_TEXT = TextField("data value", MAX_TRACE_TEXT, True,
                            "bad-trace-data-length", "bad-trace-data-utf8",
                            "bad-trace-data-control")
LOCATION_TEXT = TextField("location", MAX_TRACE_TEXT, True,
                          "bad-trace-location-length", "bad-trace-location-utf8",
                          "bad-trace-location-control")
NOTE_TEXT = TextField("note", MAX_TRACE_TEXT, True,
                      "bad-trace-note-length", "bad-trace-note-utf8", "bad-trace-note-control")

STATE_DEPENDENT_REASONS = frozenset({
    "bad-trace-duplicate",
    "bad-trace-unknown-item",
})
"""Reasons of this family that depend on the chain a node has seen
(see :data:`o2ocli.consensus.o2o.STATE_DEPENDENT_REASONS`)."""

ITEM = Namespace("trace-item", "item asset id → ItemRecord",
                 claim="item id (one registration per item)")
ITEM_MOVES = Namespace("trace-item-moves", "item asset id ‖ height u32 BE ‖ txid → empty",
                       index=True)
NAMESPACES = (ITEM, ITEM_MOVES)


@dataclass(frozen=True, slots=True)
class ItemRecord:
    """A registered item or batch (traceability)."""

    merchant: bytes
    """Pubkey hash of the registering merchant."""
    item_id: str
    """The merchant's item id."""
    product: str
    """Product description."""
    height: int
    """Height of the registration."""
    txid: bytes
    """Txid of the registration."""

    def to_bytes(self) -> bytes:
        """Stored encoding."""
        w = Writer()
        w.raw(self.merchant)
        w.var_bytes(self.item_id.encode())
        w.var_bytes(self.product.encode())
        w.u32(self.height)
        w.raw(self.txid)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ItemRecord:
        """Inverse of :meth:`to_bytes`."""
        r = Reader(data)
        record = cls(r.raw(20, "merchant"), r.var_bytes("item id", 256).decode(),
                     r.var_bytes("product", 4096).decode(), r.u32("height"), r.raw(32, "txid"))
        r.finish("item record")
        return record


def read_item(state: O2OState, asset: bytes) -> ItemRecord | None:
    """The registration of item ``asset``, or None."""
    data = state.read((ITEM.name, asset))
    return None if data is None else ItemRecord.from_bytes(data)


# --------------------------------------------------------------------------
# Context-free rules
# --------------------------------------------------------------------------


def check_item_id(item_id: bytes) -> None:
    """Rule: an item id is 1..64 characters of ``A-Z a-z 0-9 . _ : / -``."""
    check_name(item_id, "item id", "bad-trace-item-id", ITEM_ID_CHARS, MAX_ITEM_ID)


def check_data_key(key: bytes) -> None:
    """Rule: a trace data key is 1..32 characters of ``a-z 0-9 . _ -``."""
    check_name(key, "data key", "bad-trace-data", SCOPE_CHARS, MAX_DATA_KEY)


def check_trace_register_fields(tx: Tx) -> None:
    """Rule: a registration has a valid item id, a product text of 1..256
    bytes, and distinct data keys (1..32 of ``a-z 0-9 . _ -``) with values of
    at most 256 bytes of text."""
    payload: TraceRegister = tx.payload  # type: ignore[assignment]
    check_item_id(payload.item_id)
    check_text(payload.product, PRODUCT_TEXT)
    keys = [key for key, _ in payload.data]
    if len(set(keys)) != len(keys):
        raise TxInvalid("bad-trace-data", "a data key appears twice")
    for key, value in payload.data:
        check_data_key(key)
        check_text(value, DATA_VALUE_TEXT)


def check_trace_event_fields(tx: Tx) -> None:
    """Rule: a trace event has a known event type, and a location and a note
    of at most 256 bytes of text."""
    payload: TraceEvent = tx.payload  # type: ignore[assignment]
    if payload.event >= len(TRACE_EVENTS):
        raise TxInvalid("bad-trace-event", f"unknown trace event type {payload.event}")
    check_text(payload.location, LOCATION_TEXT)
    check_text(payload.note, NOTE_TEXT)


# --------------------------------------------------------------------------
# Contextual rules
# --------------------------------------------------------------------------


def check_trace_register(
    tx: Tx, coins: Sequence[Coin], height: int, params: ConsensusParams, state: O2OState
) -> O2OEffect:
    """Rule: a registration is signed by the merchant (with the tx's inputs),
    names an item not registered yet, and creates exactly one item output of 1."""
    payload: TraceRegister = tx.payload  # type: ignore[assignment]
    if hash160(payload.pubkey) != payload.merchant:
        raise TxInvalid("bad-trace-not-merchant", "the registration is not signed by the merchant")
    asset = payload.asset
    if state.read((ITEM.name, asset)) is not None:
        raise TxInvalid("bad-trace-duplicate",
                        f"item {payload.item_id.decode()} is already registered by this merchant")
    outputs = [o for o in tx.outputs if o.asset == asset]
    if len(outputs) != 1 or outputs[0].amount != 1:
        raise TxInvalid("bad-trace-item-output", "a registration creates one item output of 1")
    record = ItemRecord(payload.merchant, payload.item_id.decode(), payload.product.decode(),
                        height, tx.txid)
    outpoints = tx.wire_outpoints()
    digest = item_sig_digest(payload, params.chain_id, outpoints)
    return O2OEffect(deltas={asset: 1}, writes={(ITEM.name, asset): record.to_bytes()},
                     checks=[(payload.pubkey, payload.signature, digest)])


def check_trace_event(
    tx: Tx, coins: Sequence[Coin], height: int, params: ConsensusParams, state: O2OState
) -> O2OEffect:
    """Rule: a trace event names a registered item and spends it (the
    custodian signs)."""
    payload: TraceEvent = tx.payload  # type: ignore[assignment]
    if state.read((ITEM.name, payload.asset)) is None:
        raise TxInvalid("bad-trace-unknown-item",
                        f"no item {payload.asset.hex()[:16]}… is registered")
    if sum(c.output.amount for c in coins if c.output.asset == payload.asset) != 1:
        raise TxInvalid("bad-trace-not-custodian",
                        "a trace event must spend the item (signed by its custodian)")
    return O2OEffect()


# --------------------------------------------------------------------------
# Block index, claims and registration
# --------------------------------------------------------------------------


def index_item_moves(txs: Sequence[Tx], height: int, state: O2OState) -> dict[StateKey, bytes]:
    """The :data:`ITEM_MOVES` entries of a block: one for every tx that has an
    output of a registered item (``state`` includes the block's own writes)."""
    writes: dict[StateKey, bytes] = {}
    be_height = height.to_bytes(4, "big")
    known: dict[bytes, bool] = {}
    for tx in txs:
        for out in tx.outputs:
            asset = out.asset
            if asset == NATIVE_ASSET:
                continue
            is_item = known.get(asset)
            if is_item is None:
                is_item = known[asset] = state.read((ITEM.name, asset)) is not None
            if is_item:
                writes[(ITEM_MOVES.name, asset + be_height + tx.txid)] = b""
    return writes


def register_claims(tx: Tx) -> list[StateKey]:
    """A registration claims its item."""
    return [(ITEM.name, tx.payload.asset)]  # type: ignore[attr-defined]


RULES = {
    TraceRegister.TAG: FamilyRules(check_trace_register_fields, check_trace_register,
                                   register_claims),
    TraceEvent.TAG: FamilyRules(check_trace_event_fields, check_trace_event),
}
"""Payload tag → rules, registered by :mod:`.o2o`."""

"""RPC method of traceability: an item's registration and chain of custody."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from o2ocli.consensus.o2o import ItemRecord
from o2ocli.core.payloads import TRACE_EVENTS, Payload, TraceEvent, TraceRegister, item_asset_id
from o2ocli.core.tx import Outpoint, Tx
from o2ocli.rpc import errors as E
from o2ocli.rpc.errors import RpcError

from .context import NodeContext
from .params import address_arg, txid_arg
from .table import MethodTable

__all__ = ["TABLE", "item_arg", "STEP_EVENTS", "gettrace"]

TABLE = MethodTable()

StepEvent = Callable[[Payload, bytes, ItemRecord], dict[str, Any] | None]
"""(payload, item asset id, item record) → the step's event fields, or None
when the payload says nothing about this item."""


def _registered(payload: Payload, asset: bytes, record: ItemRecord) -> dict[str, Any] | None:
    return {"event": "registered", "location": "", "note": record.product, "document": None}


def _event(payload: Payload, asset: bytes, record: ItemRecord) -> dict[str, Any] | None:
    assert isinstance(payload, TraceEvent)
    if payload.asset != asset:
        return None
    return {"event": TRACE_EVENTS[payload.event],
            "location": payload.location.decode("utf-8", "replace"),
            "note": payload.note.decode("utf-8", "replace"),
            "document": payload.document.hex() if payload.document else None}


STEP_EVENTS: dict[int, StepEvent] = {TraceRegister.TAG: _registered, TraceEvent.TAG: _event}
"""Payload tag → what a tx carrying it says about an item's step."""


def item_arg(node: NodeContext, ref: Any, merchant: Any = None) -> bytes:
    """An item's asset id: 64 hex digits, or the merchant's item id when
    ``merchant`` is given."""
    if merchant is None:
        return txid_arg(ref, "item asset id")
    if not isinstance(ref, str) or not 1 <= len(ref) <= 64:
        raise RpcError(E.INVALID_PARAMS, "item id must be a string of 1..64 characters")
    return item_asset_id(address_arg(node, merchant), ref)


def _holder(node: NodeContext, tx: Tx, asset: bytes) -> str | None:
    for out in tx.outputs:
        if out.asset == asset:
            addresses = out.lock.addresses()
            return node.spec.address(addresses[0]) if len(addresses) == 1 else "contract"
    return None


@TABLE.method("gettrace")
def gettrace(node: NodeContext, item: Any, merchant: Any = None) -> dict[str, Any]:
    """An item's registration and timeline: every tx that moved it, with
    its trace event (if any), custodian before and after, block time and
    finality; ``verified`` is false with ``break`` set where the chain of
    custody does not hold.  ``item`` is the asset id, or the item id when
    ``merchant`` is given."""
    asset = item_arg(node, item, merchant)
    chain = node.chain
    st = chain.state
    record = st.item(asset)
    if record is None:
        raise RpcError(E.NOT_FOUND, f"no item {item} is registered")
    timeline = []
    problem = None
    expected: Any = None  # the outpoint holding the item after the previous step
    for height, txid in st.item_moves(asset):
        found = st.get_tx(txid)
        entry = st.get_index(found[1]) if found else None
        if found is None:
            problem = problem or f"tx {txid.hex()} of the item is missing"
            continue
        tx = found[0]
        spent_item = None
        for txin in tx.inputs:
            prev = st.get_tx(txin.prevout.txid)
            if prev and txin.prevout.index < len(prev[0].outputs) and \
                    prev[0].outputs[txin.prevout.index].asset == asset:
                spent_item = (txin.prevout, prev[0])
        step: dict[str, Any] = {
            "txid": txid.hex(), "height": height,
            "time": entry.header.time if entry else None,
            "final": height <= chain.finalized_height,
            "custodian": _holder(node, tx, asset),
            "from": _holder(node, spent_item[1], asset) if spent_item else None,
        }
        view = STEP_EVENTS.get(tx.payload.TAG)
        event = view(tx.payload, asset, record) if view is not None else None
        if event is None:
            event = {"event": "moved", "location": "", "note": "", "document": None}
            problem = problem or (f"custody passed to {step['custodian']} in {txid.hex()} "
                                  "without a trace event")
        step.update(event)
        if expected is not None and (spent_item is None or spent_item[0] != expected):
            problem = problem or f"tx {txid.hex()} does not spend the item's previous output"
        index = next(i for i, o in enumerate(tx.outputs) if o.asset == asset)
        expected = Outpoint(txid, index)
        timeline.append(step)
    if expected is not None and st.get(expected) is None:
        problem = problem or "the item's last recorded output is no longer unspent"
    reg = st.get_tx(record.txid)
    data_pairs = []
    if reg is not None and isinstance(reg[0].payload, TraceRegister):
        data_pairs = [{"key": key.decode(), "value": value.decode("utf-8", "replace")}
                      for key, value in reg[0].payload.data]
    return {
        "asset": asset.hex(), "item": record.item_id, "product": record.product,
        "merchant": node.spec.address(record.merchant), "height": record.height,
        "txid": record.txid.hex(), "data": data_pairs,
        "custodian": timeline[-1]["custodian"] if timeline else None,
        "timeline": timeline, "verified": problem is None, "break": problem,
    }

"""Renderers of the traceability payloads (item registration, trace event)."""

from __future__ import annotations

from typing import Any

from o2ocli.chainspec import ChainSpec
from o2ocli.core.payloads import TRACE_EVENTS, TraceEvent, TraceRegister

from .registry import payload_view, text


@payload_view(TraceRegister)
def register_json(spec: ChainSpec, payload: TraceRegister) -> dict[str, Any]:
    return {"type": "trace-register", "merchant": spec.address(payload.merchant),
            "item": text(payload.item_id), "product": text(payload.product),
            "asset": payload.asset.hex(),
            "data": {text(k): text(v) for k, v in payload.data}}


@payload_view(TraceEvent)
def event_json(spec: ChainSpec, payload: TraceEvent) -> dict[str, Any]:
    event = TRACE_EVENTS[payload.event] if payload.event < len(TRACE_EVENTS) else None
    return {"type": "trace-event", "asset": payload.asset.hex(), "event": event,
            "location": text(payload.location), "note": text(payload.note),
            "document": payload.document.hex() if payload.document else None}

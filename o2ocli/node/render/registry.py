"""Renderers found by tag: each payload family and each lock type registers
how it shows as JSON, so the generic views (:mod:`.core`) never test types.

A family module registers with one decorator per type::

    @payload_view(TokenMint)
    def _mint(spec: ChainSpec, payload: TokenMint) -> dict[str, Any]:
        return {"type": "token-mint", ...}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from o2ocli.chainspec import ChainSpec
from o2ocli.core.locks import Lock
from o2ocli.core.payloads import Payload

__all__ = [
    "PayloadView",
    "PAYLOAD_VIEWS",
    "LOCK_VIEWS",
    "payload_view",
    "lock_view",
    "payload_json",
    "lock_json",
    "burned_by",
    "text",
]

R = TypeVar("R", bound=Callable[..., dict[str, Any]])


@dataclass(frozen=True)
class PayloadView:
    """How one payload type shows: its JSON, and the native units a tx carrying
    it burns (beyond the fee), given the chain spec."""

    render: Callable[[ChainSpec, Any], dict[str, Any]]
    burned: Callable[[ChainSpec, Any], int] | None = None


PAYLOAD_VIEWS: dict[int, PayloadView] = {}
"""Payload tag → its view."""

LOCK_VIEWS: dict[int, Callable[[ChainSpec, Any], dict[str, Any]]] = {}
"""Lock tag → its JSON renderer."""


def payload_view(
    cls: type, *, burned: Callable[[ChainSpec, Any], int] | None = None
) -> Callable[[R], R]:
    """Register the decorated function as the JSON renderer of payload type
    ``cls`` (by its ``TAG``); ``burned`` gives the native units it burns."""

    def decorator(func: R) -> R:
        tag = cls.TAG  # type: ignore[attr-defined]
        if tag in PAYLOAD_VIEWS:
            raise ValueError(f"payload tag 0x{tag:02x} already has a renderer")
        PAYLOAD_VIEWS[tag] = PayloadView(func, burned)
        return func

    return decorator


def lock_view(cls: type) -> Callable[[R], R]:
    """Register the decorated function as the JSON renderer of lock type ``cls``."""

    def decorator(func: R) -> R:
        tag = cls.TAG  # type: ignore[attr-defined]
        if tag in LOCK_VIEWS:
            raise ValueError(f"lock tag 0x{tag:02x} already has a renderer")
        LOCK_VIEWS[tag] = func
        return func

    return decorator


def payload_json(spec: ChainSpec, payload: Payload) -> dict[str, Any]:
    """A payload as JSON (``{"type": <class name>}`` for a type with no renderer)."""
    view = PAYLOAD_VIEWS.get(getattr(payload, "TAG", -1))
    if view is None:
        return {"type": type(payload).__name__}
    return view.render(spec, payload)


def burned_by(spec: ChainSpec, payload: Payload) -> int:
    """Native units a tx carrying ``payload`` burns beyond its fee (0 for most)."""
    view = PAYLOAD_VIEWS.get(getattr(payload, "TAG", -1))
    return view.burned(spec, payload) if view is not None and view.burned else 0


def lock_json(spec: ChainSpec, lock: Lock) -> dict[str, Any]:
    """A lock as JSON (``{"type": <class name>}`` for a type with no renderer)."""
    render = LOCK_VIEWS.get(getattr(lock, "TAG", -1))
    if render is None:
        return {"type": type(lock).__name__}
    return render(spec, lock)


def text(data: bytes) -> str:
    """Payload text bytes as a string (invalid UTF-8 replaced)."""
    return data.decode("utf-8", "replace")

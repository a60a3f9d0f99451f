"""Renderer of the escrow lock."""

from __future__ import annotations

from typing import Any

from o2ocli.chainspec import ChainSpec
from o2ocli.core.locks import Escrow

from .registry import lock_view


@lock_view(Escrow)
def escrow_lock_json(spec: ChainSpec, lock: Escrow) -> dict[str, Any]:
    return {"type": "escrow", "payer": spec.address(lock.payer),
            "payees": [{"address": spec.address(p), "bps": bps} for p, bps in lock.payees],
            "arbiter": spec.address(lock.arbiter) if lock.arbiter else None,
            "timeout": lock.timeout}

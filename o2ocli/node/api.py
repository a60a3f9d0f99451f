"""The node's JSON-RPC methods: every domain table of :mod:`o2ocli.node.methods`
bound to one node.

Each method validates its parameters (bad input → an :class:`RpcError` with a
specific code and message, never a state change) and returns plain JSON.
"""

from __future__ import annotations

from typing import Any

from o2ocli.rpc.server import RpcMethods

from .methods import (
    addresses,
    chain,
    consent,
    escrow,
    finality,
    gov,
    mempool,
    network,
    notify,
    profile,
    reviews,
    tokens,
    trace,
    validators,
)
from .methods import fees as fee_methods
from .methods import lookup as lookup_methods
from .methods.mempool import MEMPOOL_REASON_CODES
from .methods.table import MethodTable

__all__ = ["TABLES", "build_methods", "MEMPOOL_REASON_CODES"]

TABLES: tuple[MethodTable, ...] = (
    chain.TABLE,
    mempool.TABLE,
    addresses.TABLE,
    validators.TABLE,
    finality.TABLE,
    network.TABLE,
    tokens.TABLE,
    reviews.TABLE,
    escrow.TABLE,
    trace.TABLE,
    consent.TABLE,
    gov.TABLE,
    profile.TABLE,
    notify.TABLE,
    fee_methods.TABLE,
    lookup_methods.TABLE,
)
"""Every table of RPC methods, one per domain module (one line each)."""


def build_methods(node: Any) -> RpcMethods:
    """All RPC methods, running on ``node`` (a :class:`~.methods.context.NodeContext`:
    it is only looked at when a method runs)."""
    methods = RpcMethods()
    for table in TABLES:
        table.bind(methods, node)
    return methods

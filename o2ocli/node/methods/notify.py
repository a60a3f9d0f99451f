"""Notifications on the RPC port: ``waitforchange``, a long poll for a new tip,
a new finalized height, and transactions touching a set of addresses.

A client passes the ``cursor`` of its previous answer (null the first time);
the call returns at once when something differs from the cursor, else waits
(up to ``timeout`` seconds, at most :data:`MAX_WAIT`) until something does.
The answer says what changed, so a point-of-sale server follows hundreds of
invoices with one open request instead of polling per address.  It is
authenticated like every RPC call (cookie); at most :data:`MAX_WAITERS`
calls wait at once and each watches at most :data:`MAX_ADDRESSES` addresses.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from o2ocli.rpc import errors as E
from o2ocli.rpc.errors import RpcError

from .context import NodeContext
from .table import MethodTable
from .views import spent_coins

__all__ = ["TABLE", "waitforchange", "MAX_WAITERS", "MAX_ADDRESSES", "MAX_WAIT"]

TABLE = MethodTable()

MAX_WAITERS = 64
MAX_ADDRESSES = 10_000
MAX_WAIT = 60.0
TICK = 0.1
_waiting = [0]


def _touching(node: NodeContext, wanted: set[bytes]) -> list[str]:
    """Txids of mempool transactions paying or spending from ``wanted``."""
    found = []
    for mem in node.mempool.entries():
        hit = any(wanted.intersection(out.lock.addresses()) for out in mem.tx.outputs)
        if not hit:
            hit = any(coin is not None and wanted.intersection(coin.output.lock.addresses())
                      for coin in spent_coins(node, mem.tx))
        if hit:
            found.append(mem.txid.hex())
    return sorted(found)


def _snapshot(node: NodeContext, wanted: set[bytes]) -> dict[str, Any]:
    chain = node.chain
    txids = _touching(node, wanted) if wanted else []
    digest = hashlib.sha256(",".join(txids).encode()).hexdigest()[:32]
    return {"height": chain.height, "tip": chain.tip.hash.hex(),
            "finalized_height": chain.finalized_height, "mempool": digest,
            "mempool_txids": txids}


def _cursor(snap: dict[str, Any]) -> dict[str, Any]:
    return {k: snap[k] for k in ("tip", "finalized_height", "mempool")}


def _changes(old: Any, snap: dict[str, Any]) -> list[str]:
    if not isinstance(old, dict):
        return ["initial"]
    names = {"tip": "block", "finalized_height": "finalized", "mempool": "mempool"}
    return [name for key, name in names.items() if old.get(key) != snap[key]]


@TABLE.method("waitforchange")
async def waitforchange(node: NodeContext, cursor: Any = None, addresses: Any = None,
                        timeout: Any = 30) -> dict[str, Any]:
    """Wait until the tip, the finalized height, or the set of mempool txs touching
    ``addresses`` differs from ``cursor``; returns ``changes`` (``block``,
    ``finalized``, ``mempool``; ``initial`` without a cursor; empty on timeout),
    ``height``, ``tip``, ``finalized_height``, ``mempool_txids`` and the new ``cursor``."""
    if addresses is None:
        addresses = []
    if not isinstance(addresses, list) or len(addresses) > MAX_ADDRESSES:
        raise RpcError(E.INVALID_PARAMS, f"addresses: a list of at most {MAX_ADDRESSES}")
    if cursor is not None and not isinstance(cursor, dict):
        raise RpcError(E.INVALID_PARAMS, "cursor must be null or the cursor of an answer")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        raise RpcError(E.INVALID_PARAMS, "timeout must be a number of seconds >= 0")
    wanted = set()
    for text in addresses:
        try:
            wanted.add(node.spec.decode_address(text))
        except Exception:  # noqa: BLE001 - any decoding failure is a bad parameter
            raise RpcError(E.INVALID_ADDRESS, f"invalid address {text!r}") from None
    if _waiting[0] >= MAX_WAITERS:
        raise RpcError(E.MISC_ERROR, f"too many waiting clients (at most {MAX_WAITERS})")
    _waiting[0] += 1
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(float(timeout), MAX_WAIT)
        mark = None
        snap = _snapshot(node, wanted)
        while True:
            changes = _changes(cursor, snap)
            if changes or loop.time() >= deadline:
                return {**{k: v for k, v in snap.items()}, "changes": changes,
                        "cursor": _cursor(snap)}
            await asyncio.sleep(TICK)
            quick = (node.chain.tip.hash, node.chain.finalized_height, len(node.mempool),
                     node.mempool.total_bytes)
            if quick != mark:
                mark = quick
                snap = _snapshot(node, wanted)
    finally:
        _waiting[0] -= 1

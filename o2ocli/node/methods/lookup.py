"""``resolvetxid``: the transactions whose txid starts with a hex prefix (as
git resolves an abbreviated commit), over the chain's tx index and the mempool.

The chain database keys its tx index by txid (``t`` ‖ txid), so a prefix is
one ordered LevelDB range scan; at most :data:`MAX_MATCHES` txids come back."""

from __future__ import annotations

import re
from typing import Any

from o2ocli.rpc import errors as E
from o2ocli.rpc.errors import RpcError
from o2ocli.storage import schema as k

from .context import NodeContext
from .table import MethodTable

__all__ = ["TABLE", "MIN_PREFIX", "MAX_MATCHES", "resolvetxid"]

TABLE = MethodTable()

MIN_PREFIX = 8
"""Fewest hex digits a txid prefix may have."""

MAX_MATCHES = 10
"""Most matches listed (``more`` says when there were others)."""

_HEX = re.compile(r"[0-9a-f]{8,64}")


@TABLE.method("resolvetxid")
def resolvetxid(node: NodeContext, prefix: Any) -> dict[str, Any]:
    """Txids (chain and mempool) starting with ``prefix`` (8 to 64 hex digits):
    ``{"txids": [...], "more": bool}``."""
    if not isinstance(prefix, str) or not _HEX.fullmatch(prefix.lower()):
        raise RpcError(E.INVALID_PARAMS,
                       f"a txid prefix is {MIN_PREFIX} to 64 hex digits")
    text = prefix.lower()
    whole = bytes.fromhex(text[: len(text) // 2 * 2])
    found: set[str] = set()
    state = node.chain.state
    for key in state.db.iterate_keys(k.TXINDEX + whole):
        txid = key[1:].hex()
        if txid.startswith(text):
            found.add(txid)
            if len(found) > MAX_MATCHES:
                break
    for entry in node.mempool.entries():
        txid = entry.txid.hex()
        if txid.startswith(text):
            found.add(txid)
    ordered = sorted(found)
    return {"txids": ordered[:MAX_MATCHES], "more": len(ordered) > MAX_MATCHES}

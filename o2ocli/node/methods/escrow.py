"""RPC methods of escrow outputs: one escrow with its state, a party's escrows."""

from __future__ import annotations

from typing import Any

from o2ocli.consensus.escrow import PATH_DISPUTE, PATH_RECLAIM, PATH_REFUND, PATH_RELEASE
from o2ocli.core.locks import Escrow
from o2ocli.core.tx import Outpoint
from o2ocli.rpc import errors as E
from o2ocli.rpc.errors import RpcError

from .context import NodeContext
from .params import address_arg, txid_arg
from .table import MethodTable
from .views import amount_text

__all__ = ["TABLE", "escrow_arg", "escrow_json", "getescrow", "listescrows"]

TABLE = MethodTable()

_ESCROW_STATES = {PATH_RELEASE: "released", PATH_REFUND: "refunded", PATH_RECLAIM: "refunded",
                  PATH_DISPUTE: "disputed"}
_ESCROW_PATHS = {PATH_RELEASE: "release", PATH_REFUND: "refund", PATH_RECLAIM: "reclaim",
                 PATH_DISPUTE: "dispute"}


def escrow_arg(ref: Any) -> Outpoint:
    """An escrow output as ``TXID:INDEX``."""
    if not isinstance(ref, str) or ":" not in ref:
        raise RpcError(E.INVALID_PARAMS, "escrow must be TXID:INDEX")
    txid_text, _, index_text = ref.partition(":")
    if not (index_text.isascii() and index_text.isdigit()) or int(index_text) > 10_000:
        raise RpcError(E.INVALID_PARAMS, "escrow must be TXID:INDEX")
    return Outpoint(txid_arg(txid_text), int(index_text))


def escrow_json(node: NodeContext, outpoint: Outpoint) -> dict[str, Any] | None:
    """An escrow output with its state (None if ``outpoint`` is no escrow in the chain)."""
    spec = node.spec
    chain = node.chain
    st = chain.state
    found = st.get_tx(outpoint.txid)
    if found is None or outpoint.index >= len(found[0].outputs):
        return None
    out = found[0].outputs[outpoint.index]
    lock = out.lock
    if not isinstance(lock, Escrow):
        return None
    symbol, amount = amount_text(node, out.asset, out.amount)
    next_height = chain.height + 1
    settled = st.escrow_settlement(outpoint)
    spender = node.mempool.spender_of(outpoint)
    if settled is not None:
        state = _ESCROW_STATES[settled[1]]
        spent = st.get_tx(settled[0])
        settlement = {"txid": settled[0].hex(), "path": _ESCROW_PATHS[settled[1]],
                      "height": spent[2] if spent else None}
    else:
        state = "open" if next_height < lock.timeout else "expired-refundable"
        settlement = None
    return {
        "escrow": f"{outpoint.txid.hex()}:{outpoint.index}",
        "txid": outpoint.txid.hex(),
        "index": outpoint.index,
        "asset": symbol,
        "asset_id": out.asset.hex(),
        "amount": amount,
        "units": out.amount,
        "payer": spec.address(lock.payer),
        "payees": [{"address": spec.address(p), "bps": bps} for p, bps in lock.payees],
        "arbiter": spec.address(lock.arbiter) if lock.arbiter else None,
        "timeout": lock.timeout,
        "height": found[2],
        "state": state,
        "settlement": settlement,
        "pending_spend": spender.hex() if spender is not None and settled is None else None,
    }


@TABLE.method("getescrow")
def getescrow(node: NodeContext, escrow: Any) -> dict[str, Any]:
    """An escrow output (``TXID:INDEX``) with its state: open,
    expired-refundable, released, refunded or disputed."""
    data = escrow_json(node, escrow_arg(escrow))
    if data is None:
        raise RpcError(E.NOT_FOUND, f"no escrow {escrow} in the chain")
    return data


@TABLE.method("listescrows")
def listescrows(node: NodeContext, addresses: Any) -> list[dict[str, Any]]:
    """Every escrow in the chain where one of ``addresses`` is a party, oldest first."""
    if not isinstance(addresses, list) or not 1 <= len(addresses) <= 10_000:
        raise RpcError(E.INVALID_PARAMS, "addresses must be a list of 1..10000 addresses")
    pkhs = {address_arg(node, a) for a in addresses}
    st = node.chain.state
    seen: set[Outpoint] = set()
    result = []
    for _, txid in sorted({item for p in pkhs for item in st.address_history(p)}):
        found = st.get_tx(txid)
        if found is None:
            continue
        for index, out in enumerate(found[0].outputs):
            lock = out.lock
            if isinstance(lock, Escrow) and pkhs & set(lock.addresses()):
                outpoint = Outpoint(txid, index)
                if outpoint not in seen:
                    seen.add(outpoint)
                    data = escrow_json(node, outpoint)
                    if data is not None:
                        result.append(data)
    return result

"""RPC methods that hand transactions to the node and list its mempool."""

from __future__ import annotations

from typing import Any

from o2ocli.core.encoding import DecodeError
from o2ocli.core.tx import Tx
from o2ocli.rpc import errors as E
from o2ocli.rpc.errors import RpcError

from ..mempool import MempoolError
from .context import NodeContext
from .params import hex_arg
from .table import MethodTable

__all__ = ["TABLE", "MEMPOOL_REASON_CODES", "decode_tx", "refusal", "sendrawtx", "sendrawtxs",
           "getmempool"]

TABLE = MethodTable()

MEMPOOL_REASON_CODES = {
    "txn-already-known": E.TX_ALREADY_KNOWN,
    "txn-already-in-mempool": E.TX_ALREADY_KNOWN,
    "bad-txns-inputs-missingorspent": E.TX_MISSING_INPUTS,
}
"""Mempool refusal reasons with their own RPC error code (else ``TX_REJECTED``)."""


def decode_tx(raw: Any) -> Tx:
    """A transaction from its hex encoding."""
    data = hex_arg(raw, "raw transaction")
    try:
        return Tx.from_bytes(data)
    except DecodeError as exc:
        raise RpcError(E.DESERIALIZATION_ERROR, f"transaction decode failed: {exc}") from None


def refusal(exc: MempoolError) -> RpcError:
    """The RPC error for a mempool refusal (the reason, and the conflicting txid)."""
    data: dict[str, Any] = {"reason": exc.reason}
    if getattr(exc, "conflict", None):
        data["conflict"] = exc.conflict.hex()
    code = MEMPOOL_REASON_CODES.get(exc.reason, E.TX_REJECTED)
    return RpcError(code, f"transaction rejected: {exc.reason}: {exc.message}", data)


@TABLE.method("sendrawtx")
def sendrawtx(node: NodeContext, raw: Any) -> str:
    """Validate a signed transaction, add it to the mempool and relay it."""
    tx = decode_tx(raw)
    try:
        entry = node.submit_tx(tx)
    except MempoolError as exc:
        raise refusal(exc) from None
    return entry.txid.hex()


@TABLE.method("sendrawtxs")
def sendrawtxs(node: NodeContext, raws: Any) -> list[Any]:
    """Many transactions at once (signatures verified in one batch); one
    result per tx: its txid, or ``{"error": {"code", "message", "data"}}``."""
    if not isinstance(raws, list) or len(raws) > 10_000:
        raise RpcError(E.INVALID_PARAMS, "expected a list of at most 10000 hex transactions")
    txs: list[Tx | RpcError] = []
    for raw in raws:
        try:
            txs.append(decode_tx(raw))
        except RpcError as exc:
            txs.append(exc)
    good = [t for t in txs if isinstance(t, Tx)]
    results = iter(node.submit_txs(good))
    out: list[Any] = []
    for item in txs:
        if isinstance(item, RpcError):
            out.append({"error": {"code": item.code, "message": item.message}})
            continue
        result = next(results)
        if isinstance(result, MempoolError):
            err = refusal(result)
            out.append({"error": {"code": err.code, "message": err.message, "data": err.data}})
        else:
            out.append(result.txid.hex())
    return out


@TABLE.method("getmempool")
def getmempool(node: NodeContext, verbose: Any = False) -> Any:
    """Mempool txids, or with ``verbose`` a list of entries (fee, size, fee rate)."""
    entries = node.mempool.entries()
    if not verbose:
        return [e.txid.hex() for e in entries]
    spec = node.spec
    return [
        {
            "txid": e.txid.hex(),
            "fee": spec.format(e.fee),
            "size": e.size,
            "fee_rate": spec.format(e.fee_rate),
            "time": e.time,
        }
        for e in entries
    ]

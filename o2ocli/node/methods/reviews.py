"""RPC methods of reviews: one review, reviews by party, a merchant's stats."""

from __future__ import annotations

from typing import Any

from o2ocli.consensus.o2o import ReviewRecord
from o2ocli.core.payloads import Review, ReviewReply
from o2ocli.rpc import errors as E
from o2ocli.rpc.errors import RpcError

from .context import NodeContext
from .params import address_arg, txid_arg
from .table import MethodTable
from .views import confirmations

__all__ = ["TABLE", "review_json", "getreview", "listreviews", "getreviewstats"]

TABLE = MethodTable()


def review_json(
    node: NodeContext, txid: bytes, record: ReviewRecord | None = None
) -> dict[str, Any]:
    """A review in the chain with its reply (NOT_FOUND if there is none)."""
    spec = node.spec
    st = node.chain.state
    record = record or st.review(txid)
    found = st.get_tx(txid)
    if record is None or found is None or not isinstance(found[0].payload, Review):
        raise RpcError(E.NOT_FOUND, f"no review {txid.hex()} in the chain")
    payload = found[0].payload
    header = st.get_index(found[1])
    reply = None
    reply_txid = st.reply_of(txid)
    if reply_txid is not None:
        reply_tx = st.get_tx(reply_txid)
        if reply_tx is not None and isinstance(reply_tx[0].payload, ReviewReply):
            reply = {
                "txid": reply_txid.hex(),
                "text": reply_tx[0].payload.text.decode("utf-8", "replace"),
                "height": reply_tx[2],
            }
    return {
        "txid": txid.hex(),
        "merchant": spec.address(record.merchant),
        "reviewer": spec.address(record.reviewer),
        "purchase": record.purchase.hex(),
        "rating": record.rating,
        "text": payload.text.decode("utf-8", "replace"),
        "height": record.height,
        "time": header.header.time if header is not None else None,
        "confirmations": confirmations(node, record.height),
        "final": record.height <= node.chain.finalized_height,
        "purchase_value": spec.format(record.value),
        "purchase_value_units": record.value,
        "reply": reply,
    }


@TABLE.method("getreview")
def getreview(node: NodeContext, txid: Any) -> dict[str, Any]:
    """One review (with its reply, if any)."""
    return review_json(node, txid_arg(txid))


@TABLE.method("listreviews")
def listreviews(node: NodeContext, by: Any, value: Any) -> list[dict[str, Any]]:
    """Reviews ``by`` ``"merchant"`` or ``"reviewer"`` (an address) or
    ``"purchase"`` (a txid), oldest first."""
    st = node.chain.state
    if by == "merchant":
        txids = st.reviews_by_merchant(address_arg(node, value))
    elif by == "reviewer":
        txids = st.reviews_by_reviewer(address_arg(node, value))
    elif by == "purchase":
        found = st.review_of_purchase(txid_arg(value, "purchase txid"))
        txids = [] if found is None else [found]
    else:
        raise RpcError(E.INVALID_PARAMS, "by must be 'merchant', 'reviewer' or 'purchase'")
    return [review_json(node, t) for t in txids]


@TABLE.method("getreviewstats")
def getreviewstats(node: NodeContext, merchant: Any) -> dict[str, Any]:
    """Count, average rating, 1-5 distribution, distinct reviewers and the
    verified purchase value behind a merchant's reviews."""
    spec = node.spec
    pkh = address_arg(node, merchant)
    st = node.chain.state
    distribution = {str(n): 0 for n in range(1, 6)}
    reviewers: set[bytes] = set()
    total = value = replied = 0
    for txid in st.reviews_by_merchant(pkh):
        record = st.review(txid)
        if record is None:
            continue
        distribution[str(record.rating)] += 1
        reviewers.add(record.reviewer)
        total += record.rating
        value += record.value
        if st.reply_of(txid) is not None:
            replied += 1
    count = sum(distribution.values())
    return {
        "merchant": spec.address(pkh),
        "count": count,
        "average": round(total / count, 2) if count else None,
        "distribution": distribution,
        "reviewers": len(reviewers),
        "replied": replied,
        "verified_value": spec.format(value),
        "verified_value_units": value,
    }

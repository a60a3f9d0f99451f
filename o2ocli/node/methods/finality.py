"""RPC methods of the finality gadget: its view, votes and evidence."""

from __future__ import annotations

from typing import Any

from o2ocli.consensus.errors import BlockInvalid
from o2ocli.consensus.finality import quorum, votes_conflict
from o2ocli.core.encoding import DecodeError
from o2ocli.core.finality import VOTE_SIZE, FinalityVote
from o2ocli.rpc import errors as E
from o2ocli.rpc.errors import RpcError

from ..finality import VoteOutcome
from ..render import vote_json
from .context import NodeContext
from .params import hex_arg
from .table import MethodTable

__all__ = ["TABLE", "listevidence", "getfinality", "submitvote"]

TABLE = MethodTable()


@TABLE.method("listevidence")
def listevidence(node: NodeContext) -> dict[str, Any]:
    """Equivocation evidence seen (in blocks or gossip): pairs of conflicting
    finality votes signed by one validator."""
    spec = node.spec
    chain = node.chain
    items = sorted(chain.finality.evidence.values(), key=lambda ev: (ev.signer, ev.id))
    snap = chain.tip_snapshot()
    return {
        "evidence": [
            {
                "id": ev.id.hex(),
                "validator": spec.address(ev.signer),
                "kind": votes_conflict(ev.first, ev.second),
                "still_validator": ev.signer in snap.validators,
                "votes": [vote_json(spec, ev.first), vote_json(spec, ev.second)],
                "raw": ev.to_bytes().hex(),
            }
            for ev in items
        ]
    }


@TABLE.method("getfinality")
def getfinality(node: NodeContext) -> dict[str, Any]:
    """The finality gadget's view of the main chain: finalized and justified
    blocks, and the votes counted for links above the finalized block."""
    spec = node.spec
    chain = node.chain
    tip = chain.tip
    view = chain.finality.view(tip)
    snap = chain.tip_snapshot()
    return {
        "finalized_height": chain.finalized_height,
        "finalized_hash": chain.finalized_hash.hex(),
        "justified_height": view.best_justified[0],
        "justified_hash": view.best_justified[1].hex(),
        "quorum": quorum(len(snap.validators)),
        "links": [
            {"source_height": s_h, "target_height": t_h,
             "voters": [spec.address(v) for v in who]}
            for s_h, t_h, who in view.links
        ],
        "pool_votes": len(chain.finality.pool),
        "chain_finalized_height": chain.finality.state(tip.hash).finalized[0],
    }


@TABLE.method("submitvote")
def submitvote(node: NodeContext, raw: Any) -> dict[str, Any]:
    """Hand a finality vote (hex of its 169-byte encoding) to the node, as
    a peer would: counted if valid, relayed if new, evidence if it
    conflicts with a vote of the same key."""
    data = hex_arg(raw, "vote", VOTE_SIZE)
    try:
        vote = FinalityVote.from_bytes(data)
    except (DecodeError, ValueError) as exc:
        raise RpcError(E.INVALID_PARAMS, f"not a vote: {exc}") from None
    try:
        outcome, ev = node.chain.finality.add_vote(vote)
    except BlockInvalid as exc:
        raise RpcError(E.TX_REJECTED, f"vote refused: {exc.reason}") from None
    if outcome == VoteOutcome.NEW or ev is not None:
        node._after_votes([vote] if outcome == VoteOutcome.NEW else [],
                          [ev] if ev is not None else [], None)
    return {"result": outcome, "evidence": ev.id.hex() if ev is not None else None}

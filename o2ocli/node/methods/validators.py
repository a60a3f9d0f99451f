"""RPC methods about the validator set and this validator's proposals."""

from __future__ import annotations

from typing import Any

from o2ocli.rpc import errors as E
from o2ocli.rpc.errors import RpcError

from .context import NodeContext
from .params import address_arg
from .table import MethodTable

__all__ = ["TABLE", "proposals_json", "getvalidators", "propose", "discard"]

TABLE = MethodTable()


def proposals_json(node: NodeContext) -> list[dict[str, str]]:
    """This validator's standing proposals (add or remove an address)."""
    return [
        {"address": node.spec.address(a), "action": "add" if add else "remove"}
        for a, add in sorted(node.proposals.votes.items())
    ]


@TABLE.method("getvalidators")
def getvalidators(node: NodeContext) -> dict[str, Any]:
    """Validator set after the tip, pending votes, and this node's proposals."""
    spec = node.spec
    chain = node.chain
    snap = chain.tip_snapshot()
    return {
        "validators": [spec.address(v) for v in snap.validators],
        "in_turn": spec.address(snap.in_turn(chain.height + 1)),
        "signer_limit": snap.limit(),
        "pending_votes": [
            {
                "signer": spec.address(v.signer),
                "address": spec.address(v.address),
                "action": "add" if v.authorize else "remove",
                "height": v.height,
            }
            for v in snap.votes
        ],
        "proposals": proposals_json(node),
        "finalized_height": chain.finalized_height,
        "accused": sorted(spec.address(a) for a in chain.finality.accused()
                          if a in snap.validators),
    }


@TABLE.method("propose")
def propose(node: NodeContext, address: Any, add: Any = True) -> dict[str, Any]:
    """Vote (in every block this validator seals) to add or remove ``address``."""
    if not isinstance(add, bool):
        raise RpcError(E.INVALID_PARAMS, "add must be true (add) or false (remove)")
    if node.validator_address is None:
        raise RpcError(E.MISC_ERROR, "this node is not a validator: it cannot vote")
    node.proposals.votes[address_arg(node, address)] = add
    return {"proposals": proposals_json(node)}


@TABLE.method("discard")
def discard(node: NodeContext, address: Any) -> dict[str, Any]:
    """Withdraw this validator's proposal about ``address``."""
    pkh = address_arg(node, address)
    if pkh not in node.proposals.votes:
        raise RpcError(E.NOT_FOUND, f"no proposal about {address}")
    del node.proposals.votes[pkh]
    return {"proposals": proposals_json(node)}

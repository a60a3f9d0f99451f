"""RPC methods of profile commitments: a user's current one, one by txid, the history."""

from __future__ import annotations

from typing import Any

from o2ocli.consensus import profile
from o2ocli.consensus.profile import ProfileRecord
from o2ocli.rpc import errors as E
from o2ocli.rpc.errors import RpcError

from .context import NodeContext
from .params import address_arg, txid_arg
from .table import MethodTable

__all__ = ["TABLE", "profile_json", "getprofile", "getprofilecommitment", "listprofilehistory"]

TABLE = MethodTable()


def profile_json(node: NodeContext, txid: bytes, record: ProfileRecord) -> dict[str, Any]:
    """A commitment, with whether it is still its user's current one."""
    current = profile.current_commitment(node.chain.state, record.user)
    return {"txid": txid.hex(), "user": node.spec.address(record.user),
            "pubkey": record.pubkey.hex(), "root": record.root.hex(), "leaves": record.leaves,
            "height": record.height, "current": current == txid,
            "superseded_by": None if current in (None, txid) else current.hex()}


@TABLE.method("getprofile")
def getprofile(node: NodeContext, address: Any) -> dict[str, Any]:
    """The current (newest) profile commitment of ``address``."""
    user = address_arg(node, address)
    st = node.chain.state
    txid = profile.current_commitment(st, user)
    record = None if txid is None else profile.read_commitment(st, txid)
    if txid is None or record is None:
        raise RpcError(E.NOT_FOUND, f"{address} has no profile commitment")
    return profile_json(node, txid, record)


@TABLE.method("getprofilecommitment")
def getprofilecommitment(node: NodeContext, txid: Any) -> dict[str, Any]:
    """The profile commitment ``txid`` (current or superseded)."""
    raw = txid_arg(txid)
    record = profile.read_commitment(node.chain.state, raw)
    if record is None:
        raise RpcError(E.NOT_FOUND, f"no profile commitment {raw.hex()}")
    return profile_json(node, raw, record)


@TABLE.method("listprofilehistory")
def listprofilehistory(node: NodeContext, address: Any) -> list[dict[str, Any]]:
    """Every profile commitment of ``address``, oldest first."""
    user = address_arg(node, address)
    st = node.chain.state
    out = []
    for _, txid in st.profile_history(user):
        record = profile.read_commitment(st, txid)
        if record is not None:
            out.append(profile_json(node, txid, record))
    return out

"""RPC methods of consent grants: a party's grants, and the access check."""

from __future__ import annotations

from typing import Any

from o2ocli.consensus.o2o import ConsentRecord
from o2ocli.rpc import errors as E
from o2ocli.rpc.errors import RpcError
from o2ocli.storage import schema as k

from .context import NodeContext
from .params import address_arg
from .table import MethodTable

__all__ = ["TABLE", "consent_json", "listconsents", "checkconsent"]

TABLE = MethodTable()


def consent_json(node: NodeContext, txid: bytes, record: ConsentRecord) -> dict[str, Any]:
    """A grant with its status at the next block's height: active, expired or revoked."""
    spec = node.spec
    revoked = node.chain.state.revoked_by(txid)
    next_height = node.chain.height + 1
    if revoked is not None:
        status = "revoked"
    elif record.until < next_height:
        status = "expired"
    else:
        status = "active"
    return {"txid": txid.hex(), "user": spec.address(record.user),
            "grantee": spec.address(record.grantee), "scope": record.scope,
            "until": record.until, "height": record.height, "status": status,
            "revoked_by": revoked.hex() if revoked else None,
            "profile": record.profile.hex() if record.profile is not None else None}


@TABLE.method("listconsents")
def listconsents(node: NodeContext, address: Any, role: Any = "user") -> list[dict[str, Any]]:
    """Consent grants where ``address`` is the ``user`` (default) or the
    ``grantee``, oldest first, with status active, expired or revoked."""
    if role not in ("user", "grantee"):
        raise RpcError(E.INVALID_PARAMS, "role must be 'user' or 'grantee'")
    prefix = k.BY_USER if role == "user" else k.BY_GRANTEE
    st = node.chain.state
    out = []
    for txid in st.consents_by(prefix, address_arg(node, address)):
        record = st.consent(txid)
        if record is not None:
            out.append(consent_json(node, txid, record))
    return out


@TABLE.method("checkconsent")
def checkconsent(node: NodeContext, user: Any, grantee: Any, scope: Any) -> dict[str, Any]:
    """Does ``user`` grant ``grantee`` access to ``scope`` at the next
    block's height?  ``granted`` with the grant's txid as proof."""
    if not isinstance(scope, str) or not scope:
        raise RpcError(E.INVALID_PARAMS, "scope must be a non-empty string")
    user_pkh, grantee_pkh = address_arg(node, user), address_arg(node, grantee)
    st = node.chain.state
    height = node.chain.height + 1
    latest = None
    for txid in reversed(st.consents_by(k.BY_USER, user_pkh)):
        record = st.consent(txid)
        if record is not None and record.grantee == grantee_pkh and record.scope == scope:
            data = consent_json(node, txid, record)
            if data["status"] == "active":
                return {"granted": True, "proof": txid.hex(), "until": record.until,
                        "height": height, "grant": data}
            latest = latest or data
    reason = "no grant" if latest is None else f"the latest grant is {latest['status']}"
    return {"granted": False, "proof": None, "until": None, "height": height,
            "reason": reason, "grant": latest}

"""``consent grant --profile``: a grant that names the profile commitment it covers."""

from __future__ import annotations

from typing import Any

from .common import CliError

__all__ = ["grant_for_profile"]


def grant_for_profile(wallet: Any, client: Any, unlocked: Any, grantee: bytes, scope: str,
                      until: int, profile: str) -> tuple[Any, Any, str]:
    """(tx, plan, commitment txid) of a grant naming commitment ``profile``
    (a txid, or ``current`` for this wallet's current commitment), which must
    be this wallet's."""
    from o2ocli.rpc import errors as E
    from o2ocli.rpc.errors import RpcError
    from o2ocli.wallet.profile import grant_profile_consent

    me = wallet.spec.address(wallet.primary_pkh())
    try:
        if profile == "current":
            record = client.call("getprofile", me)
        else:
            record = client.call("getprofilecommitment", profile)
    except RpcError as exc:
        if exc.code == E.NOT_FOUND:
            raise CliError(f"--profile: {exc.message}") from None
        raise
    if record["user"] != me:
        raise CliError(f"--profile: commitment {record['txid']} is {record['user']}'s, not yours")
    tx, plan = grant_profile_consent(wallet, client, unlocked, grantee, scope, until,
                                     bytes.fromhex(record["txid"]))
    return tx, plan, record["txid"]

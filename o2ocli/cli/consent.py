"""``o2ocli consent …``: customers grant and revoke merchants' access to their data."""

from __future__ import annotations

from pathlib import Path

import click

from .common import (
    TXID,
    CliError,
    emit,
    get_context,
    node_errors,
    open_wallet,
    parse_address,
    passphrase_file_option,
    rpc_client,
    table,
    unlock_passphrase,
)

__all__ = ["consent"]


@click.group()
def consent() -> None:
    """Consent records: who may use which of your data, until when.

    A grant names the merchant, a data scope (e.g. purchase-history, contact)
    and the last height it holds; the user can revoke it at any time.  Both
    are signed by the user's primary key; anyone can check a grant.

    \b
    Example:
        o2ocli -w alice consent grant dShop… purchase-history --blocks 100000
        o2ocli consent check dAlice… dShop… purchase-history
    """


@consent.command("grant")
@click.argument("grantee", metavar="GRANTEE")
@click.argument("scope")
@click.option("--blocks", type=click.IntRange(1, 2**31), default=100_000, show_default=True,
              help="For how many blocks after it is recorded the grant holds.")
@click.option("--until", "until", type=click.IntRange(1, 2**32 - 1), default=None,
              metavar="HEIGHT", help="Last height the grant holds (instead of --blocks).")
@click.option("--profile", "profile", default=None, metavar="TXID|current",
              help="Name the profile commitment the grant covers (its txid, or 'current').")
@passphrase_file_option
def grant_cmd(grantee: str, scope: str, blocks: int, until: int | None, profile: str | None,
              passphrase_file: Path | None) -> None:
    """Let GRANTEE use SCOPE of your data until a height.

    SCOPE also covers the profile attribute of the same name (see
    ``o2ocli profile``); with --profile the grant covers only that commitment.

    \b
    Example:
        o2ocli -w alice consent grant dShop… contact --blocks 5000
        o2ocli -w alice consent grant dShop… phone --profile current
    """
    from o2ocli.wallet import records
    from o2ocli.wallet.payloadtx import send

    ctx = get_context()
    with open_wallet(ctx) as w, node_errors():
        client = rpc_client(ctx)
        height = client.call("getinfo")["height"]
        # --blocks N: the grant holds for N blocks after the one that records it.
        last = until if until is not None else height + 1 + blocks
        if last <= height:
            raise CliError(f"--until {last} is not above the chain height {height}")
        to = parse_address(w.spec, grantee)
        unlocked = w.unlock(unlock_passphrase(w, passphrase_file))
        if profile is None:
            tx, plan = records.grant_consent(w, client, unlocked, to, scope, last)
        else:
            from .profile_grant import grant_for_profile

            tx, plan, profile = grant_for_profile(w, client, unlocked, to, scope, last, profile)
        txid = send(w, client, tx, plan)
        user = w.spec.address(w.primary_pkh())
    emit(ctx, {"txid": txid, "user": user, "grantee": grantee, "scope": scope, "until": last,
               "profile": profile},
         f"granted {grantee} access to {scope} until height {last} ({txid})")


@consent.command("revoke")
@click.argument("grant_txid", metavar="GRANT_TXID", type=TXID)
@passphrase_file_option
def revoke_cmd(grant_txid: str, passphrase_file: Path | None) -> None:
    """Withdraw a grant you made.

    \b
    Example:
        o2ocli -w alice consent revoke 4b2e…
    """
    from o2ocli.wallet import records
    from o2ocli.wallet.errors import O2OError
    from o2ocli.wallet.payloadtx import send

    ctx = get_context()
    with open_wallet(ctx) as w, node_errors():
        try:
            grant = bytes.fromhex(grant_txid)
        except ValueError:
            grant = b""
        if len(grant) != 32:
            raise O2OError(f"invalid grant txid {grant_txid!r}")
        client = rpc_client(ctx)
        mine = client.call("listconsents", w.spec.address(w.primary_pkh()), "user")
        match = next((g for g in mine if g["txid"] == grant.hex()), None)
        if match is None:
            raise O2OError("no grant with that txid was made by this wallet")
        if match["status"] == "revoked":
            raise O2OError(f"that grant is already revoked ({match['revoked_by']})")
        unlocked = w.unlock(unlock_passphrase(w, passphrase_file))
        tx, plan = records.revoke_consent(w, client, unlocked, grant)
        txid = send(w, client, tx, plan)
    emit(ctx, {"txid": txid, "grant": grant_txid}, f"revoked {grant_txid} in {txid}")


@consent.command("list")
@click.option("--grantee", "as_grantee", is_flag=True,
              help="Grants made TO this wallet (a merchant's view) instead of by it.")
@click.option("--address", default=None, metavar="ADDRESS",
              help="Someone else's grants (default: this wallet's primary address).")
def list_cmd(as_grantee: bool, address: str | None) -> None:
    """Grants made by (or to) this wallet, with status active, expired or revoked.

    \b
    Example:
        o2ocli -w alice consent list
        o2ocli -w shop consent list --grantee
    """
    ctx = get_context()
    with node_errors():
        if address is None:
            with open_wallet(ctx) as w:
                address = w.spec.address(w.primary_pkh())
        items = rpc_client(ctx).call("listconsents", address,
                                     "grantee" if as_grantee else "user")
    emit(ctx, {"consents": items}, lambda: table(
        [[c["txid"], c["user"], c["grantee"], c["scope"], c["until"], c["status"]]
         for c in items], ["grant", "user", "grantee", "scope", "until", "status"],
    ) if items else "no consent records")


@consent.command("check")
@click.argument("user")
@click.argument("grantee")
@click.argument("scope")
def check_cmd(user: str, grantee: str, scope: str) -> None:
    """Is GRANTEE allowed SCOPE of USER's data now?  Exit 0 granted, 1 denied.

    \b
    Example:
        o2ocli consent check dAlice… dShop… purchase-history
    """
    ctx = get_context()
    with node_errors():
        result = rpc_client(ctx).call("checkconsent", user, grantee, scope)
    if result["granted"]:
        emit(ctx, result, f"granted until height {result['until']} (proof: grant "
                          f"{result['proof']})")
        return
    raise CliError(f"denied: {result['reason']}", data=result)

"""``o2ocli chain verify-utxo``: check the stored UTXO set commitment against a
full scan (registered on the ``chain`` group by :mod:`.chain`)."""

from __future__ import annotations

import click

from .common import (
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    CliError,
    emit,
    get_context,
    rpc_client,
)

__all__ = ["verify_utxo_cmd"]

SCAN_TIMEOUT = 3600.0
"""Seconds to wait for the node's answer: the scan reads and hashes every coin
(roughly 10 to 30 s per million on a small machine)."""


@click.command("verify-utxo")
def verify_utxo_cmd() -> None:
    """Recompute the UTXO set hash from a full scan and check it equals the
    commitment stored with the tip (what ``chain info`` shows).

    Exits 1 with one line on stderr if they differ (the chainstate is damaged:
    stop the node and run ``o2ocli node reindex``).  Slow on a large set: it
    reads every unspent output (the node keeps running meanwhile).

    \b
    Example:
        o2ocli chain verify-utxo
        o2ocli --json chain verify-utxo
    """
    from o2ocli.rpc.client import NodeUnreachable, RpcAuthError
    from o2ocli.rpc.errors import RpcError

    ctx = get_context()
    client = rpc_client(ctx)
    client.timeout = SCAN_TIMEOUT
    try:
        result = client.call("verifyutxoset")
    except NodeUnreachable as exc:
        raise CliError(str(exc), EXIT_UNREACHABLE) from None
    except (RpcAuthError, RpcError) as exc:
        raise CliError(getattr(exc, "message", str(exc)), EXIT_REFUSED) from None
    if not result["ok"]:
        raise CliError(
            f"UTXO set commitment mismatch at height {result['height']}: {result['error']} "
            "(stop the node and run: o2ocli node reindex)",
            data=result,
        )
    emit(
        ctx,
        result,
        f"utxo set at height {result['height']} verified: {result['utxo_set_hash']} "
        f"({result['scanned_count']} outputs, full scan {result['seconds']:.1f} s)",
    )

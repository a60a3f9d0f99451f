"""``o2ocli escrow …``: escrow for services, settled by release, refund or dispute."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .common import (
    ESCROW_ID,
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
from .confirm import approve_tx, guard, spend_options

__all__ = ["escrow"]


@click.group()
def escrow() -> None:
    """Escrow for services: the customer pays in, the job gets done, the money moves.

    The payer opens an escrow naming payees with shares (basis points adding up
    to 10000, e.g. merchant 8500, courier 1000, platform 500), an optional
    arbiter and a timeout.  Then: the payer releases (each payee gets its
    share), a payee refunds (all back to the payer), the payer reclaims after
    the timeout, or the arbiter and one party send it where the arbiter rules.

    \b
    Example:
        o2ocli -w alice escrow open --payee dFixIt…=9000 --payee dPlatform…=1000 \\
            --amount 80 --arbiter dArb… --timeout 1000
        o2ocli -w alice escrow release 5e1c…:0
    """


def _bps_pairs(spec: Any, items: tuple[str, ...], what: str) -> list[tuple[bytes, int]]:
    pairs = []
    for item in items:
        where, sep, value = item.rpartition("=")
        if not sep or not value.isdigit():
            raise click.UsageError(f"{what} expects ADDRESS=BPS, got {item!r}")
        pairs.append((parse_address(spec, where), int(value)))
    return pairs


def _asset(ctx: Any, spec: Any, asset: str | None) -> tuple[bytes, int]:
    from o2ocli.core.tx import NATIVE_ASSET

    if asset is None or asset.upper() == spec.native_symbol:
        return NATIVE_ASSET, spec.native_decimals
    from o2ocli.wallet.payloadtx import get_token

    info = get_token(rpc_client(ctx), asset)
    return bytes.fromhex(info["asset"]), info["decimals"]


@escrow.command("open")
@click.option("--payee", "payees", multiple=True, required=True, metavar="ADDRESS=BPS",
              help="A payee and its share in basis points (repeatable; shares add up to 10000).")
@click.option("--amount", required=True, metavar="X", help="Amount to escrow (display units).")
@click.option("--asset", default=None, metavar="SYM", help="Token to escrow (default: native).")
@click.option("--arbiter", default=None, metavar="ADDRESS", help="Who can rule on a dispute.")
@click.option("--timeout", type=click.IntRange(1, 10_000_000), default=1000, show_default=True,
              metavar="BLOCKS", help="Blocks from now after which the payer may reclaim.")
@spend_options
@passphrase_file_option
def open_cmd(payees: tuple[str, ...], amount: str, asset: str | None, arbiter: str | None,
             timeout: int, passphrase_file: Path | None, **spend: Any) -> None:
    """Pay into an escrow (this wallet is the payer).

    On a terminal the payment is summarised and needs a yes at 'Send? [y/N]'
    (--yes skips it).

    \b
    Example:
        o2ocli -w alice escrow open --payee dShop…=8500 --payee dCourier…=1000 \\
            --payee dPlatform…=500 --amount 40 --timeout 500
    """
    from o2ocli.amounts import parse_amount
    from o2ocli.wallet import escrow as esc
    from o2ocli.wallet.payloadtx import send

    ctx = get_context()
    with open_wallet(ctx) as w, node_errors():
        spec = w.spec
        pairs = _bps_pairs(spec, payees, "--payee")
        asset_id, decimals = _asset(ctx, spec, asset)
        try:
            units = parse_amount(amount, decimals)
        except ValueError as exc:
            raise CliError(f"bad amount: {exc}") from None
        arbiter_pkh = parse_address(spec, arbiter) if arbiter else None
        client = rpc_client(ctx)
        height = client.call("getinfo")["height"]
        guard(ctx, w, client, **spend)
        unlocked = w.unlock(unlock_passphrase(w, passphrase_file))
        tx, plan = esc.open_escrow(w, client, unlocked, pairs, units, asset_id, arbiter_pkh,
                                   height + 1 + timeout)
        txid = send(w, client, tx, plan)
    escrow_id = f"{txid}:0"
    emit(ctx, {"txid": txid, "escrow": escrow_id, "timeout_height": height + 1 + timeout},
         f"escrow {escrow_id} opened (payer may reclaim from height {height + 1 + timeout})")


def _broadcast(client: Any, tx: Any, wallet: Any = None) -> str:
    """Send ``tx``; with ``wallet``, once its send policy approved it (the coins
    it spends are looked up on the node: an escrow settlement has no plan)."""
    if wallet is not None:
        approve_tx(wallet, client, tx)
    return client.call("sendrawtx", tx.to_bytes().hex())


@escrow.command("release")
@click.argument("escrow_id", metavar="TXID:INDEX", type=ESCROW_ID)
@spend_options
@passphrase_file_option
def release_cmd(escrow_id: str, passphrase_file: Path | None, **spend: Any) -> None:
    """The payer confirms the service was done: each payee gets its share.

    On a terminal the payout is summarised and needs a yes at 'Send? [y/N]'
    (--yes skips it).

    \b
    Example:
        o2ocli -w alice escrow release 5e1c…:0
    """
    from o2ocli.wallet import escrow as esc

    ctx = get_context()
    with open_wallet(ctx) as w, node_errors():
        outpoint = esc.parse_escrow_id(escrow_id)
        client = rpc_client(ctx)
        guard(ctx, w, client, **spend)
        unlocked = w.unlock(unlock_passphrase(w, passphrase_file))
        txid = _broadcast(client, esc.release(w, client, unlocked, outpoint), w)
    emit(ctx, {"txid": txid, "state": "released"}, f"released {escrow_id} in {txid}")


@escrow.command("refund")
@click.argument("escrow_id", metavar="TXID:INDEX", type=ESCROW_ID)
@spend_options
@passphrase_file_option
def refund_cmd(escrow_id: str, passphrase_file: Path | None, **spend: Any) -> None:
    """A payee returns everything to the payer (any time), or the payer takes
    it back (from the timeout height on).  Confirmed on a terminal like release.

    \b
    Example:
        o2ocli -w fixit escrow refund 5e1c…:0
    """
    from o2ocli.wallet import escrow as esc

    ctx = get_context()
    with open_wallet(ctx) as w, node_errors():
        outpoint = esc.parse_escrow_id(escrow_id)
        client = rpc_client(ctx)
        height = client.call("getinfo")["height"]
        guard(ctx, w, client, **spend)
        unlocked = w.unlock(unlock_passphrase(w, passphrase_file))
        tx, path = esc.refund(w, client, unlocked, outpoint, height)
        txid = _broadcast(client, tx, w)
    emit(ctx, {"txid": txid, "state": "refunded", "path": path},
         f"refunded {escrow_id} to the payer in {txid}")


@escrow.command("dispute")
@click.argument("escrow_id", metavar="TXID:INDEX", type=ESCROW_ID, required=False)
@click.option("--pay", "pay", multiple=True, metavar="ADDRESS=BPS",
              help="The ruling: who gets what share of the escrow (basis points, sum 10000).")
@click.option("--cosign", default=None, metavar="RAW",
              help="Add this wallet's signature to a ruling another party signed.")
@click.option("--yes", is_flag=True, help="With --cosign: agree to the ruling shown.")
@passphrase_file_option
def dispute_cmd(escrow_id: str | None, pay: tuple[str, ...], cosign: str | None, yes: bool,
                passphrase_file: Path | None) -> None:
    """The arbiter's ruling, signed by the arbiter and one party.

    Run by the arbiter (or the party) with --pay; if this wallet does not hold
    both keys, it prints a partially signed transaction: the other signer runs
    the command with --cosign RAW (which shows who gets what) and --yes to
    complete and broadcast it.

    \b
    Example:
        o2ocli -w arbiter escrow dispute 5e1c…:0 --pay dAlice…=5000 --pay dFixIt…=5000
        o2ocli -w alice escrow dispute --cosign 0100… --yes
    """
    from o2ocli.wallet import escrow as esc

    ctx = get_context()
    with open_wallet(ctx) as w, node_errors():
        client = rpc_client(ctx)
        unlocked_pass = unlock_passphrase(w, passphrase_file)
        unlocked = w.unlock(unlocked_pass)
        if cosign is not None:
            if escrow_id or pay:
                raise click.UsageError("--cosign takes the raw tx alone")
            ruling = esc.describe_ruling(w, client, cosign.strip())
            if not yes:
                raise CliError(f"this ruling pays {ruling}; add --yes to co-sign and send it")
            tx, complete = esc.cosign(w, client, unlocked, cosign.strip())
        else:
            if not escrow_id or not pay:
                raise click.UsageError("give TXID:INDEX and the ruling with --pay ADDRESS=BPS")
            pairs = _bps_pairs(w.spec, pay, "--pay")
            if sum(b for _, b in pairs) != 10_000:
                raise CliError("the --pay shares must add up to 10000 basis points")
            tx, complete = esc.dispute(w, client, unlocked, esc.parse_escrow_id(escrow_id),
                                       pairs)
        raw = tx.to_bytes().hex()
        if not complete:
            emit(ctx, {"txid": tx.txid.hex(), "complete": False, "raw": raw},
                 f"{raw}\n(signed by this wallet; the other signer completes it with: "
                 "o2ocli -w WALLET escrow dispute --cosign RAW --yes)")
            return
        txid = _broadcast(client, tx)
    emit(ctx, {"txid": txid, "complete": True, "state": "disputed"},
         f"ruling sent in {txid}")


def _row(e: dict[str, Any]) -> list[Any]:
    # The whole TXID:INDEX: escrow release/refund/dispute/show take it (or a prefix).
    return [e["escrow"], e["state"], f"{e['amount']} {e['asset']}", e["payer"],
            ", ".join(f"{p['address'][:10]}…={p['bps']}" for p in e["payees"]), e["timeout"]]


@escrow.command("show")
@click.argument("escrow_id", metavar="TXID:INDEX", type=ESCROW_ID)
def show_cmd(escrow_id: str) -> None:
    """One escrow: parties, shares, timeout and state.

    \b
    Example:
        o2ocli escrow show 5e1c…:0
    """
    from o2ocli.wallet import escrow as esc

    ctx = get_context()
    with node_errors():
        outpoint = esc.parse_escrow_id(escrow_id)
        info = esc.get_escrow(rpc_client(ctx), outpoint)

    def human() -> str:
        rows = [["escrow", info["escrow"]], ["state", info["state"]],
                ["amount", f"{info['amount']} {info['asset']}"], ["payer", info["payer"]]]
        rows += [["payee", f"{p['address']} ({p['bps'] / 100:g}%)"] for p in info["payees"]]
        rows += [["arbiter", info["arbiter"] or "none"], ["timeout height", info["timeout"]],
                 ["opened at", info["height"]]]
        if info["settlement"]:
            s = info["settlement"]
            rows.append(["settled", f"{s['path']} in {s['txid']} at height {s['height']}"])
        return table(rows, ["field", "value"])

    emit(ctx, info, human)


@escrow.command("list")
def list_cmd() -> None:
    """Escrows where this wallet is payer, payee or arbiter.

    \b
    Example:
        o2ocli -w alice escrow list
    """
    ctx = get_context()
    with open_wallet(ctx) as w, node_errors():
        addresses = [w.spec.address(p) for p in w.pubkey_hashes()]
        items = rpc_client(ctx).call("listescrows", addresses)
    emit(ctx, {"escrows": items}, lambda: table(
        [_row(e) for e in items], ["escrow", "state", "amount", "payer", "payees", "timeout"]
    ) if items else "no escrows")

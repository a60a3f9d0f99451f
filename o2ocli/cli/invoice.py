"""``o2ocli invoice`` (payment requests of the ``-w`` wallet) and the customer's
``wallet pay URI``, ``wallet export-xpub`` (added to the wallet group by main)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from .common import (
    CliError,
    emit,
    get_context,
    node_errors,
    open_wallet,
    passphrase_file_option,
    rpc_client,
    table,
    unlock_passphrase,
)
from .confirm import fee_options

STATES = ("new", "seen", "confirmed", "final", "expired", "underpaid")


def resolve_asset(client: Any, spec: Any, symbol: str | None) -> tuple[str, str, int]:
    """(symbol, asset id hex, decimals) of the native coin or a token symbol."""
    from o2ocli.wallet.o2o import O2OError, get_token

    if symbol is None or symbol.upper() == spec.native_symbol:
        return spec.native_symbol, bytes(32).hex(), spec.native_decimals
    try:
        with node_errors():
            info = get_token(client, symbol)
    except O2OError:
        raise CliError(f"unknown asset {symbol!r}: no token with that symbol on this chain "
                       "(see: o2ocli token list)") from None
    return info["symbol"], info["asset"], info["decimals"]


def write_qr(text: str, png: Path | None, svg: Path | None, terminal: bool) -> None:
    """Save / print the QR code of ``text``."""
    import segno

    qr = segno.make(text, error="m")
    try:
        if png is not None:
            qr.save(str(png), kind="png", scale=6, border=4)
        if svg is not None:
            qr.save(str(svg), kind="svg", scale=6, border=4)
    except OSError as exc:
        raise CliError(f"cannot write the QR code: {exc.strerror or exc}") from None
    if terminal:
        qr.terminal(out=sys.stdout, compact=True)


@click.group()
def invoice() -> None:
    """Payment requests: a fresh address, amount, URI and QR per sale.

    \b
    Example:
        o2ocli -w shop invoice create --amount 12.5 --label "Coffee" --png qr.png
        o2ocli -w shop invoice watch 3f2a… --timeout 600
    """


@invoice.command("create")
@click.option("--amount", required=True, metavar="X", help="Amount due (display units).")
@click.option("--asset", default=None, metavar="SYM", help="Token symbol (default: native).")
@click.option("--label", default=None, help="Shown to the customer (shop name, item).")
@click.option("--memo", default=None, help="Message shown to the customer.")
@click.option("--expires", type=click.FloatRange(0.01, 525_600), default=60, show_default=True,
              metavar="MINUTES", help="Minutes until an unpaid invoice expires (decimals ok).")
@click.option("--png", type=click.Path(dir_okay=False, path_type=Path), help="Write the QR as PNG.")
@click.option("--svg", type=click.Path(dir_okay=False, path_type=Path), help="Write the QR as SVG.")
@click.option("--no-qr", is_flag=True, help="Do not print the QR on the terminal.")
def create_cmd(amount: str, asset: str | None, label: str | None, memo: str | None,
               expires: float, png: Path | None, svg: Path | None, no_qr: bool) -> None:
    """Create an invoice with a fresh receiving address; prints its URI and QR.

    \b
    Example:
        o2ocli -w shop invoice create --amount 12.5 --label "Coffee"
        o2ocli -w shop --json invoice create --amount 3 --asset BEANS --svg qr.svg
    """
    from o2ocli.amounts import parse_amount
    from o2ocli.wallet.invoices import create_invoice, invoice_json

    ctx = get_context()
    with open_wallet(ctx) as w:
        symbol, asset_id, decimals = resolve_asset(
            rpc_client(ctx) if asset else None, w.spec, asset)
        try:
            units = parse_amount(amount, decimals)
        except ValueError as exc:
            raise CliError(f"bad amount: {exc}") from None
        now = int(time.time())
        inv = create_invoice(w, units=units, asset=symbol, asset_id=asset_id, decimals=decimals,
                             label=label, memo=memo, expires=now + max(1, round(expires * 60)),
                             now=now)
        data = invoice_json(w, inv)
    write_qr(data["uri"], png, svg, terminal=not ctx.json and not no_qr and sys.stdout.isatty())
    emit(ctx, data, f"invoice  {data['id']}\naddress  {data['address']}\namount   "
                    f"{data['amount']} {data['asset']}\nuri      {data['uri']}")


def _refreshed(w: Any, ctx: Any, invs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from o2ocli.wallet.invoices import refresh

    with node_errors():
        refresh(w, rpc_client(ctx), invs, int(time.time()))
    return invs


def _one(w: Any, invoice_id: str) -> dict[str, Any]:
    from o2ocli.wallet.invoices import get_invoice

    inv = get_invoice(w, invoice_id)
    if inv is None:
        raise CliError(f"no invoice {invoice_id!r} in wallet {w.name!r}")
    return inv


def _human(data: dict[str, Any]) -> str:
    flag = f" ({data['flag']}: paid {data['paid']} of {data['amount']})" if data["flag"] else ""
    return (f"invoice  {data['id']}\nstate    {data['state']}{flag}\namount   {data['amount']} "
            f"{data['asset']}\npaid     {data['paid']}\naddress  {data['address']}\n"
            f"uri      {data['uri']}" + (f"\ntxids    {', '.join(data['txids'])}"
                                         if data["txids"] else ""))


@invoice.command("show")
@click.argument("invoice_id", metavar="ID")
def show_cmd(invoice_id: str) -> None:
    """An invoice and its state, checked against the node now.

    \b
    Example:
        o2ocli -w shop invoice show 3f2a…
    """
    from o2ocli.wallet.invoices import invoice_json

    ctx = get_context()
    with open_wallet(ctx) as w:
        inv = _refreshed(w, ctx, [_one(w, invoice_id)])[0]
        data = invoice_json(w, inv)
    emit(ctx, data, _human(data))


@invoice.command("list")
@click.option("--state", type=click.Choice(STATES), default=None, help="Only this state.")
def list_cmd(state: str | None) -> None:
    """The wallet's invoices (states checked against the node now).

    \b
    Example:
        o2ocli -w shop invoice list --state final
    """
    from o2ocli.wallet.invoices import invoice_json, iter_invoices

    ctx = get_context()
    with open_wallet(ctx) as w:
        invs = sorted(iter_invoices(w), key=lambda i: (i["created"], i["id"]))
        _refreshed(w, ctx, invs)
        data = [invoice_json(w, i) for i in invs if state is None or i["state"] == state]
    emit(ctx, {"invoices": data},
         lambda: table([[d["id"], d["state"], d["amount"], d["asset"], d["paid"], d["label"] or ""]
                        for d in data], ["id", "state", "amount", "asset", "paid", "label"])
         if data else "no invoices")


@invoice.command("watch")
@click.argument("invoice_id", metavar="ID")
@click.option("--timeout", type=click.FloatRange(0.1, 86_400), default=900, show_default=True,
              metavar="SECONDS", help="Give up (exit 1) after this long.")
def watch_cmd(invoice_id: str, timeout: float) -> None:
    """Follow an invoice until it is final (exit 0) or expired (exit 1).

    A live status line on a terminal; with --json one JSON line per state change.

    \b
    Example:
        o2ocli -w shop invoice watch 3f2a… --timeout 600
    """
    from o2ocli.wallet.invoices import invoice_json

    ctx = get_context()
    deadline = time.monotonic() + timeout
    last = None
    live = sys.stdout.isatty() and not ctx.json
    with open_wallet(ctx) as w:
        inv = _one(w, invoice_id)
        client = rpc_client(ctx)
        cursor = None
        while True:
            _refreshed(w, ctx, [inv])
            data = invoice_json(w, inv)
            key = (data["state"], data["paid"], tuple(data["txids"]))
            if key != last:
                last = key
                if ctx.json:
                    click.echo(json.dumps(data))
                else:
                    line = f"{data['id']}  {data['state']:<10} paid {data['paid']} of " \
                           f"{data['amount']} {data['asset']}"
                    click.echo(("\r\x1b[K" + line) if live else line, nl=not live)
            if data["state"] in ("final", "expired"):
                if live:
                    click.echo()
                if data["state"] == "expired":
                    sys.exit(1)
                return
            left = deadline - time.monotonic()
            if left <= 0:
                if live:
                    click.echo()
                raise CliError(f"timed out after {timeout:g} s; invoice is {data['state']}")
            cursor = _wait_change(client, cursor, [inv["address"]], min(left, 10.0))


def _wait_change(client: Any, cursor: Any, addresses: list[str], timeout: float) -> Any:
    """Block until the node reports a change touching ``addresses`` (long poll with
    ``waitforchange``), or poll once a second from a node without it."""
    from o2ocli.rpc import errors as E
    from o2ocli.rpc.errors import RpcError

    with node_errors():
        try:
            return client.call("waitforchange", cursor, addresses, timeout)["cursor"]
        except RpcError as exc:
            if exc.code != E.METHOD_NOT_FOUND:
                raise
    time.sleep(min(1.0, timeout))  # an older node: poll
    return cursor


# ------------------------------------------------------------ customer side

def _pay_request(ctx: Any, w: Any, uri: str) -> tuple[Any, str, str, int]:
    """Validate the URI against this chain: (request, symbol, asset id, units)."""
    from o2ocli.amounts import parse_amount
    from o2ocli.crypto.address import AddressError
    from o2ocli.wallet.uri import UriError, parse_uri

    try:
        req = parse_uri(uri)
    except UriError as exc:
        raise CliError(str(exc)) from None
    spec = w.spec
    if req.chain is not None and req.chain != spec.chain_id:
        raise CliError(f"the payment request is for chain {req.chain!r}, this wallet is on "
                       f"{spec.chain_id!r}: not paying")
    try:
        spec.decode_address(req.address)
    except AddressError as exc:
        raise CliError(f"bad address in the payment URI (mistyped or tampered): {exc}") from None
    if req.exp is not None and req.exp <= time.time():
        raise CliError("the payment request has expired: ask the merchant for a new one")
    if req.amount is None:
        raise CliError("the payment URI has no amount: use 'wallet send' for open amounts")
    symbol, asset_id, decimals = resolve_asset(rpc_client(ctx), spec, req.asset)
    try:
        units = parse_amount(req.amount, decimals)
    except ValueError as exc:
        raise CliError(f"malformed amount in the payment URI: {exc}") from None
    return req, symbol, asset_id, units


@click.command("pay")
@click.argument("uri")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@fee_options
@passphrase_file_option
def pay_cmd(uri: str, yes: bool, allow_high_fee: bool, fee_rate: str | None,
            priority: str | None, passphrase_file: Path | None) -> None:
    """Pay a payment request (an o2o: URI) exactly, in one transaction.

    \b
    Example:
        o2ocli -w alice wallet pay 'o2o:dAbc…?amount=12.5&invoice=…&chain=o2o-devnet'
    """
    from o2ocli.amounts import format_amount
    from o2ocli.core.locks import PayToAddress
    from o2ocli.core.tx import TxOut
    from o2ocli.wallet.fees import approve
    from o2ocli.wallet.service import broadcast, prepare_payment, record_change

    from .confirm import guard, stdin_is_terminal

    ctx = get_context()
    with open_wallet(ctx) as w:
        req, symbol, asset_id, units = _pay_request(ctx, w, uri)
        spec = w.spec
        out = TxOut(bytes.fromhex(asset_id), units, PayToAddress(spec.decode_address(req.address)))
        passphrase = unlock_passphrase(w, passphrase_file)
        with node_errors():
            unlocked = w.unlock(passphrase)
            client = rpc_client(ctx)
            # The fee choice and the fee cap; the summary below is this command's own.
            guard(ctx, w, client, yes=True, allow_high_fee=allow_high_fee, fee_rate=fee_rate,
                  priority=priority)
            tx, plan = prepare_payment(w, client, [out], unlocked)
        fee = spec.format(plan.fee)
        decimals = spec.native_decimals if asset_id == bytes(32).hex() else None
        amount = req.amount if decimals is None else format_amount(units, decimals)
        summary = (f"pay      {amount} {symbol}\nto       {req.address}\nfee      {fee} "
                   f"{spec.native_symbol}" + (f"\nlabel    {req.label}" if req.label else "")
                   + (f"\nmessage  {req.message}" if req.message else "")
                   + (f"\ninvoice  {req.invoice}" if req.invoice else ""))
        if not yes:
            if not stdin_is_terminal():
                raise CliError("not paying without confirmation: add --yes (scripts) or run "
                               "on a terminal")
            click.echo(summary, err=True)
            if not click.confirm("Send?", default=False, err=True):
                raise CliError("not sent")
        with node_errors():
            approve(w, tx, plan)
            txid = broadcast(client, tx)
            record_change(w, plan)
    emit(ctx, {"txid": txid, "fee": fee, "to": req.address, "amount": amount, "asset": symbol,
               "invoice": req.invoice},
         f"{summary}\nsent     {txid}")


@click.command("export-xpub")
def export_xpub_cmd() -> None:
    """Print the account xpub, for a watch-only twin (a till that holds no keys).

    \b
    Example:
        o2ocli -w shop wallet export-xpub
        o2ocli -w till wallet create till --watch-only --xpub xpub6…
    """
    ctx = get_context()
    with open_wallet(ctx) as w, node_errors():
        xpub = w.export_xpub()
    emit(ctx, {"xpub": xpub}, xpub)

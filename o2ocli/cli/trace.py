"""``o2ocli trace …``: product traceability, from farm to table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .common import (
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
from .confirm import guard, spend_options

__all__ = ["trace"]

EVENTS = ("produced", "processed", "shipped", "received", "inspected", "sold", "note")


@click.group()
def trace() -> None:
    """Traceability: an item or batch is a one-of-a-kind asset held by its custodian.

    A merchant registers an item id in the namespace of its wallet's primary
    address; every step (processing, shipping, inspection, sale) is a tx that
    moves the item with what happened and where, signed by its custodian.

    \b
    Example:
        o2ocli -w farm trace register TEA-2026-001 --product "Pu'er, 20 kg" \\
            --data origin=yunnan --data harvest=2026-04
        o2ocli -w farm trace event TEA-2026-001 --event shipped --to dShop… --location Kunming
        o2ocli trace show TEA-2026-001 --merchant dFarm… --qr
    """


def _data_pairs(items: tuple[str, ...]) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.UsageError(f"--data expects KEY=VALUE, got {item!r}")
        pairs.append((key, value))
    return pairs


def _item_asset(ctx: Any, spec: Any, item: str, merchant: str | None) -> bytes:
    """The asset id of ``item``: a 64-hex asset id, an ``o2o:item:`` URI, an
    item page URL, or an item id in the namespace of ``merchant`` (default:
    the -w wallet's primary address)."""
    from o2ocli.core.payloads import item_asset_id
    from o2ocli.wallet.records import check_item_id
    from o2ocli.web.links import LinkError, parse_item_ref

    try:
        ref = parse_item_ref(item, merchant)
    except LinkError as exc:
        raise CliError(str(exc)) from None
    if ref.asset is not None:
        return bytes.fromhex(ref.asset)
    raw = check_item_id(ref.item or "")
    if ref.merchant is not None:
        return item_asset_id(parse_address(spec, ref.merchant), raw)
    try:
        with open_wallet(ctx) as w:
            return item_asset_id(w.primary_pkh(), raw)
    except CliError as exc:
        raise CliError(
            f"{exc.message}; item id {item!r} is looked up in the namespace of a merchant: "
            "give --merchant ADDRESS (or the item's 64-hex asset id, o2o:item: URI or page URL)"
        ) from None


PUBLIC_URL_ENV = "O2OCLI_PUBLIC_URL"


def _public_url(ctx: Any, option: str | None) -> str | None:
    """Base URL of the public pages for labels: ``--public-url``, else
    ``$O2OCLI_PUBLIC_URL``, else the one the node running on this datadir
    serves (``node start --http-listen``/``--public-url``), else none."""
    import os

    from o2ocli.web.links import LinkError, normalize_public_url

    value = option or os.environ.get(PUBLIC_URL_ENV) or None
    if value is None:
        from o2ocli.node.datadir import read_node_info

        from .common import resolve_datadir

        try:
            value = (read_node_info(resolve_datadir(ctx)) or {}).get("public_url")
        except Exception:  # noqa: BLE001 - no datadir, no node: no URL
            value = None
        if not isinstance(value, str) or not value:
            return None
    try:
        return normalize_public_url(value)
    except LinkError as exc:
        raise CliError(str(exc)) from None


def _label_text(ctx: Any, public_url: str | None, merchant: str, item: str, asset: str) -> str:
    """What a label encodes: the item's page URL when a public URL is known,
    else its ``o2o:item:`` URI."""
    from o2ocli.web.links import item_uri, item_url

    base = _public_url(ctx, public_url)
    return item_url(base, merchant, item) if base else item_uri(asset)


def _write_labels(text: str, caption: str, png: Path | None, svg: Path | None) -> list[str]:
    from o2ocli.web.label import write_label

    written = []
    for path, kind in ((png, "png"), (svg, "svg")):
        if path is not None:
            try:
                write_label(text, caption, path, kind)
            except OSError as exc:
                raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None
            written.append(str(path))
    return written


def label_options(func: Any) -> Any:
    """--qr, --png, --svg and --public-url (trace show and register)."""
    for option in reversed((
        click.option("--qr", is_flag=True,
                     help="Print the item's QR code (its page URL when a public URL is "
                          "known, else its o2o:item: URI)."),
        click.option("--png", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="Write a printable PNG label: the QR code and the product name."),
        click.option("--svg", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="Write a printable SVG label: the QR code and the product name."),
        click.option("--public-url", metavar="URL", default=None,
                     help=f"Base URL of the public pages for the code (default: "
                          f"${PUBLIC_URL_ENV}, else the running node's --public-url)."),
    )):
        func = option(func)
    return func


@trace.command("register")
@click.argument("item_id")
@click.option("--product", required=True, help="What the item or batch is.")
@click.option("--data", "data", multiple=True, metavar="KEY=VALUE",
              help="A fact about the item (repeatable), e.g. origin=yunnan.")
@click.option("--custodian", default=None, metavar="ADDRESS",
              help="Who holds it first (default: this wallet).")
@label_options
@passphrase_file_option
def register_cmd(item_id: str, product: str, data: tuple[str, ...], custodian: str | None,
                 qr: bool, png: Path | None, svg: Path | None, public_url: str | None,
                 passphrase_file: Path | None) -> None:
    """Register an item or batch in this wallet's namespace.

    \b
    Example:
        o2ocli -w farm trace register TEA-2026-001 --product "Pu'er tea, 20 kg" \\
            --data origin=yunnan --data grade=a --svg label.svg
    """
    from o2ocli.wallet import records
    from o2ocli.wallet.o2o import send

    ctx = get_context()
    with open_wallet(ctx) as w, node_errors():
        client = rpc_client(ctx)
        holder = parse_address(w.spec, custodian) if custodian else None
        unlocked = w.unlock(unlock_passphrase(w, passphrase_file))
        tx, plan, asset = records.register_item(w, client, unlocked, item_id, product,
                                                _data_pairs(data), holder)
        txid = send(w, client, tx, plan)
        merchant = w.spec.address(w.primary_pkh())
    result: dict[str, Any] = {"txid": txid, "item": item_id, "asset": asset.hex(),
                              "merchant": merchant}
    text = f"registered {item_id} ({asset.hex()}) in {txid}\nmerchant {merchant}"
    if qr or png or svg:
        label = _label_text(ctx, public_url, merchant, item_id, asset.hex())
        result["qr"] = label
        result["labels"] = _write_labels(label, product, png, svg)
        text += "".join(f"\nlabel written to {p}" for p in result["labels"])
        if qr:
            text += "\n" + _qr(label) + label
    emit(ctx, result, text)


@trace.command("event")
@click.argument("item")
@click.option("--event", "event", type=click.Choice(EVENTS), required=True,
              help="What happened.")
@click.option("--to", "to", default=None, metavar="ADDRESS",
              help="The next custodian (default: stays with the current one).")
@click.option("--location", default="", help="Where it happened.")
@click.option("--note", default="", help="Free text.")
@click.option("--doc", "doc", default=None, type=click.Path(exists=True, dir_okay=False,
              path_type=Path), help="A document whose SHA-256 is recorded.")
@click.option("--merchant", default=None, metavar="ADDRESS",
              help="The item's namespace (default: this wallet's primary address).")
@spend_options
@passphrase_file_option
def event_cmd(item: str, event: str, to: str | None, location: str, note: str,
              doc: Path | None, merchant: str | None, passphrase_file: Path | None,
              **spend: Any) -> None:
    """Record a step: the custodian moves the item with what, where, and a note.

    \b
    Example:
        o2ocli -w farm trace event TEA-2026-001 --event shipped --to dShop… \\
            --location "Kunming depot" --doc bill-of-lading.pdf
        o2ocli -w shop trace event TEA-2026-001 --merchant dFarm… --event received
    """
    from o2ocli.wallet import records
    from o2ocli.wallet.o2o import send

    ctx = get_context()
    with node_errors():
        spec_ctx = None
        with open_wallet(ctx) as w:
            spec_ctx = w.spec
        asset = _item_asset(ctx, spec_ctx, item, merchant)
        document = records.document_hash(doc) if doc else None
        with open_wallet(ctx) as w:
            client = rpc_client(ctx)
            to_pkh = parse_address(w.spec, to) if to else None
            guard(ctx, w, client, **spend)
            unlocked = w.unlock(unlock_passphrase(w, passphrase_file))
            tx, plan = records.trace_event(w, client, unlocked, asset, event, to_pkh, location,
                                           note, document)
            txid = send(w, client, tx, plan)
    emit(ctx, {"txid": txid, "asset": asset.hex(), "event": event,
               "document": document.hex() if document else None},
         f"{event}: recorded in {txid}")


def _qr(text: str) -> str:
    """The code for a terminal: black on white when stdout is one."""
    import sys

    from o2ocli.web.label import terminal_text

    return terminal_text(text, ansi=sys.stdout.isatty())


@trace.command("show")
@click.argument("item")
@click.option("--merchant", default=None, metavar="ADDRESS",
              help="The item's namespace (default: this wallet's primary address).")
@label_options
def show_cmd(item: str, merchant: str | None, qr: bool, png: Path | None, svg: Path | None,
             public_url: str | None) -> None:
    """The verified timeline: who, what, where, when, final or not.

    ITEM is an item id (with --merchant), a 64-hex asset id, an o2o:item: URI
    or the item's page URL (what its QR label encodes).

    \b
    Example:
        o2ocli trace show TEA-2026-001 --merchant dFarm… --qr
        o2ocli trace show TEA-2026-001 --merchant dFarm… --png label.png --svg label.svg
        o2ocli trace show 7f3a…(64-hex asset id)
        o2ocli trace show https://shop.example/item/dFarm…/TEA-2026-001
    """
    from o2ocli.wallet import records

    ctx = get_context()
    with node_errors():
        spec = _spec(ctx)
        asset = _item_asset(ctx, spec, item, merchant)
        info = records.get_trace(rpc_client(ctx), asset)
    label = None
    if qr or png or svg:
        label = _label_text(ctx, public_url, info["merchant"], info["item"], info["asset"])
        written = _write_labels(label, info["product"], png, svg)

    def human() -> str:
        head = [f"{info['item']}: {info['product']}",
                f"merchant {info['merchant']}, custodian {info['custodian']}"]
        head += [f"  {d['key']} = {d['value']}" for d in info["data"]]
        rows = [[s["height"], _when(s["time"]), s["event"], s["custodian"], s["location"],
                 s["note"][:30], "final" if s["final"] else "not final"]
                for s in info["timeline"]]
        text = "\n".join(head) + "\n" + table(
            rows, ["height", "time (UTC)", "event", "custodian", "location", "note", "status"])
        text += "\nchain of custody verified" if info["verified"] else \
            f"\nCHAIN OF CUSTODY BROKEN: {info['break']}"
        text += "".join(f"\nlabel written to {p}" for p in written) if label else ""
        if qr and label:
            text += "\n" + _qr(label) + label
        return text

    if label is not None and ctx.json:
        info = dict(info, qr=label)
        if png or svg:
            info["labels"] = written
    emit(ctx, info, human)


def _when(timestamp: int | None) -> str:
    import datetime

    if timestamp is None:
        return ""
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d %H:%M")


def _spec(ctx: Any) -> Any:
    from .common import resolve_spec

    return resolve_spec(ctx)


@trace.command("verify")
@click.argument("item")
@click.option("--merchant", default=None, metavar="ADDRESS",
              help="The item's namespace (default: this wallet's primary address).")
def verify_cmd(item: str, merchant: str | None) -> None:
    """Check the whole chain of custody; exit 1 and say where it breaks if it does.

    \b
    Example:
        o2ocli trace verify TEA-2026-001 --merchant dFarm…
    """
    from o2ocli.wallet import records

    ctx = get_context()
    with node_errors():
        asset = _item_asset(ctx, _spec(ctx), item, merchant)
        info = records.get_trace(rpc_client(ctx), asset)
    result = {"item": info["item"], "asset": info["asset"], "verified": info["verified"],
              "break": info["break"], "steps": len(info["timeline"]),
              "custodian": info["custodian"]}
    if not info["verified"]:
        raise CliError(f"chain of custody of {info['item']} breaks: {info['break']}",
                       data=result)
    emit(ctx, result, f"{info['item']}: chain of custody verified over "
                      f"{len(info['timeline'])} steps; custodian {info['custodian']}")

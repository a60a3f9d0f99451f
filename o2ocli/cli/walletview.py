"""``o2ocli wallet history`` and the wallet's address labels (``wallet label``,
``wallet labels``): commands of the ``wallet`` group kept here so that
:mod:`.wallet` stays small (registered by :mod:`.main`)."""

from __future__ import annotations

from typing import Any

import click

from .common import CliError, emit, get_context, node_errors, open_wallet, parse_address, table
from .common import rpc_client as _rpc_client
from .display import asset_labels

__all__ = ["history_cmd", "label_cmd", "labels_cmd"]


def _who(text: str, known: dict[str, str]) -> str:
    from o2ocli.wallet.labels import describe

    return describe(text, known)


@click.command("history")
def history_cmd() -> None:
    """The wallet's transactions with direction, counterparties, fee and status.

    Counterparties show with their labels (see: wallet label); an escrow payment
    (paid into or settled from an escrow) shows as such, with its TXID:INDEX;
    traced items show as item:ID.  The txid is printed whole.

    \b
    Example:
        o2ocli -w alice wallet history
    """
    from o2ocli.amounts import format_amount
    from o2ocli.wallet.labels import labels
    from o2ocli.wallet.service import history

    ctx = get_context()
    with open_wallet(ctx) as w, node_errors():
        client = _rpc_client(ctx)
        entries = history(w, client)
        spec = w.spec
        known = labels(w)
        names = asset_labels(client, spec, [e.asset for e in entries])
        data = []
        for e in entries:
            name, decimals = names.get(e.asset, (e.asset.hex(), 0))
            item: dict[str, Any] = {
                "txid": e.txid,
                "height": e.height,
                "asset": name,
                "delta": format_amount(e.delta, decimals),
                "kind": e.kind,
                "fee": None if e.fee is None else spec.format(e.fee),
                "counterparties": e.counterparties,
                "payload": e.payload,
                "confirmations": e.confirmations,
                "final": e.final,
                "asset_id": e.asset.hex(),
                "escrow": e.escrows,
                "labels": {a: known[a] for a in e.counterparties if a in known},
            }
            data.append(item)

    def human() -> str:
        rows = []
        for d in data:
            kind = d["kind"]
            if d["payload"] not in ("none", "coinbase"):
                kind = f"{kind} ({d['payload']})"
            if d["escrow"]:
                kind = f"{kind} (escrow)"
            rows.append([
                d["height"] if d["height"] is not None else "mempool", kind, d["delta"],
                d["asset"], d["fee"] or "",
                ", ".join(_who(c, known) for c in d["counterparties"]),
                "final" if d["final"] else f"{d['confirmations']} conf", d["txid"],
            ])
        return table(rows, ["height", "kind", "amount", "asset", "fee", "counterparty",
                            "status", "txid"]) if rows else "no transactions yet"

    emit(ctx, {"txs": data}, human)


@click.command("label")
@click.argument("address")
@click.argument("text", required=False)
@click.option("--remove", is_flag=True, help="Forget the label of ADDRESS.")
def label_cmd(address: str, text: str | None, remove: bool) -> None:
    """Name ADDRESS in this wallet (yours or anyone's); shown in history, the
    confirmation summary and 'wallet labels'.  Without TEXT, print the label.

    Labels stay in the wallet: they are never sent to the node or the chain.

    \b
    Example:
        o2ocli -w alice wallet label dShop… "Corner coffee shop"
        o2ocli -w alice wallet label dShop…
        o2ocli -w alice wallet label dShop… --remove
    """
    from o2ocli.wallet.labels import labels, set_label

    ctx = get_context()
    if remove and text is not None:
        raise click.UsageError("give TEXT or --remove, not both")
    with open_wallet(ctx) as w:
        parse_address(w.spec, address)
        if text is None and not remove:
            current = labels(w).get(address)
            if current is None:
                raise CliError(f"address {address} has no label in wallet {w.name!r}")
            emit(ctx, {"address": address, "label": current}, current)
            return
        try:
            set_label(w, address, "" if remove else text or "")
        except ValueError as exc:
            raise CliError(str(exc)) from None
        current = labels(w).get(address)
    emit(ctx, {"address": address, "label": current},
         f"{address}: {current}" if current else f"{address}: label removed")


@click.command("labels")
def labels_cmd() -> None:
    """Every address label of this wallet.

    \b
    Example:
        o2ocli -w alice wallet labels
    """
    from o2ocli.wallet.labels import labels

    ctx = get_context()
    with open_wallet(ctx) as w:
        known = labels(w)
        mine = {a for a in known if w.owns(w.spec.decode_address(a))}
    rows = [{"address": a, "label": t, "mine": a in mine} for a, t in sorted(known.items())]
    emit(ctx, {"labels": rows}, lambda: table(
        [[r["address"], r["label"], "yes" if r["mine"] else ""] for r in rows],
        ["address", "label", "mine"]) if rows else "no labels (add one: wallet label ADDR TEXT)")

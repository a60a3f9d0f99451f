"""Invoices (payment requests): a fresh address per invoice (on the wallet's
invoice chain, ``m/44'/7171'/0'/2/i``, so never one that ``wallet address``
hands out), stored in the wallet database, and their state derived from what the
node sees.  The owner of a till's keys finds the payments by scanning that chain
with a gap limit of 100.

Stored under ``i<id>`` in the wallet's LevelDB (JSON): ``id``, ``address``,
``asset`` (symbol), ``asset_id`` (hex), ``decimals``, ``units`` (amount due in
base units), ``label``, ``memo``, ``created``, ``expires`` (unix time or null),
and the last computed ``state`` / ``paid`` / ``txids`` / ``height``.

States (see :func:`invoice_state`)::

    new → seen (paying tx in the mempool) → confirmed (in a block)
        → final (at or below the finalized height)
    new → expired (nothing paid by the expiry)
    underpaid (something paid, less than due); overpaid is a flag on the others

The state is recomputed from the node each time (never trusted from the
database), so a payment reorganised away before finality takes the invoice
back to ``new`` or ``seen`` by itself.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from o2ocli.amounts import format_amount

from .hd import INVOICE
from .uri import PaymentRequest, format_uri
from .wallet import Wallet

__all__ = [
    "STATES",
    "Payment",
    "invoice_state",
    "create_invoice",
    "get_invoice",
    "iter_invoices",
    "invoice_uri",
    "fetch_payments",
    "apply_payments",
    "refresh",
    "invoice_json",
]

STATES = ("new", "seen", "confirmed", "final", "expired", "underpaid")
PREFIX = b"i"


@dataclass(frozen=True)
class Payment:
    """One output paying an invoice's address in the invoice's asset."""

    txid: str
    index: int
    units: int
    height: int | None
    final: bool


def invoice_state(due: int, expires: int | None, payments: list[Payment],
                  now: int) -> tuple[str, int, str | None]:
    """(state, paid units, flag) of an invoice of ``due`` units.

    ``flag`` is ``"underpaid"`` / ``"overpaid"`` / None.  The amount counts
    toward ``confirmed`` only once in blocks, toward ``final`` only once final.
    """
    paid = sum(p.units for p in payments)
    if paid == 0:
        return ("expired" if expires is not None and now >= expires else "new"), 0, None
    if paid < due:
        return "underpaid", paid, "underpaid"
    flag = "overpaid" if paid > due else None
    if sum(p.units for p in payments if p.final) >= due:
        return "final", paid, flag
    if sum(p.units for p in payments if p.height is not None) >= due:
        return "confirmed", paid, flag
    return "seen", paid, flag


def new_invoice_id() -> str:
    """An unguessable invoice id (128 bits, hex)."""
    return secrets.token_hex(16)


def create_invoice(wallet: Wallet, *, units: int, asset: str, asset_id: str, decimals: int,
                   label: str | None, memo: str | None, expires: int | None,
                   now: int) -> dict[str, Any]:
    """Issue a fresh address of the invoice chain (``m/44'/7171'/0'/2/i``) and
    store an invoice for it."""
    address = wallet.spec.address(wallet.issue(INVOICE))
    inv = {
        "id": new_invoice_id(), "address": address, "asset": asset, "asset_id": asset_id,
        "decimals": decimals, "units": units, "label": label, "memo": memo,
        "created": now, "expires": expires, "state": "new", "paid": 0, "flag": None,
        "txids": [], "height": None,
    }
    save_invoice(wallet, inv)
    return inv


def save_invoice(wallet: Wallet, inv: dict[str, Any]) -> None:
    """Write ``inv`` (synced)."""
    wallet.db.put(PREFIX + inv["id"].encode(), json.dumps(inv).encode(), sync=True)


def get_invoice(wallet: Wallet, invoice_id: str) -> dict[str, Any] | None:
    """The stored invoice ``invoice_id``, or None."""
    if not invoice_id or len(invoice_id) > 64 or not invoice_id.isalnum():
        return None
    raw = wallet.db.get(PREFIX + invoice_id.encode())
    return None if raw is None else json.loads(raw)


def iter_invoices(wallet: Wallet) -> Iterator[dict[str, Any]]:
    """Every stored invoice (in id order)."""
    for _, value in wallet.db.iterator(prefix=PREFIX):
        yield json.loads(value)


def invoice_uri(wallet: Wallet, inv: dict[str, Any]) -> str:
    """The payment URI of ``inv``."""
    return format_uri(PaymentRequest(
        address=inv["address"],
        amount=format_amount(inv["units"], inv["decimals"]),
        asset=inv["asset"],
        label=inv.get("label"),
        message=inv.get("memo"),
        invoice=inv["id"],
        exp=inv.get("expires"),
        chain=wallet.spec.chain_id,
    ))


def fetch_payments(client: Any, invoices: list[dict[str, Any]]) -> dict[str, list[Payment]]:
    """Address → payments in its invoice's asset, from the node (one history call
    and one batch of ``gettx``)."""
    by_address = {inv["address"]: inv for inv in invoices}
    result: dict[str, list[Payment]] = {a: [] for a in by_address}
    if not by_address:
        return result
    entries = client.call("getaddresseshistory", list(by_address))
    txids = list(dict.fromkeys(e["txid"] for e in entries))
    txs: list[Any] = []
    for start in range(0, len(txids), 1000):
        txs += client.batch([("gettx", [t]) for t in txids[start:start + 1000]])
    for tx in txs:
        if isinstance(tx, Exception):
            continue  # gone between the two calls (reorganised away): not a payment
        for index, out in enumerate(tx["outputs"]):
            inv = by_address.get(out.get("address"))
            if inv is None or out["asset_id"] != inv["asset_id"]:
                continue
            result[inv["address"]].append(
                Payment(tx["txid"], index, out["units"], tx["height"], bool(tx["final"])))
    return result


def apply_payments(
    wallet: Wallet, invoices: list[dict[str, Any]], payments: dict[str, list[Payment]], now: int
) -> list[tuple[dict[str, Any], str]]:
    """Recompute ``invoices`` from ``payments`` (see :func:`fetch_payments`); store
    the ones whose state, paid amount, txids or height changed and return them
    with their previous state."""
    changed = []
    for inv in invoices:
        pays = payments[inv["address"]]
        state, paid, flag = invoice_state(inv["units"], inv.get("expires"), pays, now)
        if inv.get("state") == "expired" and paid == 0:
            state = "expired"  # expiry stays for an unpaid invoice
        heights = [p.height for p in pays if p.height is not None]
        height = max(heights) if heights and len(heights) == len(pays) else None
        update = {"state": state, "paid": paid, "flag": flag,
                  "txids": sorted({p.txid for p in pays}), "height": height}
        if any(inv.get(k) != v for k, v in update.items()):
            old = inv.get("state", "new")
            inv.update(update)
            save_invoice(wallet, inv)
            changed.append((inv, old))
    return changed


def refresh(wallet: Wallet, client: Any, invoices: list[dict[str, Any]],
            now: int) -> list[tuple[dict[str, Any], str]]:
    """Recompute the state of ``invoices`` from the node (see :func:`apply_payments`)."""
    return apply_payments(wallet, invoices, fetch_payments(client, invoices), now)


def invoice_json(wallet: Wallet, inv: dict[str, Any]) -> dict[str, Any]:
    """The public view of ``inv`` (``invoice create --json`` keys and more)."""
    dec = inv["decimals"]
    return {
        "id": inv["id"],
        "address": inv["address"],
        "uri": invoice_uri(wallet, inv),
        "state": inv["state"],
        "expires": inv.get("expires"),
        "amount": format_amount(inv["units"], dec),
        "asset": inv["asset"],
        "paid": format_amount(inv.get("paid", 0), dec),
        "flag": inv.get("flag"),
        "label": inv.get("label"),
        "memo": inv.get("memo"),
        "created": inv["created"],
        "txids": inv.get("txids", []),
        "height": inv.get("height"),
    }

"""``o2ocli review …``: verified-purchase reviews and merchant replies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .common import (
    TXID,
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

__all__ = ["review"]


@click.group()
def review() -> None:
    """Reviews that can't be faked: each is backed by a real purchase.

    Only the customer who paid for a purchase can review it, once, within the
    chain's review window; the merchant can reply once per review.

    \b
    Example:
        o2ocli -w alice review write --purchase 3f2a… --rating 5 --text "Great coffee"
        o2ocli review list --merchant dShop…
    """


def _stars(rating: int) -> str:
    return "★" * rating + "☆" * (5 - rating)


def _short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@review.command("write")
@click.option("--purchase", required=True, type=TXID, metavar="TXID",
              help="Txid of your payment (or its o2o:tx: URI or /tx/ page URL).")
@click.option("--rating", required=True, type=int, metavar="1..5", help="Stars, 1 to 5.")
@click.option("--text", default="", help="Review text (UTF-8, at most 1000 bytes, one line).")
@click.option("--merchant", default=None, metavar="ADDRESS",
              help="Which payee to review when the purchase paid several (default: the largest).")
@click.option("--dry-run", is_flag=True, help="Print the signed raw tx; do not broadcast.")
@passphrase_file_option
def write_cmd(purchase: str, rating: int, text: str, merchant: str | None, dry_run: bool,
              passphrase_file: Path | None) -> None:
    """Review a merchant you paid (signed by your key that owned the money;
    for an escrow you opened, your payer key).

    \b
    Example:
        o2ocli -w alice review write --purchase 3f2a… --rating 4 --text "Quick repair"
    """
    from o2ocli.wallet import payloadtx, reviews

    if not 1 <= rating <= 5:
        raise CliError(f"rating must be 1..5, got {rating}")
    ctx = get_context()
    with open_wallet(ctx) as w, node_errors():
        client = rpc_client(ctx)
        unlocked = w.unlock(unlock_passphrase(w, passphrase_file))
        tx, plan, merchant_address = reviews.write_review(
            w, client, unlocked, purchase.lower(), rating, text, merchant
        )
        if dry_run:
            raw = tx.to_bytes().hex()
            emit(ctx, {"txid": tx.txid.hex(), "merchant": merchant_address, "raw": raw},
                 f"{raw}\n(not broadcast; txid {tx.txid.hex()})")
            return
        txid = payloadtx.send(w, client, tx, plan)
    emit(ctx, {"txid": txid, "merchant": merchant_address},
         f"review {txid} of {merchant_address} sent")


@review.command("reply")
@click.argument("review_txid", metavar="REVIEW_TXID", type=TXID)
@click.option("--text", required=True, help="Reply text (UTF-8, at most 1000 bytes).")
@click.option("--dry-run", is_flag=True, help="Print the signed raw tx; do not broadcast.")
@passphrase_file_option
def reply_cmd(review_txid: str, text: str, dry_run: bool, passphrase_file: Path | None) -> None:
    """Answer a review of one of this wallet's addresses (once per review).

    \b
    Example:
        o2ocli -w shop review reply 9c1d… --text "Thanks, see you soon!"
    """
    from o2ocli.wallet import payloadtx, reviews

    ctx = get_context()
    with open_wallet(ctx) as w, node_errors():
        client = rpc_client(ctx)
        unlocked = w.unlock(unlock_passphrase(w, passphrase_file))
        tx, plan = reviews.reply(w, client, unlocked, review_txid.lower(), text)
        if dry_run:
            raw = tx.to_bytes().hex()
            emit(ctx, {"txid": tx.txid.hex(), "raw": raw},
                 f"{raw}\n(not broadcast; txid {tx.txid.hex()})")
            return
        txid = payloadtx.send(w, client, tx, plan)
    emit(ctx, {"txid": txid}, f"reply {txid} sent")


def _table(reviews: list[dict[str, Any]]) -> str:
    if not reviews:
        return "no reviews"
    rows = [
        [_stars(r["rating"]), _short(r["text"]), r["reviewer"], r["height"],
         _short(r["reply"]["text"], 30) if r["reply"] else "", r["txid"]]
        for r in reviews
    ]
    # The whole txid: 'review reply' and 'review show' take it (or a unique prefix).
    return table(rows, ["rating", "text", "reviewer", "height", "reply", "txid"])


@review.command("list")
@click.option("--merchant", default=None, metavar="ADDRESS", help="Reviews of this merchant.")
@click.option("--reviewer", default=None, metavar="ADDRESS", help="Reviews by this customer.")
@click.option("--purchase", default=None, type=TXID, metavar="TXID",
              help="The review of this purchase.")
def list_cmd(merchant: str | None, reviewer: str | None, purchase: str | None) -> None:
    """List reviews by merchant, by reviewer or by purchase (oldest first).

    \b
    Example:
        o2ocli review list --merchant dShop…
    """
    given = [(k, v) for k, v in (("merchant", merchant), ("reviewer", reviewer),
                                 ("purchase", purchase)) if v]
    if len(given) != 1:
        raise CliError("give exactly one of --merchant, --reviewer or --purchase")
    ctx = get_context()
    with node_errors():
        reviews = rpc_client(ctx).call("listreviews", given[0][0], given[0][1])
    emit(ctx, {"reviews": reviews}, lambda: _table(reviews))


@review.command("show")
@click.argument("txid", type=TXID)
def show_cmd(txid: str) -> None:
    """One review with its reply.

    \b
    Example:
        o2ocli review show 9c1d…
    """
    ctx = get_context()
    with node_errors():
        r = rpc_client(ctx).call("getreview", txid.lower())

    def human() -> str:
        lines = [
            f"{_stars(r['rating'])}  {r['text']}",
            f"by {r['reviewer']} for {r['merchant']}",
            f"purchase {r['purchase']} ({r['purchase_value']} paid)",
            f"height {r['height']}{' (final)' if r['final'] else ''}",
        ]
        if r["reply"]:
            lines.append(f"reply: {r['reply']['text']}")
        return "\n".join(lines)

    emit(ctx, r, human)


@review.command("stats")
@click.option("--merchant", required=True, metavar="ADDRESS")
def stats_cmd(merchant: str) -> None:
    """Count, average, 1-5 histogram and verified purchase value of a merchant.

    \b
    Example:
        o2ocli review stats --merchant dShop…
    """
    ctx = get_context()
    with node_errors():
        s = rpc_client(ctx).call("getreviewstats", merchant)

    def human() -> str:
        if not s["count"]:
            return f"{s['merchant']}: no reviews yet"
        width = 30
        top = max(s["distribution"].values()) or 1
        lines = [
            f"{s['merchant']}: {s['count']} reviews, average {s['average']:.2f} "
            f"from {s['reviewers']} reviewer keys",
            f"verified purchases behind them: {s['verified_value']}",
        ]
        for stars in ("5", "4", "3", "2", "1"):
            n = s["distribution"][stars]
            lines.append(f"{stars}★ {'█' * round(width * n / top):<{width}} {n}")
        return "\n".join(lines)

    emit(ctx, s, human)

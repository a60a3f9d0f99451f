"""``o2ocli gov …``: customers and merchants put proposals to a vote, and vote."""

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
    parse_address,
    passphrase_file_option,
    rpc_client,
    table,
    unlock_passphrase,
)
from .confirm import guard, spend_options

__all__ = ["gov"]


@click.group()
def gov() -> None:
    """Governance: proposals and votes, counted by consensus.

    A proposal offers 2-16 options and is open for --voting-blocks blocks
    after the block it is mined in (its snapshot).  Votes are weighted by the
    tokens held at the snapshot (one vote per base unit) or by customers (one
    vote per buyer key with a purchase from the merchant).  A voter may change
    the vote until the end height; the last vote counts.  Results are for
    people and validators to carry out: nothing changes automatically.

    \b
    Example:
        o2ocli -w shop gov propose --title "Open on Sundays?" --option yes --option no \\
            --voting-blocks 1000
        o2ocli -w alice gov vote 4b2e… --option 1
        o2ocli gov show 4b2e…
    """


@gov.command("propose")
@click.option("--title", required=True, help="Title (1-120 bytes).")
@click.option("--text", default=None, help="Text of the proposal (at most 4000 bytes).")
@click.option("--text-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Read the text from a file instead.")
@click.option("--option", "options", multiple=True, required=True, metavar="TEXT",
              help="A choice (repeat: 2-16); numbered from 1 in the order given.")
@click.option("--token", default="O2O", show_default=True, metavar="SYM|O2O",
              help="The asset whose holders vote (tokens weight).")
@click.option("--weight", type=click.Choice(["tokens", "customers"]), default="tokens",
              show_default=True, help="One vote per base unit held, or one per customer.")
@click.option("--merchant", default=None, metavar="ADDR",
              help="The merchant whose customers vote (customers weight).")
@click.option("--voting-blocks", type=click.IntRange(1, 1_000_000), required=True, metavar="N",
              help="Votes are accepted in the N blocks after the proposal's block.")
@spend_options
@passphrase_file_option
def propose_cmd(title: str, text: str | None, text_file: Path | None, options: tuple[str, ...],
                token: str, weight: str, merchant: str | None, voting_blocks: int,
                yes: bool, allow_high_fee: bool, fee_rate: str | None, priority: str | None,
                passphrase_file: Path | None) -> None:
    """Put a proposal to a vote; burns the chain's proposal deposit.

    On a terminal the proposal's cost (fee and the burned deposit) is shown
    and needs a yes at 'Send? [y/N]' (--yes skips it).

    \b
    Example:
        o2ocli -w shop gov propose --title "New opening hours" --option 8-20 \\
            --option 10-22 --weight customers --merchant dShop… --voting-blocks 5000
    """
    from o2ocli.wallet import gov as wallet_gov
    from o2ocli.wallet.payloadtx import send

    if text is not None and text_file is not None:
        raise CliError("give --text or --text-file, not both")
    if text_file is not None:
        try:
            text = text_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read {text_file}: {exc}") from None
    ctx = get_context()
    with open_wallet(ctx) as w, node_errors():
        merchant_pkh = None if merchant is None else parse_address(w.spec, merchant)
        client = rpc_client(ctx)
        guard(ctx, w, client, yes=yes, allow_high_fee=allow_high_fee, fee_rate=fee_rate,
              priority=priority,
              note=f"proposing burns the deposit of {w.spec.format(w.spec.gov_deposit)} "
                   f"{w.spec.native_symbol}")
        unlocked = w.unlock(unlock_passphrase(w, passphrase_file))
        tx, plan = wallet_gov.propose(
            w, client, unlocked, title=title, text=text or "", options=options, weight=weight,
            token=token, merchant=merchant_pkh, voting_blocks=voting_blocks)
        txid = send(w, client, tx, plan)
        deposit = w.spec.format(w.spec.gov_deposit)
        symbol = w.spec.native_symbol
    emit(ctx, {"id": txid, "title": title, "options": list(options), "weight": weight,
               "voting_blocks": voting_blocks, "deposit": deposit},
         f"proposal {txid} (deposit {deposit} {symbol} burned); votes are accepted in the "
         f"{voting_blocks} blocks after the one that mines it")


@gov.command("vote")
@click.argument("proposal", metavar="PROPOSAL", type=TXID)
@click.option("--option", "option", type=int, required=True, metavar="K",
              help="The option, numbered from 1.")
@passphrase_file_option
def vote_cmd(proposal: str, option: int, passphrase_file: Path | None) -> None:
    """Vote on PROPOSAL with this wallet's coins at the snapshot (tokens
    weight) or its purchase from the merchant (customers weight).  Voting
    again replaces the earlier vote.

    \b
    Example:
        o2ocli -w alice gov vote 4b2e… --option 2
    """
    from o2ocli.wallet import gov as wallet_gov
    from o2ocli.wallet.payloadtx import send

    ctx = get_context()
    with open_wallet(ctx) as w, node_errors():
        client = rpc_client(ctx)
        unlocked = w.unlock(unlock_passphrase(w, passphrase_file))
        tx, plan, info = wallet_gov.vote(w, client, unlocked, proposal, option)
        txid = send(w, client, tx, plan)
    emit(ctx, {"txid": txid, "proposal": proposal, "option": option, **info},
         f"voted option {option} with weight {info['weight']} as {info['voter']} ({txid})")


def _show_text(p: dict[str, Any]) -> str:
    lines = [f"{p['title']}  [{p['state']}]", f"id {p['id']}"]
    if p["text"]:
        lines.append(p["text"])
    who = (f"{p['token']} holders at height {p['snapshot_height']}" if p["weight"] == "tokens"
           else f"customers of {p['merchant']} by height {p['snapshot_height']}")
    lines.append(f"voters: {who}; votes until height {p['end_height']}")
    rows = [[o["option"], o["text"], t["weight"], "*" if p["winner"] == o["option"] else ""]
            for o, t in zip(p["options"], p["tallies"], strict=True)]
    lines.append(table(rows, ["#", "option", "weight", "winner"]))
    turnout = p["turnout"]
    share = f" ({turnout['percent']}% of {turnout['eligible']})" if turnout["eligible"] else ""
    lines.append(f"turnout: {turnout['ballots']} ballots, weight {turnout['weight']}{share}")
    winner = p["winner"] if p["winner"] is not None else "none (no votes or a tie)"
    lines.append(f"winner: {winner}")
    return "\n".join(lines)


@gov.command("show")
@click.argument("proposal", metavar="PROPOSAL", type=TXID)
def show_cmd(proposal: str) -> None:
    """Options, tallies, turnout, state (open, closed, final) and winner of PROPOSAL.

    \b
    Example:
        o2ocli --json gov show 4b2e…
    """
    ctx = get_context()
    with node_errors():
        p = rpc_client(ctx).call("getproposal", proposal)
    emit(ctx, p, lambda: _show_text(p))


@gov.command("list")
@click.option("--state", type=click.Choice(["open", "closed", "final"]), default=None,
              help="Only proposals in this state.")
def list_cmd(state: str | None) -> None:
    """Every proposal, newest first.

    \b
    Example:
        o2ocli gov list --state open
    """
    ctx = get_context()
    with node_errors():
        items = rpc_client(ctx).call("listproposals", state)
    emit(ctx, {"proposals": items}, lambda: table(
        [[p["id"], p["title"], p["weight"], p["end_height"], p["state"]]
         for p in items], ["proposal", "title", "weight", "ends", "state"],
    ) if items else "no proposals")

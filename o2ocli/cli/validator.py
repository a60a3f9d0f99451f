"""``o2ocli validator``: the validator set and this validator's votes."""

from __future__ import annotations

import click

from .common import emit, get_context, rpc_call, table


@click.group()
def validator() -> None:
    """Inspect the validator set and vote on changes (Clique-style).

    \b
    Example:
        o2ocli validator list
        o2ocli validator propose tK3… --add
    """


@validator.command("list")
def list_cmd() -> None:
    """Current validators, the in-turn validator and pending votes.

    \b
    Example:
        o2ocli validator list
    """
    ctx = get_context()
    data = rpc_call(ctx, "getvalidators")

    def human() -> str:
        rows = [[v, "in turn" if v == data["in_turn"] else ""] for v in data["validators"]]
        text = table(rows, ["validator", "next block"])
        if data["pending_votes"]:
            votes = [[v["signer"], v["action"], v["address"], v["height"]]
                     for v in data["pending_votes"]]
            text += "\n\npending votes\n" + table(votes, ["by", "action", "address", "height"])
        if data["proposals"]:
            mine = [[p["action"], p["address"]] for p in data["proposals"]]
            text += "\n\nthis node proposes\n" + table(mine, ["action", "address"])
        return text

    emit(ctx, data, human)


@validator.command("propose")
@click.argument("address")
@click.option("--add", "action", flag_value="add", help="Vote to add ADDRESS.")
@click.option("--remove", "action", flag_value="remove", help="Vote to remove ADDRESS.")
def propose_cmd(address: str, action: str | None) -> None:
    """Vote, in every block this validator seals, to add or remove ADDRESS.

    A change applies once more than half of the validators vote for it.

    \b
    Example:
        o2ocli validator propose tK3… --add
        o2ocli validator propose tQ9… --remove
    """
    if action is None:
        raise click.UsageError("say --add or --remove")
    ctx = get_context()
    data = rpc_call(ctx, "propose", address, action == "add")
    emit(ctx, data, "\n".join(f"{p['action']} {p['address']}" for p in data["proposals"]))


@validator.command("discard")
@click.argument("address")
def discard_cmd(address: str) -> None:
    """Withdraw this validator's proposal about ADDRESS.

    \b
    Example:
        o2ocli validator discard tK3…
    """
    ctx = get_context()
    data = rpc_call(ctx, "discard", address)
    text = "\n".join(f"{p['action']} {p['address']}" for p in data["proposals"]) or "no proposals"
    emit(ctx, data, text)

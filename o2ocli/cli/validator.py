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
        accused = set(data.get("accused", []))
        rows = [[v, "in turn" if v == data["in_turn"] else "",
                 "EVIDENCE: equivocated" if v in accused else ""] for v in data["validators"]]
        text = table(rows, ["validator", "next block", "finality"])
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


@validator.command("evidence")
def evidence_cmd() -> None:
    """Evidence that a validator signed two conflicting finality votes.

    Two votes by one key conflict when they have the same target height (a
    double vote) or one's source..target span strictly contains the other's
    (a surround vote).  Honest validators never sign such a pair, and two
    conflicting final blocks are impossible without one.  Evidence seen in
    blocks or from peers is kept and carried in later blocks.  To remove the
    validator, the others vote: ``o2ocli validator propose ADDRESS --remove``.

    \b
    Example:
        o2ocli validator evidence
        o2ocli --json validator evidence
    """
    ctx = get_context()
    data = rpc_call(ctx, "listevidence")

    def human() -> str:
        if not data["evidence"]:
            return "no evidence: no validator has signed conflicting finality votes"
        rows = []
        for ev in data["evidence"]:
            first, second = ev["votes"]
            rows.append([
                ev["validator"], ev["kind"],
                f"{first['source_height']}->{first['target_height']} {first['target'][:16]}",
                f"{second['source_height']}->{second['target_height']} {second['target'][:16]}",
                "yes" if ev["still_validator"] else "no",
            ])
        return table(rows, ["validator", "kind", "vote", "conflicting vote", "still validator"])

    emit(ctx, data, human)

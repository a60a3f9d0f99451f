"""``o2ocli node peers|addpeer|ban|unban``: the node's peers and the operator's bans
(registered on the ``node`` group by :mod:`.node`)."""

from __future__ import annotations

import time

import click

from .common import emit, get_context, parse_host_port, rpc_call, table

__all__ = ["peers_cmd", "addpeer_cmd", "ban_cmd", "unban_cmd"]


@click.command("peers")
def peers_cmd() -> None:
    """Connected peers, bans and where this node listens.

    \b
    Example:
        o2ocli node peers
        o2ocli --json node peers
    """
    ctx = get_context()
    data = rpc_call(ctx, "getpeerinfo")

    def human() -> str:
        rows = [[p["address"], "in" if p["inbound"] else "out", p["height"],
                 p["latency_ms"] if p["latency_ms"] is not None else "", p["user_agent"] or ""]
                for p in data["peers"]]
        text = table(rows, ["peer", "dir", "height", "ping ms", "agent"]) if rows else "no peers"
        text += f"\nlistening on {data['listen'] or '(not listening)'}"
        if not data["network_active"]:
            text += "  (networking disabled)"
        if data["banned"]:
            text += "\nbanned: " + ", ".join(
                f"{b['host']} until {time.strftime('%Y-%m-%d %H:%M', time.gmtime(b['until']))}"
                for b in data["banned"])
        if data.get("discouraged"):
            text += "\ndiscouraged: " + ", ".join(d["host"] for d in data["discouraged"])
        if data.get("recent_disconnects"):
            text += "\nrecent disconnects:\n" + table(
                [[time.strftime("%H:%M:%S", time.gmtime(d["time"])), d["address"],
                  "in" if d["inbound"] else "out", d["reason"]]
                 for d in data["recent_disconnects"][:10]],
                ["time", "peer", "dir", "reason"])
        return text

    emit(ctx, data, human)


@click.command("addpeer")
@click.argument("address", metavar="HOST:PORT")
def addpeer_cmd(address: str) -> None:
    """Connect to a peer and keep that connection (redialed if it drops).

    \b
    Example:
        o2ocli node addpeer 192.0.2.10:18444
    """
    ctx = get_context()
    parse_host_port(address, "HOST:PORT")
    data = rpc_call(ctx, "addpeer", address)
    emit(ctx, data, f"added {data['added']}")


@click.command("ban")
@click.argument("host")
@click.option("--seconds", type=click.IntRange(1, 10 * 365 * 24 * 3600), default=24 * 3600,
              show_default=True, help="How long the ban lasts.")
def ban_cmd(host: str, seconds: int) -> None:
    """Refuse a host (operator ban, kept across restarts) and drop its peers.

    Misbehaving peers are never banned automatically: they are disconnected
    (and a public host discouraged); this is the operator's tool.

    \b
    Example:
        o2ocli node ban 192.0.2.66
        o2ocli node ban 192.0.2.66 --seconds 3600
    """
    ctx = get_context()
    data = rpc_call(ctx, "ban", host, seconds)
    emit(ctx, data, f"banned {data['banned']} until "
         f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(data['until']))} UTC")


@click.command("unban")
@click.argument("host")
def unban_cmd(host: str) -> None:
    """Lift the ban on a peer's host.

    \b
    Example:
        o2ocli node unban 192.0.2.66
    """
    ctx = get_context()
    data = rpc_call(ctx, "unban", host)
    emit(ctx, data, f"unbanned {data['unbanned']}")

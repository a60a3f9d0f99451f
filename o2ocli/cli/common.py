"""Shared CLI plumbing: datadir and chain resolution, the RPC client, output.

Library errors become one ``error: …`` line and an exit code:
1 refused, 2 usage (click), 3 node unreachable.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from .main import EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE, CliError, Context

__all__ = [
    "get_context",
    "resolve_datadir",
    "resolve_spec",
    "rpc_call",
    "emit",
    "table",
    "CliError",
]


def get_context() -> Context:
    """The global options of the current invocation."""
    return click.get_current_context().find_root().obj


def resolve_datadir(ctx: Context, chain_name: str | None = None) -> Path:
    """``--datadir``, else the default folder of the chain."""
    from o2ocli.node.datadir import default_datadir

    if ctx.datadir:
        return Path(ctx.datadir).expanduser()
    name = chain_name or ctx.chain
    if "/" in name or name.endswith(".json"):
        name = Path(name).stem
    return default_datadir(name)


def resolve_spec(ctx: Context, datadir: Path | None = None) -> Any:
    """The chain spec: the one the datadir remembers, else ``--chain``.  An
    explicit ``--chain`` that contradicts the datadir is an error."""
    from o2ocli.chainspec import SpecError, load_spec
    from o2ocli.node.datadir import DatadirError, read_spec

    datadir = datadir or resolve_datadir(ctx)
    try:
        stored = read_spec(datadir)
    except DatadirError as exc:
        raise CliError(str(exc)) from None
    try:
        if stored is None:
            return load_spec(ctx.chain)
        if ctx.chain_explicit:
            wanted = load_spec(ctx.chain)
            if wanted.chain_id != stored.chain_id:
                raise CliError(
                    f"datadir {datadir} belongs to chain {stored.chain_id!r}, "
                    f"not {wanted.chain_id!r}"
                )
        return stored
    except SpecError as exc:
        raise CliError(str(exc)) from None


def rpc_client(ctx: Context) -> Any:
    """A JSON-RPC client for the node of this datadir (or ``--rpc URL``)."""
    from o2ocli.node.datadir import cookie_path, read_node_info
    from o2ocli.rpc.client import RpcClient

    datadir = resolve_datadir(ctx)
    if ctx.rpc:
        cookie = cookie_path(datadir)
        try:
            return RpcClient(ctx.rpc, cookie_path=cookie if cookie.is_file() else None)
        except ValueError as exc:
            raise CliError(f"bad --rpc URL {ctx.rpc!r}: {exc}", EXIT_USAGE) from None
    info = read_node_info(datadir)
    if not info or "rpc" not in info:
        raise CliError(
            f"node is not running on {datadir} (start it with: o2ocli node start)",
            EXIT_UNREACHABLE,
        )
    return RpcClient(info["rpc"], cookie_path=cookie_path(datadir))


def rpc_call(ctx: Context, method: str, *params: Any) -> Any:
    """Call ``method`` on the node; errors become CLI errors with the right exit code."""
    from o2ocli.rpc.client import NodeUnreachable, RpcAuthError
    from o2ocli.rpc.errors import RpcError

    client = rpc_client(ctx)
    try:
        return client.call(method, *params)
    except NodeUnreachable as exc:
        raise CliError(str(exc), EXIT_UNREACHABLE) from None
    except RpcAuthError as exc:
        raise CliError(str(exc), EXIT_REFUSED) from None
    except RpcError as exc:
        raise CliError(exc.message, EXIT_REFUSED) from None


def emit(ctx: Context, data: Any, human: str | Callable[[], str]) -> None:
    """Print ``data`` as one JSON document with ``--json``, else the human text."""
    if ctx.json:
        click.echo(json.dumps(data, indent=2, sort_keys=False))
    else:
        click.echo(human() if callable(human) else human)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain text table."""
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)

"""Checks of the global options (``--chain``, ``--datadir``, ``--rpc``) before any
command runs, and the root group that hints where global options belong when
one is given after the command."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

__all__ = ["GLOBAL_OPTIONS", "RootGroup", "check_global_options"]

GLOBAL_OPTIONS = {"--datadir": " DIR", "--chain": " NAME", "--rpc": " URL", "-w": " NAME",
                  "--wallet": " NAME", "--json": ""}
"""The global options and the placeholder of their value in the hint."""


class RootGroup(click.Group):
    """``o2ocli``: an unknown option that is a global option gets a hint that
    global options go before the command (``o2ocli --json node status``)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.NoSuchOption as exc:
            if exc.option_name in GLOBAL_OPTIONS and exc.ctx is not None:
                path = exc.ctx.command_path.split(" ", 1)
                rest = f" {path[1]}" if len(path) > 1 else ""
                example = f"{path[0]} {exc.option_name}{GLOBAL_OPTIONS[exc.option_name]}{rest}"
                exc.message += (f" ({exc.option_name} is a global option: put it before the "
                                f"command, as in: {example})")
            raise


def check_global_options(ctx: click.Context, datadir: str | None, chain: str,
                         rpc: str | None) -> None:
    """Usage errors for a ``--chain`` spec that does not exist, a ``--datadir``
    that is not a directory and an ``--rpc`` URL with a bad scheme or port."""
    source = ctx.get_parameter_source("chain")
    if source != click.core.ParameterSource.DEFAULT:
        _check_chain(chain)
    if datadir:
        path = Path(datadir).expanduser()
        if path.exists() and not path.is_dir():
            raise click.BadParameter(f"{path} is a file, not a directory",
                                     param_hint="'--datadir'")
    if rpc:
        _check_rpc_url(rpc)


def _check_chain(chain: str) -> None:
    from o2ocli.chainspec import BUILTIN_SPECS, builtin_spec_path

    path = Path(chain).expanduser()
    if path.is_file():
        return
    if "/" not in chain and not chain.endswith(".json"):
        if builtin_spec_path(chain) is None:
            raise click.BadParameter(
                f"no chain spec named {chain!r} (built-in: {', '.join(BUILTIN_SPECS)}; "
                "or give the path of a spec file)", param_hint="'--chain'")
        return
    if not path.is_file():
        raise click.BadParameter(f"chain spec file {path} does not exist"
                                 + (" (it is a directory)" if path.is_dir() else ""),
                                 param_hint="'--chain'")


def _check_rpc_url(rpc: str) -> None:
    try:
        parts = urlsplit(rpc)
        port = parts.port
    except ValueError:
        raise click.BadParameter(f"{rpc!r}: the port must be 1-65535",
                                 param_hint="'--rpc'") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(f"{rpc!r} is not an http://HOST:PORT URL",
                                 param_hint="'--rpc'")
    if port == 0:
        raise click.BadParameter(f"{rpc!r}: port 0 cannot be dialed (ports are 1-65535)",
                                 param_hint="'--rpc'")

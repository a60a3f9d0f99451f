"""``node start`` for operators: the options for metrics and logs, the config
file ``DATADIR/o2ocli.toml`` and ``--print-config``.

The config file holds ``node start`` options by their long name without the
dashes (``rpc-listen = "127.0.0.1:19500"``, ``connect = ["10.0.0.2:19444"]``,
``no-discover = true``).  It is read before the command line is parsed and
becomes click's ``default_map`` for ``node start``, so an option given on the
command line wins.  An unknown key, a bad value or a file that is not TOML is
an error naming the file and the key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .common import EXIT_USAGE, CliError, emit, get_context, resolve_datadir

__all__ = [
    "CONFIG_NAME",
    "DETACHED_ENV",
    "config_path",
    "load_start_config",
    "operator_options",
    "print_config",
    "setup_logging",
    "start_detached",
]

CONFIG_NAME = "o2ocli.toml"
DETACH_TIMEOUT = 60.0
"""Seconds ``node start --detach`` waits for the background node's RPC."""
DETACHED_ENV = "O2OCLI_DETACHED_LOG"
"""Set by ``node start --detach`` for the background process: log only to this file."""
NOT_IN_FILE = frozenset({"print_config"})
"""``node start`` options the config file may not set."""


def config_path(datadir: Path) -> Path:
    return datadir / CONFIG_NAME


def _key_of(param: click.Parameter) -> str | None:
    """The config key of an option: its first long name without the dashes."""
    if not isinstance(param, click.Option) or param.name in NOT_IN_FILE:
        return None
    longs = [opt for opt in param.opts if opt.startswith("--")]
    return longs[0][2:] if longs else None


def load_start_config(datadir: Path, command: click.Command) -> dict[str, Any]:
    """The ``default_map`` for ``node start`` from ``DATADIR/o2ocli.toml`` ({} if absent)."""
    path = config_path(datadir)
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise CliError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise CliError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    by_key = {key: param for param in command.params if (key := _key_of(param))}
    values: dict[str, Any] = {}
    for key, value in data.items():
        param = by_key.get(key) or by_key.get(key.replace("_", "-"))
        if param is None:
            known = ", ".join(sorted(by_key))
            raise CliError(f"config file {path}: unknown key {key!r} (node start options: "
                           f"{known})")
        if isinstance(value, dict):
            raise CliError(f"config file {path}: key {key!r} must be a value, not a table")
        assert isinstance(param, click.Option) and param.name
        if param.multiple and not isinstance(value, list):
            value = [value]
        if not param.multiple and isinstance(value, list):
            raise CliError(f"config file {path}: key {key!r} takes one value, not a list")
        if param.is_flag and not isinstance(value, bool):
            raise CliError(f"config file {path}: key {key!r} must be true or false")
        try:
            param.type_cast_value(click.Context(command), value)
        except click.BadParameter as exc:
            raise CliError(f"config file {path}: key {key!r}: {exc.message}", EXIT_USAGE) \
                from None
        if isinstance(param.type, click.Path) and isinstance(value, str):
            value = str(datadir / Path(value).expanduser())  # relative: to the datadir
        values[param.name] = value
    return values


def print_config(ctx: click.Context, datadir: Path) -> None:
    """Print every ``node start`` setting, its value and where it came from."""
    source_names = {
        click.core.ParameterSource.COMMANDLINE: "command line",
        click.core.ParameterSource.ENVIRONMENT: "environment",
        click.core.ParameterSource.DEFAULT_MAP: str(config_path(datadir)),
        click.core.ParameterSource.DEFAULT: "default",
    }
    settings: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for param in ctx.command.params:
        key = _key_of(param)
        if key is None or param.name is None:
            continue
        value = ctx.params.get(param.name)
        if isinstance(value, tuple):
            value = list(value)
        if isinstance(value, Path):
            value = str(value)
        settings[key] = value
        source = ctx.get_parameter_source(param.name)
        sources[key] = source_names.get(source, "default") if source else "default"
    data = {"datadir": str(datadir), "config_file": str(config_path(datadir)),
            "config_file_exists": config_path(datadir).is_file(),
            "settings": settings, "sources": sources}
    lines = [f"# datadir {datadir}",
             f"# config file {config_path(datadir)}"
             + ("" if data["config_file_exists"] else " (absent)")]
    for key, value in settings.items():
        shown = "(unset)" if value is None else json.dumps(value)
        lines.append(f"{key} = {shown}    # {sources[key]}")
    emit(get_context(), data, "\n".join(lines))


def setup_logging(level: str, log_json: bool, log_file: Path | None, max_bytes: int,
                  backups: int) -> None:
    """Configure the node's log from the ``node start`` options (:mod:`o2ocli.node.logsetup`)."""
    from o2ocli.node.logsetup import configure_logging

    detached = os.environ.get(DETACHED_ENV)
    if detached and log_file is None:
        log_file = Path(detached)
    try:
        configure_logging(level, json_lines=log_json, file=log_file, max_bytes=max_bytes,
                          backups=backups, stderr=not detached)
    except OSError as exc:
        raise CliError(f"cannot open log file {log_file}: {exc.strerror or exc}") from None


def operator_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the metrics, log and config options to ``node start``."""
    from o2ocli.node.logsetup import DEFAULT_LOG_BACKUPS, DEFAULT_LOG_MAX_BYTES, LOG_LEVELS

    options = [
        click.option("--metrics-listen", metavar="HOST:PORT", default=None,
                     help="Serve Prometheus metrics at http://HOST:PORT/metrics (off by "
                          "default; see docs/metrics.rst)."),
        click.option("--log-level", type=click.Choice(LOG_LEVELS), default="info",
                     show_default=True,
                     help="Least severe log records written (debug: a line per block)."),
        click.option("--log-json", is_flag=True,
                     help="Log one JSON object per line (for log collectors)."),
        click.option("--log-file", type=click.Path(dir_okay=False, path_type=Path),
                     default=None,
                     help="Also log to FILE, rotated by size (--detach: DATADIR/node.log)."),
        click.option("--log-max-bytes", type=click.IntRange(0, 2**40),
                     default=DEFAULT_LOG_MAX_BYTES, show_default=True,
                     help="Rotate the log file when it would grow past this (0: never)."),
        click.option("--log-backups", type=click.IntRange(0, 1000),
                     default=DEFAULT_LOG_BACKUPS, show_default=True,
                     help="Rotated log files kept (node.log.1 … node.log.N)."),
        click.option("--print-config", is_flag=True,
                     help=f"Print the effective settings (command line, DATADIR/{CONFIG_NAME}, "
                          "defaults) and exit."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


CONFIG_ERROR = "o2ocli.config_error"
"""``ctx.meta`` key of a config file error, raised when ``node start`` runs (so
``node start --help`` still works with a broken file)."""


def start_defaults(ctx: click.Context) -> None:
    """In the ``node`` group: before ``node start`` parses its options, make the
    config file its defaults."""
    if ctx.invoked_subcommand != "start" or ctx.resilient_parsing:
        return
    assert isinstance(ctx.command, click.Group)
    command = ctx.command.commands["start"]
    datadir = resolve_datadir(get_context())
    try:
        values = load_start_config(datadir, command)
    except CliError as exc:
        ctx.meta[CONFIG_ERROR] = exc
        return
    if values:
        ctx.default_map = {**(ctx.default_map or {}), "start": values}


def raise_config_error(ctx: click.Context) -> None:
    """In ``node start``: the config file's error, if it had one."""
    error = ctx.meta.get(CONFIG_ERROR)
    if error is not None:
        raise error


def start_detached(datadir: Path, as_json: bool, log_file: Path | None) -> None:
    """Re-run this command in the background and wait until its RPC answers."""
    from o2ocli.fsmodes import make_private_dir
    from o2ocli.node.datadir import node_info_path, read_node_info

    args = [a for a in sys.argv[1:] if a != "--detach"]
    if "--datadir" not in args:
        args = ["--datadir", str(datadir), *args]
    args = [a for a in args if a != "--json"]
    log_path = log_file or datadir / "node.log"
    make_private_dir(datadir)
    node_info_path(datadir).unlink(missing_ok=True)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "o2ocli", *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            env={**os.environ, DETACHED_ENV: str(log_path)},
        )
    deadline = time.monotonic() + DETACH_TIMEOUT
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["?"]
            raise CliError(f"node exited during start-up ({tail[0]}); see {log_path}")
        info = read_node_info(datadir)
        if info and info.get("pid") == proc.pid:
            result = {"pid": proc.pid, "rpc": info["rpc"], "log": str(log_path)}
            if as_json:
                import json

                click.echo(json.dumps(result, indent=2))
            else:
                click.echo(f"node started in the background: pid {proc.pid}, RPC {info['rpc']}, "
                           f"log {log_path}")
            return
        time.sleep(0.1)
    proc.terminate()
    raise CliError(f"node did not start within {DETACH_TIMEOUT:.0f} s; see {log_path}")

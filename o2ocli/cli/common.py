"""Shared CLI plumbing: the global context, exit codes and :class:`CliError`,
datadir and chain resolution, the RPC client, output, and what every command
that signs needs (passphrases, opening the wallet, mapping node errors, parsing
addresses).

Library errors become one ``error: …`` line and an exit code:
1 refused, 2 usage (click), 3 node unreachable.  This module imports no other
module of :mod:`o2ocli.cli` (the command modules and :mod:`.main` import it).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

__all__ = [
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "EXIT_UNREACHABLE",
    "Context",
    "CliError",
    "get_context",
    "resolve_datadir",
    "resolve_spec",
    "rpc_client",
    "rpc_call",
    "emit",
    "table",
    "PASSPHRASE_ENV",
    "passphrase_file_option",
    "new_passphrase",
    "unlock_passphrase",
    "open_wallet",
    "node_errors",
    "insufficient_funds_message",
    "parse_address",
    "parse_host_port",
    "TXID",
    "ESCROW_ID",
    "MIN_TXID_PREFIX",
    "resolve_txid",
]

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


@dataclass
class Context:
    """Global options shared by every command (``ctx.obj``)."""

    datadir: str | None
    chain: str
    rpc: str | None
    wallet: str
    json: bool
    chain_explicit: bool = False


class CliError(click.ClickException):
    """A refused operation: one ``error: …`` line on stderr and a non-zero exit.

    With ``--json`` the error is also printed to stdout as
    ``{"error": {"code": …, "message": …}}``.
    """

    def __init__(
        self, message: str, exit_code: int = EXIT_REFUSED, data: dict | None = None
    ) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.data = data
        """With --json, these keys are printed beside ``error`` (a negative answer
        that still has a result, like a failed verification)."""
        # Read --json now: click shows the error after the command's context closed.
        ctx = click.get_current_context(silent=True)
        root = ctx.find_root().obj if ctx is not None else None
        self.as_json = bool(getattr(root, "json", False))

    def show(self, file: object = None) -> None:  # noqa: ARG002 - click's signature
        if self.as_json:
            error = {"error": {"code": self.exit_code, "message": self.message}}
            click.echo(json.dumps({**(self.data or {}), **error}))
        click.echo(f"error: {self.message}", err=True)


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


def parse_host_port(value: str, what: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 hosts may be bracketed; an empty host is 127.0.0.1), or a
    usage error naming the option ``what``."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"expected HOST:PORT, got {value!r}", param_hint=what)
    return host.strip("[]") or "127.0.0.1", int(port)


# ---------------------------------------------------------------- wallets

PASSPHRASE_ENV = "O2OCLI_PASSPHRASE"

passphrase_file_option = click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Read the passphrase from FILE (or set {PASSPHRASE_ENV}).",
)


def _read_passphrase_file(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read passphrase file {path}: {exc.strerror}") from None
    return text.rstrip("\r\n")


def _given_passphrase(passphrase_file: Path | None) -> str | None:
    if passphrase_file is not None:
        return _read_passphrase_file(passphrase_file)
    return os.environ.get(PASSPHRASE_ENV)


def new_passphrase(passphrase_file: Path | None, no_passphrase: bool) -> str | None:
    """The passphrase to encrypt a new wallet with (None = unencrypted)."""
    if no_passphrase:
        if passphrase_file is not None:
            raise click.UsageError("--no-passphrase and --passphrase-file contradict each other")
        return None
    given = _given_passphrase(passphrase_file)
    if given is None:
        if not sys.stdin.isatty():
            raise CliError(
                "no passphrase: give --passphrase-file FILE or set "
                f"{PASSPHRASE_ENV} (or --no-passphrase for an unencrypted wallet)"
            )
        given = click.prompt("New passphrase", hide_input=True, confirmation_prompt=True,
                             err=True)
    if not given:
        raise CliError("the passphrase is empty; use --no-passphrase for an unencrypted wallet")
    return given


def unlock_passphrase(wallet: Any, passphrase_file: Path | None) -> str | None:
    """The passphrase to unlock ``wallet`` (None for an unencrypted one)."""
    if not wallet.encrypted:
        return None
    given = _given_passphrase(passphrase_file)
    if given is None:
        if not sys.stdin.isatty():
            raise CliError(
                f"wallet {wallet.name!r} is encrypted: give --passphrase-file FILE or set "
                f"{PASSPHRASE_ENV}"
            )
        given = click.prompt(f"Passphrase for wallet {wallet.name!r}", hide_input=True, err=True)
    return given


@contextmanager
def open_wallet(ctx: Any, name: str | None = None) -> Iterator[Any]:
    """Open the ``-w`` wallet; wallet errors become CLI errors.  A wallet folder other users
    may read gets a one-line warning on stderr."""
    from o2ocli.fsmodes import exposure_warning
    from o2ocli.wallet.wallet import Wallet, WalletError

    datadir = resolve_datadir(ctx)
    if not datadir.is_dir():
        raise CliError(f"datadir {datadir} does not exist, so it has no wallet "
                       f"{name or ctx.wallet!r} (check --datadir / --chain)")
    spec = resolve_spec(ctx, datadir)
    try:
        wallet = Wallet.open(datadir, name or ctx.wallet, spec)
    except WalletError as exc:
        raise CliError(str(exc)) from None
    warning = exposure_warning(wallet.path, "wallet folder")
    if warning is not None:
        click.echo(warning, err=True)
    try:
        yield wallet
    except WalletError as exc:  # e.g. a multisig wallet asked for a single-key address
        raise CliError(str(exc)) from None
    finally:
        wallet.close()


@contextmanager
def node_errors() -> Iterator[None]:
    """Map node/RPC/wallet failures to one-line CLI errors."""
    from o2ocli.rpc.client import NodeUnreachable, RpcAuthError
    from o2ocli.rpc.errors import RpcError
    from o2ocli.wallet.builder import InsufficientFunds, TooManyInputs
    from o2ocli.wallet.errors import O2OError
    from o2ocli.wallet.keystore import KeystoreError, WrongPassphrase
    from o2ocli.wallet.wallet import WalletError

    try:
        yield
    except NodeUnreachable as exc:
        raise CliError(str(exc), EXIT_UNREACHABLE) from None
    except RpcAuthError as exc:
        raise CliError(str(exc), EXIT_REFUSED) from None
    except RpcError as exc:
        raise CliError(exc.message, EXIT_REFUSED) from None
    except WrongPassphrase:
        raise CliError("wrong passphrase") from None
    except (KeystoreError, WalletError, TooManyInputs, O2OError) as exc:
        raise CliError(str(exc)) from None
    except InsufficientFunds as exc:
        raise CliError(insufficient_funds_message(exc)) from None


def insufficient_funds_message(exc: Any) -> str:
    from o2ocli.amounts import format_amount
    from o2ocli.core.tx import NATIVE_ASSET

    ctx = get_context()
    spec = resolve_spec(ctx)
    if exc.asset == NATIVE_ASSET:
        need = format_amount(exc.needed, spec.native_decimals)
        have = format_amount(exc.available, spec.native_decimals)
        return (f"insufficient funds: this payment needs {need} {spec.native_symbol} "
                f"(amount + fee), the wallet has {have} {spec.native_symbol} available")
    name, decimals = exc.asset.hex()[:16] + "…", 0
    try:
        from o2ocli.wallet.payloadtx import asset_names

        name, decimals = asset_names(rpc_client(ctx)).get(exc.asset, (name, 0))
    except Exception:  # noqa: BLE001 - the message stays useful without the names
        pass
    need, have = format_amount(exc.needed, decimals), format_amount(exc.available, decimals)
    return f"insufficient funds: need {need} {name}, the wallet has {have} {name}"


def parse_address(spec: Any, text: str) -> bytes:
    """The pubkey hash of an address of this chain, or a one-line CLI error."""
    from o2ocli.crypto.address import AddressError

    try:
        return spec.decode_address(text)
    except AddressError as exc:
        raise CliError(f"bad address {text!r}: {exc}") from None


class TxidRef(click.ParamType):
    """A txid as typed (whole, or a unique prefix of at least 8 hex digits:
    :func:`resolve_txid`), or as an ``o2o:tx:`` URI or a public ``/tx/`` page
    URL (the node still checks the txid itself)."""

    name = "TXID"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        from o2ocli.web.links import LinkError, parse_txid_ref

        try:
            text = parse_txid_ref(str(value))
        except LinkError as exc:
            self.fail(str(exc), param, ctx)
        return resolve_txid(text)


TXID = TxidRef()
"""Click type of txid arguments and options."""

# ---------------------------------------------------------------- txid prefixes
# Txids as users type them: whole (64 hex digits), or a unique prefix of at
# least 8 hex digits, as git accepts an abbreviated commit id.  Prefixes are
# resolved in one place, the node's ``resolvetxid`` RPC (a range scan of its tx
# index, plus the mempool), so every command that takes a txid accepts the same
# prefixes for every transaction the node knows, not only the wallet's own.

MIN_TXID_PREFIX = 8
"""Fewest hex digits of a txid prefix."""

_HEX = re.compile(r"[0-9a-fA-F]+")


def resolve_txid(text: str) -> str:
    """The whole txid ``text`` stands for; anything that is not hex is returned
    unchanged (the command's own check names it).  A hex prefix shorter than
    :data:`MIN_TXID_PREFIX`, unknown or ambiguous is a one-line error."""
    if not _HEX.fullmatch(text):
        return text
    prefix = text.lower()
    if len(prefix) >= 64:
        return prefix
    if len(prefix) < MIN_TXID_PREFIX:
        raise CliError(f"txid prefix {prefix} is too short: give at least {MIN_TXID_PREFIX} "
                       "hex digits (or the whole txid)")
    found = rpc_call(get_context(), "resolvetxid", prefix)
    txids = found["txids"]
    if not txids:
        raise CliError(f"no transaction in the chain or mempool starts with {prefix}")
    if len(txids) > 1 or found.get("more"):
        count = f"more than {len(txids)}" if found.get("more") else str(len(txids))
        raise CliError(f"prefix {prefix} matches {count} transactions: {', '.join(txids)} "
                       "(give more digits)")
    return txids[0]


class EscrowRef(click.ParamType):
    """``TXID:INDEX`` of an escrow, the txid whole or a unique prefix."""

    name = "TXID:INDEX"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        txid, sep, index = str(value).strip().partition(":")
        return resolve_txid(txid) + sep + index


ESCROW_ID = EscrowRef()
"""Click type of escrow id arguments (``TXID:INDEX``, the txid may be a prefix)."""

"""Root command group and the global options of ``o2ocli``.

Heavy modules (plyvel, coincurve, the node) are imported inside the commands
that need them so that ``o2ocli --help`` starts fast.
"""

from __future__ import annotations

import json
import sys

import click

from o2ocli import __version__

from .common import EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE, CliError, Context
from .globalopts import RootGroup, check_global_options

__all__ = [
    "cli",
    "main",
    "CliError",
    "Context",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "EXIT_UNREACHABLE",
]

@click.group(
    cls=RootGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="\b\nExample:\n"
           "    o2ocli node start --dev --detach   # a private chain; its funds are in 'dev'\n"
           "    o2ocli -w dev wallet balance\n"
           "    o2ocli --json node status\n"
           "    o2ocli demo                        # the whole story on a throwaway network",
)
@click.version_option(__version__, "--version", prog_name="o2ocli")
@click.option(
    "--datadir",
    envvar="O2OCLI_DATADIR",
    metavar="DIR",
    help="Node and wallet data (default ~/.o2ocli/<chain>).",
)
@click.option(
    "--chain",
    envvar="O2OCLI_CHAIN",
    default="devnet",
    show_default=True,
    metavar="NAME",
    help="Chain spec name from chaindata/ or a path to a spec file.",
)
@click.option("--rpc", envvar="O2OCLI_RPC", metavar="URL", help="Node RPC URL to talk to.")
@click.option(
    "-w",
    "--wallet",
    envvar="O2OCLI_WALLET",
    default="default",
    show_default=True,
    metavar="NAME",
    help="Wallet that signs.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
@click.pass_context
def cli(
    ctx: click.Context, datadir: str | None, chain: str, rpc: str | None, wallet: str, as_json: bool
) -> None:
    """o2ocli: full node and wallet for the O2O commerce chain.

    \b
    Commands talk to a running node over JSON-RPC; `node start` runs one.
    Exit codes: 0 ok, 1 refused, 2 usage error, 3 node unreachable.
    """
    check_global_options(ctx, datadir, chain, rpc)
    explicit = ctx.get_parameter_source("chain") != click.core.ParameterSource.DEFAULT
    ctx.obj = Context(datadir, chain, rpc, wallet, as_json, explicit)


def _register() -> None:
    from .chain import chain
    from .consent import consent
    from .demo import demo
    from .escrow import escrow
    from .gov import gov
    from .invoice import export_xpub_cmd, invoice, pay_cmd
    from .node import node
    from .pos import pos
    from .profile import profile
    from .review import review
    from .token import token
    from .trace import trace
    from .validator import validator
    from .wallet import wallet
    from .walletview import history_cmd, label_cmd, labels_cmd

    cli.add_command(node)
    cli.add_command(chain)
    cli.add_command(validator)
    cli.add_command(wallet)
    cli.add_command(token)
    cli.add_command(review)
    cli.add_command(escrow)
    cli.add_command(trace)
    cli.add_command(consent)
    cli.add_command(gov)
    cli.add_command(demo)
    cli.add_command(invoice)
    cli.add_command(pos)
    cli.add_command(profile)
    wallet.add_command(pay_cmd)
    wallet.add_command(export_xpub_cmd)
    from .psbt import combine_cmd, finalize_cmd, sign_cmd

    for command in (sign_cmd, combine_cmd, finalize_cmd):
        wallet.add_command(command)
    wallet.add_command(history_cmd)
    wallet.add_command(label_cmd)
    wallet.add_command(labels_cmd)


_register()


def main() -> None:
    """Console-script entry point: never lets a traceback reach the user."""
    try:
        cli.main(prog_name="o2ocli", standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # pragma: no cover - last-resort guard
        message = f"internal error: {type(exc).__name__}: {exc}"
        if "--json" in sys.argv[1:]:
            click.echo(json.dumps({"error": {"code": EXIT_REFUSED, "message": message}}))
        click.echo(f"error: {message}", err=True)
        sys.exit(EXIT_REFUSED)


if __name__ == "__main__":  # pragma: no cover
    main()

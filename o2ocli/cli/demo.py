"""``o2ocli demo``: the O2O story on a temporary local 3-validator network."""

from __future__ import annotations

from pathlib import Path

import click

from .common import CliError, emit, get_context

__all__ = ["demo"]


@click.command("demo")
@click.option("--keep", "keep", default=None, type=click.Path(file_okay=False, path_type=Path),
              metavar="DIR", help="Keep the network's files in DIR (default: a temp dir, removed).")
def demo(keep: Path | None) -> None:
    """Run the whole O2O story on a temporary 3-validator network (20-30 seconds).

    Starts three real validator nodes on 127.0.0.1, then: a shop issues
    loyalty points; a customer pays with a split to a courier and the
    platform; the shop rewards her; she reviews, the shop replies; a repair
    job goes through escrow and release; a batch of tea is traced from farm to
    shop; consent is granted and checked; all nodes agree on the UTXO set
    hash; everything is shut down.

    \b
    Example:
        o2ocli demo
        o2ocli demo --keep ./demo-net
    """
    from o2ocli.demo import DemoError, run_demo

    ctx = get_context()
    echo = (lambda line: click.echo(line, err=True)) if ctx.json else click.echo
    try:
        summary = run_demo(echo, keep)
    except DemoError as exc:
        raise CliError(f"demo failed: {exc}") from None
    except KeyboardInterrupt:
        raise CliError("demo interrupted; the nodes were stopped", 130) from None
    emit(ctx, summary, f"demo complete: 3 nodes agree at height {summary['height']} "
                       f"(utxo set {summary['utxo_set_hash'][:16]}…)")

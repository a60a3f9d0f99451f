"""``o2ocli node reindex``: rebuild a stopped node's chainstate from its stored
blocks (registered on the ``node`` group by :mod:`.node`)."""

from __future__ import annotations

import contextlib
import sys
import time

import click

from .common import CliError, emit, get_context, resolve_datadir, resolve_spec

__all__ = ["reindex_cmd"]


@click.command("reindex")
def reindex_cmd() -> None:
    """Rebuild the chainstate from the stored blocks (the node must be stopped).

    Every stored block is validated again; the UTXO set, indexes and
    validator snapshots are rebuilt.  Safe to interrupt: run it again and it
    resumes (the node refuses to start until it has completed).

    \b
    Example:
        o2ocli node reindex
    """
    from o2ocli.crypto.batch import CachingVerifier, ProcessVerifier
    from o2ocli.node.chain import ReindexProgress, rebuild_chainstate, reindex_pending
    from o2ocli.node.datadir import chaindata_path
    from o2ocli.node.gcpolicy import tune_gc
    from o2ocli.storage.chainstate import ChainStateError
    from o2ocli.storage.db import Database, DatabaseError, DatabaseLocked

    ctx = get_context()
    datadir = resolve_datadir(ctx)
    spec = resolve_spec(ctx, datadir)
    if not chaindata_path(datadir).is_dir():
        raise CliError(f"datadir {datadir} has no chain database; nothing to reindex")
    try:
        db = Database(chaindata_path(datadir), create=False)
    except DatabaseLocked:
        raise CliError(f"a node is running on {datadir}; stop it first (o2ocli node stop)")
    except DatabaseError as exc:
        raise CliError(str(exc)) from None
    started = time.monotonic()
    tune_gc()
    # Signatures (the next block's too) and UTXO hashing on the other cores.
    verifier = CachingVerifier(ProcessVerifier())
    with db, contextlib.closing(verifier):
        if reindex_pending(db):
            click.echo("resuming an interrupted reindex", err=True)
        interactive = sys.stderr.isatty() and not ctx.json
        try:
            if interactive:
                with click.progressbar(length=1, label="reindexing", file=sys.stderr) as bar:

                    def show(p: ReindexProgress) -> None:
                        bar.length = max(p.total, 1)
                        bar.update(1)

                    chain = rebuild_chainstate(db, spec, verifier=verifier,
                                               progress=show)
            else:
                last = [0.0]

                def log_line(p: ReindexProgress) -> None:
                    if p.done == p.total or time.monotonic() - last[0] > 2:
                        last[0] = time.monotonic()
                        click.echo(f"reindex: {p.done}/{p.total} blocks (height {p.height})",
                                   err=True)

                chain = rebuild_chainstate(db, spec, verifier=verifier, progress=log_line)
        except ChainStateError as exc:
            raise CliError(f"cannot reindex {datadir}: {exc}") from None
        height = chain.height
        stats = chain.state.utxo_stats()
    elapsed = time.monotonic() - started
    emit(
        ctx,
        {"height": height, "tip": stats.tip.hex(), "utxo_set_hash": stats.hash.hex(),
         "seconds": round(elapsed, 3)},
        f"reindexed to height {height} in {elapsed:.1f} s; utxo set hash {stats.hash.hex()}",
    )

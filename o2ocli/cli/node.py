"""``o2ocli node``: initialise, run, stop and inspect a node."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from .common import (
    EXIT_UNREACHABLE,
    CliError,
    emit,
    get_context,
    parse_host_port,
    resolve_datadir,
    resolve_spec,
    rpc_call,
)
from .nodeopts import (
    DETACHED_ENV,
    operator_options,
    raise_config_error,
    setup_logging,
    start_defaults,
    start_detached,
)
from .nodeopts import print_config as show_config

STOP_TIMEOUT = 60.0


@click.group()
@click.pass_context
def node(ctx: click.Context) -> None:
    """Run and manage a node.

    \b
    Example:
        o2ocli node start --dev          # a private one-validator chain, a block a second
        o2ocli node status
        o2ocli node stop
    """
    start_defaults(ctx)


@node.command("init")
@click.option(
    "--validator-key-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also generate a validator key and write it (WIF, mode 0600) to FILE.",
)
def init_cmd(validator_key_out: Path | None) -> None:
    """Create the datadir with the chain's genesis.

    \b
    Example:
        o2ocli --chain testnet node init
        o2ocli --chain ./mychain/mychain.json --datadir ./node1 node init
    """
    from o2ocli.crypto.keys import PrivateKey
    from o2ocli.node.chain import ChainManager
    from o2ocli.node.datadir import DatadirError, chaindata_path, init_datadir, write_key_file
    from o2ocli.storage.chainstate import ChainStateError
    from o2ocli.storage.db import Database, DatabaseError

    ctx = get_context()
    datadir = resolve_datadir(ctx)
    spec = resolve_spec(ctx, datadir)
    if validator_key_out is not None and validator_key_out.exists():
        raise CliError(f"{validator_key_out} already exists; refusing to overwrite a key file")
    try:
        created = init_datadir(datadir, spec)
        with Database(chaindata_path(datadir)) as db:
            chain = ChainManager(db, spec)
            genesis_hash = chain.genesis.hash.hex()
    except (DatadirError, ChainStateError) as exc:
        raise CliError(str(exc)) from None
    except DatabaseError as exc:
        raise CliError(f"{exc} (is a node running? stop it first)") from None
    except OSError as exc:
        raise CliError(f"cannot use datadir {datadir}: {exc.strerror or exc}") from None
    result: dict[str, Any] = {
        "datadir": str(datadir),
        "chain_id": spec.chain_id,
        "genesis_hash": genesis_hash,
        "created": created,
    }
    if validator_key_out is not None:
        key = PrivateKey.generate()
        write_key_file(validator_key_out, key, spec.wif_version)
        result["validator_address"] = spec.address(key.public_key.hash160())
        result["validator_key"] = str(validator_key_out)
    lines = [
        f"{'initialised' if created else 'already initialised'}: {datadir}",
        f"chain {spec.chain_id}  genesis {genesis_hash}",
    ]
    if validator_key_out is not None:
        lines.append(
            f"validator key written to {validator_key_out}; address {result['validator_address']}"
            " (ask the validators to propose it)"
        )
    emit(ctx, result, "\n".join(lines))


@node.command("start")
@click.option("--dev", is_flag=True, help="Private one-validator devnet (public dev keys).")
@click.option(
    "--dev-period",
    type=click.IntRange(0, 3600),
    default=None,
    help="Seconds between --dev blocks (at least the spec's 1 s); 0 seals only when "
    "transactions wait.",
)
@click.option(
    "--validator-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Seal blocks with this key (WIF file).",
)
@click.option("--listen", metavar="HOST:PORT",
              help="Accept peers here (default 0.0.0.0:<spec port>; --dev: not listening).")
@click.option("--no-listen", is_flag=True, help="Do not accept inbound peers.")
@click.option("--rpc-listen", metavar="HOST:PORT", help="RPC address (default 127.0.0.1:<spec>).")
@click.option("--rpc-allow-remote", is_flag=True, help="Allow RPC on a non-loopback address.")
@click.option("--connect", multiple=True, metavar="HOST:PORT", help="Peer to connect to.")
@click.option("--max-inbound", type=click.IntRange(1, 1000), default=32, show_default=True,
              help="Most inbound peers; when full, a newcomer may evict an idle one.")
@click.option("--no-discover", is_flag=True,
              help="Dial only --connect peers: no bootstrap peers, no learned addresses.")
@click.option("--http-listen", metavar="HOST:PORT", default=None,
              help="Serve the public read-only pages (item labels, reviews, chain) here "
                   "(off by default; a non-loopback address is allowed and logged as public).")
@click.option("--public-url", metavar="URL", default=None,
              help="Base URL of the pages as customers reach them (e.g. behind a reverse "
                   "proxy); links and QR labels use it (default: http://HOST:PORT).")
@click.option("--http-rate-limit", type=click.FloatRange(0, 100_000), default=20.0,
              show_default=True, help="Page requests per second per client IP (0: no limit).")
@click.option("--detach", is_flag=True, help="Run in the background; log to DATADIR/node.log.")
@operator_options
@click.option("--dbcache", type=click.IntRange(0, 1_000_000), default=None, metavar="MB",
              help="Memory for the UTXO cache and LevelDB's block cache, in MiB "
                   "(default 200; 0: write every block's changes through).")
def start_cmd(
    dev: bool,
    dev_period: int | None,
    validator_key: Path | None,
    listen: str | None,
    no_listen: bool,
    rpc_listen: str | None,
    rpc_allow_remote: bool,
    connect: tuple[str, ...],
    max_inbound: int,
    no_discover: bool,
    http_listen: str | None,
    public_url: str | None,
    http_rate_limit: float,
    detach: bool,
    metrics_listen: str | None,
    log_level: str,
    log_json: bool,
    log_file: Path | None,
    log_max_bytes: int,
    log_backups: int,
    print_config: bool,
    dbcache: int | None,
) -> None:
    """Run the node (in the foreground unless --detach).

    \b
    Example:
        o2ocli node start --dev
        o2ocli node start --dev --dev-period 0 --detach
        o2ocli --datadir ./node1 node start --validator-key ./net/validator-1.key
        o2ocli node start --dev --http-listen 0.0.0.0:8080 --public-url https://shop.example
        o2ocli node start --dev --metrics-listen 127.0.0.1:9464 --log-json
        o2ocli node start --print-config   # settings from DATADIR/o2ocli.toml and defaults
    """
    import asyncio

    from o2ocli.chainspec import SpecError, load_spec
    from o2ocli.node.datadir import (
        DatadirError,
        init_datadir,
        read_key_file,
        read_node_info,
        read_spec,
        write_private_file,
    )
    from o2ocli.node.nodeconfig import NodeConfig, NodeStartError
    from o2ocli.node.runtime import run_node

    raise_config_error(click.get_current_context())
    ctx = get_context()
    if dev_period is not None and not dev:
        raise click.UsageError("--dev-period only goes with --dev")
    rpc_host, rpc_port = ("127.0.0.1", None)
    if rpc_listen:
        rpc_host, rpc_port = parse_host_port(rpc_listen, "--rpc-listen")
    p2p_listen = parse_host_port(listen, "--listen") if listen else None
    if listen and no_listen:
        raise click.UsageError("--listen and --no-listen contradict each other")
    peers = tuple(parse_host_port(peer, "--connect") for peer in connect)
    services = _web_services(http_listen, public_url, http_rate_limit)
    if metrics_listen is not None:
        from o2ocli.node.metrics import metrics_service

        services += (metrics_service(*parse_host_port(metrics_listen, "--metrics-listen")),)
    datadir = resolve_datadir(ctx, "devnet" if dev else None)
    if print_config:
        show_config(click.get_current_context(), datadir)
        return
    try:
        if dev:
            spec = load_spec("devnet")
            stored = read_spec(datadir)
            if stored is not None and stored.chain_id != spec.chain_id:
                raise CliError(f"datadir {datadir} belongs to chain {stored.chain_id!r}")
            init_datadir(datadir, spec)
            key_path = datadir / "validator.key"
            if not key_path.exists():
                write_private_file(key_path, spec.dev_keys["validator"] + "\n")
            validator_key = validator_key or key_path
            _ensure_dev_wallet(datadir, spec)
        else:
            if read_spec(datadir) is None:
                raise CliError(
                    f"datadir {datadir} is not initialised; run: o2ocli node init "
                    "(or node start --dev)"
                )
            spec = resolve_spec(ctx, datadir)  # refuses an explicit --chain of another chain
        key = read_key_file(validator_key, spec.wif_version) if validator_key else None
    except (DatadirError, SpecError) as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot use datadir {datadir}: {exc.strerror or exc}") from None
    if key is not None and key.public_key.hash160() not in spec.validators:
        click.echo(
            f"note: {spec.address(key.public_key.hash160())} is not (yet) a validator of "
            f"{spec.chain_id}; it will seal once voted in",
            err=True,
        )
    info = read_node_info(datadir)
    if info and _pid_alive(info.get("pid")):
        raise CliError(f"a node is already running on {datadir} (pid {info['pid']})")
    if detach and not os.environ.get(DETACHED_ENV):  # (detach = true in o2ocli.toml: once)
        start_detached(datadir, ctx.json, log_file)
        return
    setup_logging(log_level, log_json, log_file, log_max_bytes, log_backups)
    if dev:
        warning = ("WARNING: dev mode. The devnet's validator and funds keys are PUBLIC "
                   "(chaindata/devnet.json); never use this chain for anything of value.")
        if os.environ.get(DETACHED_ENV):  # the log file only: keep it one format
            import logging

            logging.getLogger("o2ocli.node").warning(warning.removeprefix("WARNING: "))
        else:
            click.echo(warning, err=True)
    if p2p_listen is None and not dev and not no_listen:
        p2p_listen = ("0.0.0.0", spec.p2p_port)
    config = NodeConfig(
        datadir=datadir,
        spec=spec,
        validator_key=key,
        rpc_host=rpc_host,
        rpc_port=rpc_port,
        rpc_fallback=dev and rpc_port is None,
        rpc_allow_remote=rpc_allow_remote,
        only_with_txs=dev and dev_period == 0,
        block_interval=dev_period if dev and dev_period else 0,
        p2p_listen=p2p_listen,
        connect=peers,
        discover=not no_discover,
        progress_bar=sys.stderr.isatty(),
        max_inbound=max_inbound,
        services=services,
        **({} if dbcache is None else {"dbcache_mb": dbcache}),
    )
    os.umask(0o077)  # like bitcoind: whatever the node creates is the owner's only
    try:
        asyncio.run(run_node(config))
    except NodeStartError as exc:
        raise CliError(str(exc)) from None


def _web_services(http_listen: str | None, public_url: str | None,
                  rate: float) -> tuple[Any, ...]:
    """The public pages service for --http-listen (none without it)."""
    if http_listen is None:
        if public_url is not None:
            raise click.UsageError("--public-url only goes with --http-listen")
        return ()
    from o2ocli.web.links import LinkError, normalize_public_url
    from o2ocli.web.server import WebConfig, web_service

    host, port = parse_host_port(http_listen, "--http-listen")
    try:
        base = normalize_public_url(public_url) if public_url else None
    except LinkError as exc:
        raise click.UsageError(str(exc)) from None
    return (web_service(WebConfig(host=host, port=port, public_url=base, rate=rate)),)


DEV_MNEMONIC = "test test test test test test test test test test test junk"
"""Recovery phrase of the ``dev`` wallet: PUBLIC, like the devnet's keys."""


def _ensure_dev_wallet(datadir: Path, spec: Any) -> None:
    """Create the passphrase-less ``dev`` wallet holding the devnet funds key."""
    from o2ocli.crypto.address import decode_wif
    from o2ocli.crypto.keys import PrivateKey
    from o2ocli.wallet.wallet import WalletExists, create_wallet, list_wallets

    if "dev" in list_wallets(datadir):
        return
    secret, _ = decode_wif(spec.dev_keys["funds"], version=spec.wif_version)
    try:
        create_wallet(datadir, "dev", spec, DEV_MNEMONIC, None,
                      imported=[PrivateKey(secret)]).close()
    except WalletExists:
        return
    click.echo("created the funded 'dev' wallet (NOT encrypted; its keys are public): "
               "o2ocli -w dev wallet balance", err=True)


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@node.command("stop")
def stop_cmd() -> None:
    """Stop the running node gracefully (flushes and closes the database).

    \b
    Example:
        o2ocli node stop
    """
    from o2ocli.node.datadir import read_node_info

    ctx = get_context()
    datadir = resolve_datadir(ctx)
    info = read_node_info(datadir) or {}
    rpc_call(ctx, "stop")
    pid = info.get("pid")
    def running() -> bool:
        if pid:
            return _pid_alive(pid) and not _is_zombie(pid)
        return read_node_info(datadir) is not None

    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline and running():
        time.sleep(0.1)
    if running():
        raise CliError(f"node (pid {pid}) did not stop within {STOP_TIMEOUT:.0f} s")
    emit(ctx, {"stopped": True}, "node stopped")


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return False


@node.command("status")
def status_cmd() -> None:
    """Tip, finality, mempool and sync state of the running node.

    \b
    Example:
        o2ocli node status
        o2ocli --json node status
    """
    from o2ocli.node.syncstatus import format_eta

    ctx = get_context()
    info = rpc_call(ctx, "getinfo")
    clocks = [{"address": p["address"], "clock_offset": p.get("clock_offset")}
              for p in rpc_call(ctx, "getpeerinfo")["peers"]]
    data = {
        "height": info["height"],
        "tip": info["tip"],
        "finalized_height": info["finalized_height"],
        "peers": info["peers"],
        "mempool_size": info["mempool_size"],
        "syncing": info["syncing"],
        "sync_height": info.get("sync_height", info["height"]),
        "chain_id": info["chain_id"],
        "validator": info["validator"],
        "finalized_hash": info.get("finalized_hash"),
        "justified_height": info.get("justified_height"),
        "accused_validators": info.get("accused_validators", []),
        "peer_clocks": clocks,
        "header_height": info.get("header_height", info["height"]),
        "verification_progress": info.get("verification_progress", 1.0),
        "sync_eta_seconds": info.get("sync_eta_seconds"),
    }
    lines = [
        f"chain      {info['chain_id']}",
        f"height     {info['height']}  (finalized {info['finalized_height']}, "
        f"justified {info.get('justified_height')})",
        f"tip        {info['tip']}",
        f"mempool    {info['mempool_size']} txs",
        f"peers      {info['peers']}",
        f"syncing    {'yes' if info['syncing'] else 'no'}"
        + (f" (height {info['height']} of {info.get('sync_height')})" if info["syncing"] else ""),
        f"blocks     {info['height']} of {data['header_height']} headers "
        f"({100 * data['verification_progress']:.1f}% verified)"
        + (f", ETA {format_eta(data['sync_eta_seconds'])}" if info["syncing"] else ""),
    ]
    if info["validator"]:
        lines.append(f"validator  {info['validator']}")
    for accused in data["accused_validators"]:
        lines.append(f"EVIDENCE   validator {accused} signed conflicting finality votes "
                     "(see: o2ocli validator evidence)")
    for clock in clocks:
        offset = clock["clock_offset"]
        lines.append(f"clock      {clock['address']}: "
                     + ("unknown" if offset is None else f"{offset:+.0f} s vs ours"))
    emit(ctx, data, "\n".join(lines))


__all__ = ["node", "EXIT_UNREACHABLE"]


def _register_peer_commands() -> None:
    from .peers import addpeer_cmd, ban_cmd, peers_cmd, unban_cmd
    from .reindex import reindex_cmd

    for command in (peers_cmd, addpeer_cmd, ban_cmd, unban_cmd, reindex_cmd):
        node.add_command(command)


_register_peer_commands()

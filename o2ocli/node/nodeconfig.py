"""How a node process is configured (:class:`NodeConfig`), why it may not
start, and what it checks and adjusts of its environment before it does:
ports, the test clock offset, the open-file limit and the RPC connection cap."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from o2ocli.chainspec import ChainSpec
from o2ocli.crypto.keys import PrivateKey
from o2ocli.rpc.server import DEFAULT_MAX_CONNECTIONS
from o2ocli.storage.coincache import DEFAULT_DBCACHE_MB

__all__ = [
    "CLOCK_OFFSET_ENV",
    "FD_LIMIT_TARGET",
    "NodeAlreadyRunning",
    "NodeConfig",
    "NodeStartError",
    "clock_offset",
    "port_free",
    "raise_fd_limit",
    "rpc_connection_cap",
]

log = logging.getLogger("o2ocli.node")

CLOCK_OFFSET_ENV = "O2OCLI_TEST_CLOCK_OFFSET"
"""Test/ops only: seconds added to this node's clock (e.g. ``20`` to run a
validator whose clock is 20 s fast).  Read only here, at node start."""


class NodeStartError(Exception):
    """The node cannot start (port in use, bad address, …)."""


class NodeAlreadyRunning(NodeStartError):
    """Another node process holds this datadir."""


@dataclass
class NodeConfig:
    """How to run a node."""

    datadir: Path
    spec: ChainSpec
    validator_key: PrivateKey | None = None
    rpc_host: str = "127.0.0.1"
    rpc_port: int | None = None
    """None: the spec's port; if ``rpc_fallback`` and it is taken, a free one."""
    rpc_fallback: bool = False
    rpc_allow_remote: bool = False
    only_with_txs: bool = False
    """Seal only when transactions wait (``--dev-period 0``)."""
    block_interval: int = 0
    """Seconds between this validator's blocks when more than the spec's
    period (``--dev-period N``).  A schedule only: consensus still uses the
    spec's period as the minimum gap, so every node agrees on validity."""
    p2p_listen: tuple[str, int] | None = None
    """Where to accept peers (None: do not listen)."""
    connect: tuple[tuple[str, int], ...] = ()
    """Peers to keep connected to (``--connect``)."""
    use_bootstrap: bool = True
    """Also dial the chain spec's bootstrap peers."""
    discover: bool = True
    """Learn and dial peer addresses from gossip (``--no-discover``: only
    ``--connect`` peers, no bootstrap peers)."""
    progress_bar: bool = False
    """Show initial sync as a progress bar on stderr (a terminal); else log lines."""
    max_inbound: int = 32
    dbcache_mb: int = DEFAULT_DBCACHE_MB
    """``--dbcache``: MiB for the UTXO cache (three quarters) and LevelDB's
    block cache (a quarter); 0 writes every block's changes through."""
    """Most inbound peers (``--max-inbound``); when full, a newcomer may evict one."""
    services: tuple[Callable[[Any], Any], ...] = ()
    """Extra servers run with the node (the public pages, ``--http-listen``):
    each is called with the node and returns an object with ``async start()``
    (returning its node-info entries) and ``async stop()``."""


def port_free(host: str, port: int) -> bool:
    """True if ``host:port`` can be bound now by a listening server.  Binds with
    ``SO_REUSEADDR`` as asyncio's servers do, so a port whose old connections
    linger in ``TIME_WAIT`` (a node just restarted) counts as free."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        if os.name == "posix":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def clock_offset() -> float:
    """Seconds added to this node's clock (:data:`CLOCK_OFFSET_ENV`; 0 if unset)."""
    raw = os.environ.get(CLOCK_OFFSET_ENV, "").strip()
    if not raw:
        return 0.0
    try:
        offset = float(raw)
    except ValueError:
        raise NodeStartError(f"{CLOCK_OFFSET_ENV} must be a number of seconds, got {raw!r}") \
            from None
    if not -86400 <= offset <= 86400:
        raise NodeStartError(f"{CLOCK_OFFSET_ENV} must be within a day, got {raw!r}")
    return offset


FD_LIMIT_TARGET = 65536
"""Open files the node asks for at start (capped by the hard limit), like Bitcoin Core."""


def raise_fd_limit(target: int = FD_LIMIT_TARGET) -> int:
    """Raise the soft limit on open files towards ``target`` (at most the hard limit), so
    LevelDB, peers and RPC have room; returns the soft limit now in force."""
    try:
        import resource
    except ImportError:  # not POSIX
        return -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = target if hard == resource.RLIM_INFINITY else min(target, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, wanted, exc)
            return soft
        log.info("raised the open-file limit from %d to %d", soft, wanted)
        return wanted
    return soft


def rpc_connection_cap() -> int:
    """How many RPC connections may be open at once: 128, or an eighth of the open-file
    limit when that is lower (at least 8), so peers and LevelDB keep their descriptors."""
    try:
        import resource
    except ImportError:  # not POSIX
        return DEFAULT_MAX_CONNECTIONS
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return DEFAULT_MAX_CONNECTIONS
    return max(8, min(DEFAULT_MAX_CONNECTIONS, soft // 8))

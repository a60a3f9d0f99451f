"""The node process: one asyncio loop running the RPC server, the block
producer (for a validator) and housekeeping, over one chain database.

Everything that changes chain or mempool state runs on the event loop thread
without awaiting in between, so there are no data races; signature batches
are verified on worker threads (libsecp256k1 releases the GIL).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from typing import Any

from o2ocli.asyncutil import cancel_and_wait
from o2ocli.consensus.block import witness_checks
from o2ocli.consensus.errors import BlockInvalid
from o2ocli.core.block import Block
from o2ocli.core.finality import Evidence, FinalityVote
from o2ocli.core.tx import Tx
from o2ocli.crypto.batch import CachingVerifier, ProcessVerifier
from o2ocli.p2p.manager import PeerManager
from o2ocli.rpc.server import RpcServer, is_loopback_host
from o2ocli.storage.chainstate import ChainStateError, SchemaMismatch, TipChange
from o2ocli.storage.coincache import leveldb_options
from o2ocli.storage.db import Database, DatabaseLocked

from .api import build_methods
from .chain import ChainManager, ReindexRequired
from .datadir import (
    chaindata_path,
    cookie_path,
    node_info_path,
    read_node_info,
    write_node_info,
)
from .gcpolicy import tune_gc
from .mempool import Mempool, MempoolEntry, MempoolError
from .metrics import NodeMetrics
from .nodeconfig import (
    CLOCK_OFFSET_ENV,
    NodeAlreadyRunning,
    NodeConfig,
    NodeStartError,
    clock_offset,
    port_free,
    raise_fd_limit,
    rpc_connection_cap,
)
from .producer import Producer, Proposals
from .syncstatus import SyncTracker, format_eta
from .votepool import VoteOutcome

__all__ = [
    "CLOCK_OFFSET_ENV",
    "Node",
    "NodeAlreadyRunning",
    "NodeConfig",
    "NodeStartError",
    "raise_fd_limit",
    "rpc_connection_cap",
    "run_node",
]

log = logging.getLogger("o2ocli.node")

HOUSEKEEPING_SECONDS = 30


class Node:
    """A running node.  Create, ``await start()``, then ``await wait_stopped()``."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.spec = config.spec
        self.datadir = config.datadir
        self.validator_key = config.validator_key
        self.validator_address = (
            config.validator_key.public_key.hash160() if config.validator_key else None
        )
        self.proposals = Proposals()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self.db: Database | None = None
        self.rpc: Any = None
        self.rpc_url = ""
        self.producer: Producer | None = None
        self.p2p: PeerManager | None = None
        self.services: list[Any] = []
        self.metrics = NodeMetrics(self)
        self.sync_tracker = SyncTracker()

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Open the database, start RPC and (for a validator) the producer."""
        cfg = self.config
        if not is_loopback_host(cfg.rpc_host) and not cfg.rpc_allow_remote:
            raise NodeStartError(
                f"refusing to serve RPC on non-loopback address {cfg.rpc_host}; "
                "pass --rpc-allow-remote if you really mean it"
            )
        try:
            self.db = Database(chaindata_path(self.datadir),
                               **leveldb_options(cfg.dbcache_mb))
        except DatabaseLocked:
            info = read_node_info(self.datadir) or {}
            pid = f" (pid {info['pid']})" if "pid" in info else ""
            raise NodeAlreadyRunning(
                f"a node is already running on {self.datadir}{pid}"
            ) from None
        spec = self.spec
        try:
            offset = clock_offset()
        except NodeStartError:
            self.db.close()
            raise
        if offset:
            log.warning("%s=%s: this node's clock runs %+.0f s off (test/ops only)",
                        CLOCK_OFFSET_ENV, os.environ[CLOCK_OFFSET_ENV], offset)
        self.clock = (lambda: time.time() + offset) if offset else time.time
        self.verifier = CachingVerifier(ProcessVerifier())
        try:
            self.chain = ChainManager(self.db, spec, verifier=self.verifier, clock=self.clock,
                                      dbcache=cfg.dbcache_mb * (3 << 20) // 4)
        except ChainStateError as exc:
            self.db.close()
            self.verifier.close()
            if isinstance(exc, (ReindexRequired, SchemaMismatch)):
                raise NodeStartError(str(exc)) from None
            raise NodeStartError(f"cannot open the chain database: {exc}") from None
        self.mempool = Mempool(
            self.chain.state,
            spec.consensus_params,
            min_fee_rate=spec.min_relay_fee,
            verifier=self.verifier,
        )
        port = cfg.rpc_port if cfg.rpc_port is not None else spec.rpc_port
        if cfg.rpc_fallback and port and not port_free(cfg.rpc_host, port):
            log.warning("RPC port %s:%d is taken by another program; using a random free port "
                        "(choose one with --rpc-listen)", cfg.rpc_host, port)
            port = 0
        methods = build_methods(self)
        methods.observe = self.metrics.observe_rpc
        self.rpc = RpcServer(
            methods,
            host=cfg.rpc_host,
            port=port,
            cookie_path=cookie_path(self.datadir),
            allow_remote=cfg.rpc_allow_remote,
            max_connections=rpc_connection_cap(),
        )
        try:
            bound = await self.rpc.start()
        except OSError as exc:
            self.db.close()
            raise NodeStartError(
                f"cannot serve RPC on {cfg.rpc_host}:{port}: {exc.strerror or exc}"
            ) from None
        bootstrap = []
        if cfg.use_bootstrap and cfg.discover:
            for item in spec.bootstrap:
                host, _, port = item.rpartition(":")
                if port.isdigit():
                    bootstrap.append((host.strip("[]"), int(port)))
        self.p2p = PeerManager(self, listen=cfg.p2p_listen, connect=cfg.connect,
                               bootstrap=bootstrap, max_inbound=cfg.max_inbound,
                               discover=cfg.discover)
        try:
            await self.p2p.start()
        except OSError as exc:
            await self.rpc.stop()
            self.rpc = None
            self.db.close()
            self.verifier.close()
            host, port = cfg.p2p_listen or ("?", 0)
            raise NodeStartError(
                f"cannot listen for peers on {host}:{port}: {exc.strerror or exc} "
                "(choose another with --listen, or --no-listen)"
            ) from None
        host = f"[{cfg.rpc_host}]" if ":" in cfg.rpc_host else cfg.rpc_host
        self.rpc_url = f"http://{host}:{bound}"
        extra_info = await self._start_services()
        write_node_info(
            self.datadir,
            {
                **extra_info,
                "pid": os.getpid(),
                "rpc": self.rpc_url,
                "chain_id": spec.chain_id,
                "validator": spec.address(self.validator_address)
                if self.validator_address
                else None,
                "started": int(time.time()),
            },
        )
        if self.validator_key is not None:
            self.producer = Producer(
                self.chain,
                self.mempool,
                self.validator_key,
                submit=self.submit_block,
                proposals=self.proposals,
                only_with_txs=cfg.only_with_txs,
                interval=cfg.block_interval,
                can_seal=lambda: not self.syncing(),
                clock=self.clock,
            )
            self._tasks.append(asyncio.create_task(self.producer.run(), name="producer"))
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="housekeeping"))
        self._tasks.append(asyncio.create_task(self._sync_progress(), name="sync-progress"))
        log.info(
            "node started: chain %s height %d tip %s rpc %s%s",
            spec.chain_id,
            self.chain.height,
            self.chain.tip.hash.hex()[:16],
            self.rpc_url,
            f" validator {spec.address(self.validator_address)}" if self.validator_address else "",
        )

    async def _start_services(self) -> dict[str, Any]:
        """Start the configured extra servers; on failure stop everything."""
        info: dict[str, Any] = {}
        for make in self.config.services:
            service = make(self)
            try:
                info.update(await service.start() or {})
            except (OSError, NodeStartError) as exc:
                await self.shutdown()
                if isinstance(exc, NodeStartError):
                    raise
                raise NodeStartError(f"cannot start a server: {exc.strerror or exc}") from None
            self.services.append(service)
        return info

    def request_stop(self) -> None:
        """Ask the node to shut down (signal handlers and the ``stop`` RPC)."""
        self._stop.set()

    async def wait_stopped(self) -> None:
        """Run until a stop is requested, then shut down cleanly."""
        await self._stop.wait()
        await self.shutdown()

    async def shutdown(self) -> None:
        """Stop tasks, the RPC server and close the database (idempotent)."""
        await cancel_and_wait(self._tasks)
        while self.services:
            await self.services.pop().stop()
        if self.p2p is not None:
            await self.p2p.stop()
            self.p2p = None
        if self.rpc is not None:
            await self.rpc.stop()
            self.rpc = None
        node_info_path(self.datadir).unlink(missing_ok=True)
        if self.db is not None and not self.db.closed:
            chain = getattr(self, "chain", None)
            if chain is not None:
                chain.state.flush()  # the UTXO cache, with its tip, in one batch
            self.db.close()
            log.info("node stopped; database closed")
        verifier = getattr(self, "verifier", None)
        if verifier is not None:
            verifier.close()

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_SECONDS)
            expired = self.mempool.expire(int(time.time()))
            if expired:
                log.info("expired %d mempool transactions", len(expired))

    async def _sync_progress(self) -> None:
        """Report initial sync: a click progress bar on a terminal, log lines otherwise."""
        import click

        bar: Any = None
        last_log = 0.0
        while True:
            await asyncio.sleep(1.0)
            if not self.syncing():
                if bar is not None:
                    bar.render_finish()
                    bar = None
                    log.info("sync finished at height %d", self.chain.height)
                continue
            target = max(self.p2p.sync.target_height() if self.p2p else 0, self.chain.height)
            height = self.chain.height
            self.sync_tracker.sample(time.monotonic(), height)
            if self.config.progress_bar:
                if bar is None:
                    bar = click.progressbar(length=max(target, 1), label="syncing",
                                            file=sys.stderr, show_pos=True)
                bar.length = max(target, 1)
                bar.update(max(0, height - bar.pos))
            elif time.monotonic() - last_log >= 5:
                last_log = time.monotonic()
                report = self.sync_report()
                log.info("syncing: blocks %d of %d headers (%.1f%%), ETA %s, %d peers",
                         height, report["header_height"],
                         100.0 * report["verification_progress"],
                         format_eta(report["sync_eta_seconds"]), self.peer_count())

    # ---------------------------------------------------------------- state
    def peer_count(self) -> int:
        """Peers that completed the handshake."""
        return len(self.p2p.ready_peers()) if self.p2p is not None else 0

    def syncing(self) -> bool:
        """True while catching up with peers (blocks queued or headers awaited)."""
        return self.p2p is not None and self.p2p.sync.syncing()

    def sync_report(self) -> dict[str, Any]:
        """Headers vs blocks, verification progress and ETA (see :mod:`.syncstatus`)."""
        headers = self.p2p.sync.target_height() if self.p2p is not None else 0
        return self.sync_tracker.report(self.chain.height, headers, self.syncing())

    def prefetch_block(self, block: Block) -> None:
        """Verify the signatures of a block that will connect later ahead, on
        the signature workers while they are idle (see CachingVerifier.prefetch),
        and hash its txids, wtxids and merkle root there (Block.adopt_ids)."""
        self.verifier.prefetch(witness_checks(block, self.spec.consensus_params.chain_id))
        hash_ahead = getattr(self.verifier, "hash_ahead", None)
        parts = block.id_parts_once() if hash_ahead is not None else None
        if parts is not None:  # (a block read ahead comes here twice)
            hash_ahead(parts, block.adopt_ids)

    def submit_block(
        self, block: Block, now: int | None = None, source: Any = None
    ) -> TipChange:
        """Connect a block (own or received), bring the mempool along, relay."""
        started = time.perf_counter()
        change = self.chain.add_block(block, now=now)
        if change:
            received = source is not None
            self.metrics.block_connected(change, time.perf_counter() - started, self.chain,
                                         self.validator_address if received else None)
            if received:
                log.debug("block %d %s connected (%d txs, from %s)", block.height,
                          block.hash.hex()[:16], len(block.txs), getattr(source, "address", "?"))
            if source is not None and self.producer is not None:
                self._note_arrival(block)
            self._apply_tip_change(change, source)
        return change

    def _note_arrival(self, block: Block) -> None:
        """Measure how late an in-turn block from a peer was connected here."""
        if block.header.difficulty != 2 or self.producer is None:
            return
        parent = self.chain.state.get_index(block.header.prev_hash)
        if parent is None:
            return
        due = parent.header.time + self.spec.period
        if block.header.time > due + 2:  # sealed late on purpose (a catch-up): not lag
            return
        self.producer.note_arrival(time.time() - due)

    def _apply_tip_change(self, change: TipChange, source: Any = None) -> None:
        now = int(time.time())
        for block in change.connected:
            self.mempool.remove_for_block(block)
        if change.disconnected:
            back = [tx for block in reversed(change.disconnected) for tx in block.txs]
            before = set(e.txid for e in self.mempool.entries())
            self.mempool.readd_txs(back, now)
            if self.p2p is not None:
                for entry in self.mempool.entries():
                    if entry.txid not in before:
                        self.p2p.announce_tx(entry.txid)  # relayed again after a reorg
            log.info("reorganised: %d blocks disconnected, %d connected; tip %d",
                     len(change.disconnected), len(change.connected), self.chain.height)
        if self.p2p is not None and change.connected:
            self.p2p.announce_blocks(list(change.connected), source)
        if change.connected:
            accepted = self.chain.finality.retry_pending()
            if accepted:
                self._after_votes(accepted, [], None)
            self.vote()
        if self.producer is not None:
            self.producer.poke()

    # -------------------------------------------------------------- finality
    def vote(self) -> FinalityVote | None:
        """As a validator, vote for the tip if the finality rules allow it (the
        vote is persisted first), count it, and relay it."""
        if self.validator_key is None:
            return None
        tip = self.chain.tip
        if self.syncing() and tip.header.time < time.time() - 60:
            return None  # catching up: vote once at the end, not for every old block
        vote = self.chain.finality.make_own_vote(self.validator_key)
        if vote is None:
            return None
        outcome, _ = self.chain.finality.add_vote(vote)
        if outcome == VoteOutcome.NEW:
            self._after_votes([vote], [], None)
        return vote

    def on_votes(self, votes: list[FinalityVote], source: Any = None) -> int:
        """Votes from a peer (or RPC): count, relay, and punish only votes that
        are invalid whatever this node knows.  Returns how many were new."""
        new: list[FinalityVote] = []
        evidence: list[Evidence] = []
        for vote in votes:
            try:
                outcome, ev = self.chain.finality.add_vote(vote)
            except BlockInvalid as exc:
                if source is not None and self.p2p is not None:
                    self.p2p.misbehaving(source, 100, f"invalid finality vote: {exc.reason}")
                break
            if outcome == VoteOutcome.NEW:
                new.append(vote)
            if ev is not None:
                evidence.append(ev)
        if new or evidence:
            self._after_votes(new, evidence, source)
        return len(new)

    def on_evidence(self, items: list[Evidence], source: Any = None) -> int:
        """Evidence from a peer: store and relay what is valid and new."""
        new = [ev for ev in items if self.chain.finality.add_evidence(ev)]
        if new and self.p2p is not None:
            self.p2p.relay_evidence(new, source)
        return len(new)

    def _after_votes(self, new: list[FinalityVote], evidence: list[Evidence],
                     source: Any) -> None:
        before = self.chain.finalized_height
        change = self.chain.on_votes_changed()
        if self.p2p is not None:
            if new:
                self.p2p.relay_votes(new, source)
            if evidence:
                self.p2p.relay_evidence(evidence, None)
        if self.chain.finalized_height > before:
            log.debug("finalized height %d", self.chain.finalized_height)
        if change:
            self._apply_tip_change(change)

    def submit_tx(self, tx: Tx, source: Any = None) -> MempoolEntry:
        """Accept a transaction into the mempool and relay it (raises MempoolError)."""
        try:
            entry = self.mempool.accept(tx, int(time.time()))
        except MempoolError as exc:
            self.metrics.tx_refused(exc.reason)
            raise
        self.metrics.txs_accepted.inc()
        if self.p2p is not None:
            self.p2p.announce_tx(entry.txid, source)
        if self.producer is not None and self.config.only_with_txs:
            self.producer.poke()
        return entry

    def submit_txs(
        self, txs: list[Tx], sources: list[Any] | None = None
    ) -> list[MempoolEntry | MempoolError]:
        """Accept many transactions, verifying their signatures in one batch, and
        relay the accepted ones (not back to ``sources[i]``, the peer that sent
        ``txs[i]``)."""
        results = self.mempool.accept_many(txs, int(time.time()))
        for result in results:
            if isinstance(result, MempoolEntry):
                self.metrics.txs_accepted.inc()
            else:
                self.metrics.tx_refused(result.reason)
        if self.p2p is not None:
            for i, result in enumerate(results):
                if isinstance(result, MempoolEntry):
                    self.p2p.announce_tx(result.txid, sources[i] if sources else None)
        if self.producer is not None and self.config.only_with_txs:
            self.producer.poke()
        return results


async def run_node(config: NodeConfig) -> None:
    """Start a node, install SIGINT/SIGTERM handlers and run until stopped."""
    raise_fd_limit()
    node = Node(config)
    await node.start()
    tune_gc()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, node.request_stop)
    try:
        await node.wait_stopped()
    finally:
        await node.shutdown()

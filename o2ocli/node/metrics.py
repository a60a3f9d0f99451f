"""Prometheus metrics of one node (``node start --metrics-listen HOST:PORT``).

Every node keeps a :class:`NodeMetrics` with its own
:class:`~prometheus_client.CollectorRegistry` (never the process-global one, so
two nodes in one process, as in tests, do not mix their numbers).  Most values
are read from the node's state when Prometheus scrapes (:class:`StateCollector`);
only events that leave no trace in the state are counted as they happen (a
counter increment or a histogram observation: about a microsecond each).

The names, types and meanings are listed in ``docs/metrics.rst``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from o2ocli.consensus.poa import DIFF_IN_TURN
from o2ocli.rpc.metrics_http import MetricsHttpServer
from o2ocli.rpc.server import is_loopback_host
from o2ocli.storage.chainstate import ChainStateError

from .nodeconfig import NodeStartError

__all__ = ["NodeMetrics", "StateCollector", "MetricsService", "metrics_service"]

log = logging.getLogger("o2ocli.node")

CONNECT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds: block connect time (validation and the database write)."""
RPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
"""Seconds: one RPC method call (without HTTP)."""


class NodeMetrics:
    """The metrics registry of one node and the event counters its hot paths bump."""

    def __init__(self, node: Any) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        reg = self.registry
        self.txs_accepted = Counter(
            "o2o_txs_accepted", "Transactions accepted into the mempool (RPC and peers).",
            registry=reg)
        self.txs_refused = Counter(
            "o2o_txs_refused", "Transactions refused by the mempool, by reason.",
            ["reason"], registry=reg)
        self.block_connect = Histogram(
            "o2o_block_connect_seconds",
            "Time to validate and store a block (own or received) that was accepted.",
            buckets=CONNECT_BUCKETS, registry=reg)
        self.blocks_connected = Counter(
            "o2o_blocks_connected", "Blocks connected to the best chain (own and received).",
            registry=reg)
        self.missed_turns = Counter(
            "o2o_missed_turns",
            "Blocks of this validator's turn that another validator sealed out of turn.",
            registry=reg)
        self.rpc_requests = Counter(
            "o2o_rpc_requests", "RPC method calls, by method (failed calls included).",
            ["method"], registry=reg)
        self.rpc_seconds = Histogram(
            "o2o_rpc_request_seconds", "Time to run one RPC method call, by method.",
            ["method"], buckets=RPC_BUCKETS, registry=reg)
        self._rpc_children: dict[str, tuple[Any, Any]] = {}
        """Per-method counter and histogram children (``labels()`` is slower)."""
        reg.register(StateCollector(node))

    def observe_rpc(self, method: str, seconds: float) -> None:
        """One RPC call of a known ``method`` took ``seconds``."""
        children = self._rpc_children.get(method)
        if children is None:
            children = (self.rpc_requests.labels(method), self.rpc_seconds.labels(method))
            self._rpc_children[method] = children
        children[0].inc()
        children[1].observe(seconds)

    def block_connected(self, change: Any, seconds: float, chain: Any,
                        validator: bytes | None) -> None:
        """``change`` connected in ``seconds``; with ``validator`` (received blocks
        on a validator), count the out-of-turn blocks at heights of its turn."""
        self.block_connect.observe(seconds)
        self.blocks_connected.inc(len(change.connected))
        if validator is None:
            return
        for block in change.connected:
            if block.header.difficulty == DIFF_IN_TURN:
                continue
            try:
                snap = chain.snapshot(block.header.prev_hash)
            except ChainStateError:
                continue
            if snap.in_turn(block.height) == validator:
                self.missed_turns.inc()

    def tx_refused(self, reason: str) -> None:
        self.txs_refused.labels(reason).inc()

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


class StateCollector(Collector):
    """Gauges read from the node's state at scrape time (nothing on the hot path)."""

    def __init__(self, node: Any) -> None:
        self.node = node

    def collect(self) -> Iterator[Metric]:
        node = self.node
        chain = getattr(node, "chain", None)
        if chain is None:  # not started yet
            return
        yield _gauge("o2o_tip_height", "Height of the best block.", chain.height)
        yield _gauge("o2o_tip_timestamp_seconds", "Block time of the best block (Unix).",
                     chain.tip.header.time)
        yield _gauge("o2o_finalized_height", "Height of the last finalized block.",
                     chain.finalized_height)
        p2p = node.p2p
        headers = max(p2p.sync.target_height(), chain.height) if p2p is not None else chain.height
        yield _gauge("o2o_header_height", "Best header height known from peers (or the tip).",
                     headers)
        yield _gauge("o2o_syncing", "1 while catching up with peers, else 0.",
                     1 if node.syncing() else 0)
        yield _gauge("o2o_sync_progress", "Blocks verified / headers known (0..1).",
                     chain.height / headers if headers else 1.0)
        peers = GaugeMetricFamily("o2o_peers", "Connected peers that completed the handshake.",
                                  labels=["direction"])
        ready = p2p.ready_peers() if p2p is not None else []
        inbound = sum(1 for peer in ready if peer.inbound)
        peers.add_metric(["inbound"], inbound)
        peers.add_metric(["outbound"], len(ready) - inbound)
        yield peers
        yield _gauge("o2o_banned_peers", "Hosts banned right now.",
                     len(p2p.banned_list()) if p2p is not None else 0)
        yield _gauge("o2o_mempool_txs", "Transactions in the mempool.", len(node.mempool))
        yield _gauge("o2o_mempool_bytes", "Serialized size of the mempool's transactions.",
                     node.mempool.total_bytes)
        producer = getattr(node, "producer", None)
        yield _gauge("o2o_validator", "1 if this node seals blocks with a validator key.",
                     1 if producer is not None else 0)
        yield CounterMetricFamily("o2o_blocks_sealed", "Blocks sealed by this validator.",
                                  value=producer.sealed if producer is not None else 0)
        verifier = getattr(node, "verifier", None)
        yield CounterMetricFamily(
            "o2o_signature_cache_hits", "Signature checks answered by the signature cache.",
            value=getattr(verifier, "hits", 0))
        yield CounterMetricFamily(
            "o2o_signatures_verified_ahead",
            "Signatures of blocks waiting for their parent verified ahead (and passed).",
            value=getattr(verifier, "prefetched", 0))


class MetricsService:
    """The node service behind ``--metrics-listen`` (see :attr:`NodeConfig.services`)."""

    def __init__(self, node: Any, host: str, port: int) -> None:
        self.server = MetricsHttpServer(node.metrics.exposition, CONTENT_TYPE_LATEST, host, port)

    async def start(self) -> dict[str, Any]:
        server = self.server
        try:
            await server.start()
        except OSError as exc:
            raise NodeStartError(f"cannot serve metrics on {server.host}:{server.port}: "
                                 f"{exc.strerror or exc} (choose another --metrics-listen)") \
                from None
        if is_loopback_host(server.host):
            log.info("metrics at %s", server.url)
        else:
            log.warning("metrics at %s are reachable from other hosts", server.url)
        return {"metrics": server.url}

    async def stop(self) -> None:
        await self.server.stop()


def metrics_service(host: str, port: int) -> Any:
    """A :attr:`NodeConfig.services` entry serving the node's metrics."""
    return lambda node: MetricsService(node, host, port)

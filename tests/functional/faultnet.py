"""Validator networks whose every link goes through a :class:`NetProxy`, a
payment load generator, and a finality invariant checker.

* :class:`ProxiedNetwork` builds N validators from ``chain spec new``; node
  ``i`` dials each lower-numbered node through the proxy listener of that
  directed link, with ``--no-discover`` so that no node ever dials another's
  real listening port.
* :class:`PaymentLoad` pre-signs independent payments of the spec's funds key
  and submits them with ``sendrawtxs`` at a steady rate from a thread.
* :class:`FinalityMonitor` polls every running node's ``finalized_height``
  and the main-chain hash at each height up to it, remembering every
  (height -> hash) a node ever called final; two different final hashes at one
  height (on two nodes, or on one node over time) are violations.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from o2ocli.chainspec import load_spec
from o2ocli.core.tx import Outpoint
from o2ocli.node.datadir import read_key_file
from o2ocli.testing.load import payment_txs, split_txs

from .framework import Network, NodeProcess, wait_until
from .netproxy import NetProxy


class ProxiedNetwork:
    """N validators meshed through ``proxy`` (one TCP link per pair)."""

    def __init__(self, root: Path, factory: Callable[[str], NodeProcess], validators: int,
                 proxy: NetProxy, period: int = 1) -> None:
        self.net = Network(root, factory, validators, period)
        self.nodes = self.net.nodes
        self.proxy = proxy
        self.names = [n.name for n in self.nodes]
        for node in self.nodes:
            proxy.add_node(node.name, node.p2p_port)

    def args(self, index: int) -> list[str]:
        """``node start`` arguments of validator ``index`` (dials lower indexes)."""
        me = self.nodes[index].name
        peers = [a for other in self.nodes[:index]
                 for a in ("--connect", f"127.0.0.1:{self.proxy.link_port(me, other.name)}")]
        return ["--validator-key", self.net.key(index), "--no-discover", *peers]

    def start_all(self) -> None:
        for i, node in enumerate(self.nodes):
            node.start(*self.args(i), wait=False)
        for node in self.nodes:
            node.wait_ready(60)

    def restart(self, index: int) -> None:
        self.nodes[index].start(*self.args(index), timeout=60)

    def running(self) -> list[NodeProcess]:
        return [n for n in self.nodes if n.running()]

    def ready_peer_count(self, node: NodeProcess) -> int:
        return sum(1 for p in node.rpc("getpeerinfo")["peers"] if p["ready"])

    def wait_mesh(self, timeout: float = 60) -> None:
        want = len(self.nodes) - 1
        wait_until(lambda: all(self.ready_peer_count(n) == want for n in self.nodes),
                   timeout, "a full mesh through the proxy")

    def finalized(self, node: NodeProcess) -> int:
        return node.rpc("getinfo")["finalized_height"]

    def wait_finality_advances(self, timeout: float, what: str,
                               nodes: Sequence[NodeProcess] | None = None) -> None:
        """Wait until every node (all running ones by default) has a finalized
        height above the highest any of them has now."""
        nodes = list(nodes) if nodes is not None else self.running()
        base = max(self.finalized(n) for n in nodes)
        wait_until(lambda: all(self.finalized(n) > base for n in nodes), timeout,
                   f"{what}: finality to pass height {base} on "
                   + ", ".join(n.name for n in nodes), interval=0.25)

    def converged(self) -> dict[str, Any] | None:
        """The common (tip, utxo_set_hash) if every running node agrees, else None.
        The nodes are asked at once: hashing a big UTXO set takes longer than a
        block period, so asking one after the other would rarely see one tip."""
        nodes = self.running()
        with ThreadPoolExecutor(len(nodes)) as pool:
            infos = list(pool.map(lambda n: n.rpc("getutxosetinfo"), nodes))
        if len({i["tip"] for i in infos}) == 1 and len({i["utxo_set_hash"] for i in infos}) == 1:
            return infos[0]
        return None


class PaymentLoad:
    """Pre-signed independent payments submitted at ``rate`` per second."""

    def __init__(self, network: ProxiedNetwork, count: int) -> None:
        self.network = network
        spec = load_spec(network.net.spec_path)
        key = read_key_file(Path(network.net.spec_info["funds_key"]), spec.wif_version)
        node = network.nodes[0]
        utxos = node.rpc("getutxos", spec.address(key.public_key.hash160()))
        best = max(utxos, key=lambda u: spec.amount(u["amount"]))
        coin = (Outpoint(bytes.fromhex(best["txid"]), best["index"]), spec.amount(best["amount"]))
        splits, coins = split_txs(spec.chain_id, key, coin, count, value=1_000_000)
        for tx in splits:
            node.rpc("sendrawtx", tx.to_bytes().hex())
        ids = [t.txid.hex() for t in splits]
        wait_until(lambda: all(node.rpc("gettx", t)["height"] is not None for t in ids), 60,
                   "the coin split to be mined")
        self.raws = [t.to_bytes().hex() for t in payment_txs(spec.chain_id, key, coins)]
        self.accepted = 0
        self.next = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, rate: int) -> None:
        """Submit ``rate`` txs per second (batches every 100 ms) until stopped or
        out of txs; each batch goes to the first running node."""
        def run() -> None:
            step = max(1, rate // 10)
            tick = time.monotonic()
            while not self._stop.is_set() and self.next < len(self.raws):
                batch = self.raws[self.next : self.next + step]
                self.next += len(batch)
                for node in self.network.running():
                    try:
                        out = node.client().call("sendrawtxs", batch)
                    except Exception:  # noqa: BLE001 - node busy or just killed: next one
                        continue
                    self.accepted += sum(1 for r in out if isinstance(r, str))
                    break
                tick += 0.1
                self._stop.wait(max(0.0, tick - time.monotonic()))

        self._thread = threading.Thread(target=run, name="payment-load", daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> None:
        """Wait until every tx was submitted (or ``timeout``)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)


class FinalityMonitor:
    """Records every (height -> final hash) each node reports; see module doc."""

    RECHECK = 6
    """Heights below a node's finalized height fetched again every 5th poll."""

    def __init__(self, network: ProxiedNetwork, context: str, interval: float = 0.3) -> None:
        self.network = network
        self.context = context
        self.interval = interval
        self.final: dict[int, tuple[str, str]] = {}
        self.by_node: dict[str, dict[int, str]] = {n: {} for n in network.names}
        self.highest: dict[str, int] = {n: 0 for n in network.names}
        self.violations: list[str] = []
        self.polls = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, name: str, height: int, block_hash: str) -> None:
        mine = self.by_node[name]
        before = mine.get(height)
        if before is not None and before != block_hash:
            self.violations.append(f"{name} changed its final block at height {height}: "
                                   f"{before[:16]} then {block_hash[:16]}")
        mine[height] = block_hash
        other = self.final.get(height)
        if other is None:
            self.final[height] = (block_hash, name)
        elif other[0] != block_hash:
            self.violations.append(f"conflicting final blocks at height {height}: "
                                   f"{other[1]} {other[0][:16]}, {name} {block_hash[:16]}")

    def poll_node(self, node: NodeProcess) -> None:
        client = node.client()
        final = client.call("getinfo")["finalized_height"]
        start = self.highest[node.name] + 1
        if self.polls % 5 == 0:
            start = min(start, final - self.RECHECK + 1)
        start = max(1, start)
        for height in range(start, final + 1):
            self.record(node.name, height, client.call("getblockhash", height))
        self.highest[node.name] = max(self.highest[node.name], final)

    def poll(self) -> None:
        for node in self.network.running():
            try:
                self.poll_node(node)
            except Exception:  # noqa: BLE001 - killed or busy; polled again shortly
                continue
        self.polls += 1

    def start(self) -> None:
        def run() -> None:
            while not self._stop.is_set():
                self.poll()
                self._stop.wait(self.interval)

        self._thread = threading.Thread(target=run, name="finality-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
        self.poll()  # a last look at every node

    def check(self) -> None:
        """Fail (with the context, e.g. the seed) if any violation was seen."""
        assert not self.violations, (f"[{self.context}] finality safety violated: "
                                     + "; ".join(self.violations[:5]))

    def summary(self) -> str:
        return (f"{len(self.final)} final heights checked, highest "
                + ", ".join(f"{n}={h}" for n, h in self.highest.items()))

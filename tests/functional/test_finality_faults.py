"""Finality under network faults: partitions, a SIGKILLed validator, a slow
in-turn validator, and a seeded randomized mix.

Every link between validators goes through a :class:`NetProxy` (nodes run
with ``--no-discover``).  A :class:`FinalityMonitor` records every final
block each node reports, so any two different final blocks at one height (on
two nodes, or on one node over time) fail the test; after each fault heals,
every node's finalized height must move past where any node was.

Randomized runs take their seed from ``O2O_FAULT_SEED`` (random if unset; it
is printed in every failure message so a run can be replayed); the total
budget of :func:`test_randomized_faults` is ``O2O_FAULT_SECONDS`` (default 60)
or ``O2O_SOAK_SECONDS`` for a long soak.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from .faultnet import FinalityMonitor, PaymentLoad, ProxiedNetwork
from .framework import Network, wait_until
from .netproxy import NetProxy

pytestmark = pytest.mark.slow

HEAL_TIMEOUT = 60.0
"""Seconds after a fault ends within which finality must advance on every node."""
LOAD_RATE = 150
"""Payments per second submitted during the scenarios."""


def fault_seed() -> int:
    value = os.environ.get("O2O_FAULT_SEED")
    return int(value) if value else random.SystemRandom().randrange(2**32)


@dataclass
class Scenario:
    """One proxied network under load, watched by a finality monitor."""

    seed: int
    proxy: NetProxy
    network: ProxiedNetwork
    load: PaymentLoad
    monitor: FinalityMonitor
    rng: random.Random
    ctx: str
    log: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.log.append(f"{time.strftime('%H:%M:%S')} {text}")

    def heal_and_check(self, what: str) -> None:
        """End every fault, then require finality to advance on all nodes."""
        self.proxy.heal()
        self.proxy.clear_delays()
        for i, node in enumerate(self.network.nodes):
            if not node.running():
                self.network.restart(i)
        self.note(f"healed after {what}")
        try:
            self.network.wait_finality_advances(HEAL_TIMEOUT, f"[{self.ctx}] after {what}",
                                                self.network.nodes)
        except AssertionError as exc:
            self.monitor.poll()
            finals = {n.name: self.network.finalized(n) for n in self.network.nodes}
            unsafe = "; ".join(self.monitor.violations[:3]) or "none"
            raise AssertionError(f"{exc}; finalized {finals}; {self.monitor.summary()}; "
                                 f"safety violations: {unsafe}; log: {self.log[-8:]}") from None
        self.monitor.check()

    def views(self) -> list[str]:
        """Each node's height, tip, finalized height and ready peers (for failures)."""
        out = []
        for node in self.network.running():
            info = node.rpc("getinfo")
            peers = sum(p["ready"] for p in node.rpc("getpeerinfo")["peers"])
            out.append(f"{node.name}: height {info['height']} tip {info['tip'][:12]} "
                       f"final {info['finalized_height']} peers {peers}")
        return out

    def finish(self) -> None:
        """Stop the load, then require safety, agreement and links only via the proxy."""
        self.load.stop()
        self.heal_and_check("the end of the load")
        self.monitor.stop()
        self.monitor.check()
        assert self.monitor.polls > 3 and self.monitor.final, self.monitor.summary()
        try:
            wait_until(self.network.converged, 60,
                       f"[{self.ctx}] all nodes to agree on tip and UTXO set")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {self.views()}; log: {self.log[-8:]}") from None
        assert_links_through_proxy(self.network)
        print(f"[{self.ctx}] {self.load.accepted} payments accepted; {self.monitor.summary()}")


def assert_links_through_proxy(network: ProxiedNetwork) -> None:
    """Every outbound peer of every node is a proxy listener: no node dialed
    another's real port."""
    real = {n.p2p_address for n in network.nodes}
    for node in network.running():
        for peer in node.rpc("getpeerinfo")["peers"]:
            if not peer["inbound"]:
                assert peer["address"] not in real, (node.name, peer)


@pytest.fixture
def scenario(tmp_path, node_factory) -> Iterator:
    """``make(validators, txs) -> Scenario`` (started, meshed, finality moving)."""
    made: list[Scenario] = []
    proxies: list[NetProxy] = []

    def make(validators: int, txs: int, seed: int | None = None,
             root_name: str = "net", label: str | None = None,
             rate: int = LOAD_RATE) -> Scenario:
        seed = fault_seed() if seed is None else seed
        ctx = label or f"O2O_FAULT_SEED={seed}"
        proxy = NetProxy(seed=seed).start()
        proxies.append(proxy)
        root = tmp_path / root_name
        root.mkdir()
        network = ProxiedNetwork(root, lambda name: node_factory(f"{root_name}-{name}"),
                                 validators, proxy)
        network.start_all()
        network.wait_mesh()
        wait_until(lambda: min(network.finalized(n) for n in network.nodes) >= 2, 60,
                   f"[{ctx}] finality to start")
        load = PaymentLoad(network, txs)
        monitor = FinalityMonitor(network, ctx)
        s = Scenario(seed, proxy, network, load, monitor, random.Random(seed), ctx)
        made.append(s)
        monitor.start()
        load.start(rate)
        return s

    yield make
    for s in made:
        s.load.stop()
        s.monitor._stop.set()
    for proxy in proxies:
        proxy.stop()


# ---------------------------------------------------------------------------


def test_no_discover_dials_only_connect_peers(tmp_path, node_factory):
    """Nodes with --no-discover keep to their --connect (proxy) links, while a
    node without it learns a real listening port by gossip and dials it."""
    with NetProxy() as proxy:
        net = Network(tmp_path, node_factory, validators=3)
        v1, v2, v3 = net.nodes
        for node in net.nodes:
            proxy.add_node(node.name, node.p2p_port)
        v1.start("--validator-key", net.key(0), "--no-discover")
        v2.start("--validator-key", net.key(1), "--no-discover",
                 "--connect", f"127.0.0.1:{proxy.link_port('v2', 'v1')}")
        v3.start("--validator-key", net.key(2),
                 "--connect", f"127.0.0.1:{proxy.link_port('v3', 'v1')}")

        def outbound(node) -> list[str]:
            return [p["address"] for p in node.rpc("getpeerinfo")["peers"]
                    if p["ready"] and not p["inbound"]]

        # v3 gossips its way to v1's real port (the bypass --no-discover prevents).
        wait_until(lambda: v1.p2p_address in outbound(v3), 30, "v3 to dial v1 directly")
        assert outbound(v2) == [f"127.0.0.1:{proxy.link_port('v2', 'v1')}"]
        assert outbound(v1) == []
        assert proxy.connections("v1", "v2") == 1
        v1.wait_height(3)
        net.wait_synced(timeout=30)


def test_heavy_load_without_faults(scenario):
    """Issue 13: 2,500 payments/s into v1, no network fault.  Blocks of
    thousands of txs reach the other validators late, so competing blocks at
    one height are common; no node may finalize one the others drop."""
    s = scenario(3, 40_000, rate=2500)
    s.load.join(120)
    s.note(f"load done: {s.load.accepted} accepted")
    s.finish()


def test_partitions_of_three_validators(scenario):
    s = scenario(3, 15_000)
    names = s.network.names
    for lone in s.rng.sample(names, len(names)):
        s.proxy.isolate(lone)
        s.note(f"isolated {lone}")
        time.sleep(s.rng.uniform(4, 7))
        s.heal_and_check(f"isolating {lone}")
    s.finish()


def test_partitions_of_five_validators(scenario):
    s = scenario(5, 15_000)
    names = s.network.names
    for _ in range(2):
        shuffled = s.rng.sample(names, len(names))
        s.proxy.partition([shuffled[:2], shuffled[2:]])
        s.note(f"partition {shuffled[:2]} | {shuffled[2:]}")
        time.sleep(s.rng.uniform(4, 7))
        s.heal_and_check(f"partition {shuffled[:2]} | {shuffled[2:]}")
    shuffled = s.rng.sample(names, len(names))
    groups = [shuffled[:2], shuffled[2:4], shuffled[4:]]  # no group holds a majority
    s.proxy.partition(groups)
    s.note(f"partition {groups}")
    time.sleep(5)
    s.heal_and_check(f"three-way partition {groups}")
    s.finish()


def test_sigkilled_validator_restarts(scenario):
    s = scenario(3, 12_000)
    index = s.rng.randrange(3)
    victim = s.network.nodes[index]
    victim.kill()
    s.note(f"killed {victim.name}")
    alive = s.network.running()
    s.network.wait_finality_advances(HEAL_TIMEOUT, f"[{s.ctx}] without {victim.name}", alive)
    time.sleep(s.rng.uniform(3, 6))  # more blocks without it, under load
    s.network.restart(index)
    s.note(f"restarted {victim.name}")
    s.heal_and_check(f"restarting {victim.name}")
    s.finish()


def test_slow_in_turn_validator(scenario):
    """Every link of v1 delays 1.5 s each way: its blocks arrive late and
    compete with the next validator's."""
    s = scenario(3, 12_000)
    s.proxy.set_node_delay(s.network.names[0], 1500)
    s.note("delayed v1 by 1.5 s")
    time.sleep(15)
    s.heal_and_check("1.5 s delay on v1")
    s.finish()


def random_fault(s: Scenario) -> str:
    """Apply one random fault; returns its description."""
    names = s.network.names
    kind = s.rng.choice(["partition", "isolate", "delay", "delay-all", "kill", "reorder"])
    if kind == "partition" and len(names) > 3:
        shuffled = s.rng.sample(names, len(names))
        cut = s.rng.randrange(1, len(names))
        groups = [shuffled[:cut], shuffled[cut:]]
        s.proxy.partition(groups)
        return f"partition {groups}"
    if kind in ("partition", "isolate"):
        lone = s.rng.choice(names)
        s.proxy.isolate(lone)
        return f"isolate {lone}"
    if kind == "delay":
        slow = s.rng.choice(names)
        ms = s.rng.choice([300, 800, 1500, 2500])
        s.proxy.set_node_delay(slow, ms, jitter_ms=ms // 3)
        return f"delay {slow} {ms} ms"
    if kind == "delay-all":  # blocks race each other on every link
        ms = s.rng.choice([500, 1000, 1500])
        for a in names:
            for b in names:
                if a < b:
                    s.proxy.set_delay(a, b, ms, jitter_ms=ms)
        s.proxy.set_reorder(ms / 2)
        return f"delay every link {ms} ms + jitter {ms} ms"
    if kind == "kill":
        index = s.rng.randrange(len(names))
        s.network.nodes[index].kill()
        return f"kill {names[index]}"
    extra = s.rng.choice([100, 500, 1200])
    s.proxy.set_reorder(extra)
    return f"reorder up to {extra} ms"


def test_randomized_faults(scenario):
    """Short runs of random faults from a seed (see module doc)."""
    seed = fault_seed()
    soak = os.environ.get("O2O_SOAK_SECONDS")
    budget = float(soak or os.environ.get("O2O_FAULT_SECONDS", "60"))
    rng = random.Random(seed)
    deadline = time.monotonic() + budget
    run = 0
    print(f"randomized faults: seed={seed} budget={budget:.0f} s")
    while run == 0 or time.monotonic() < deadline - 30:
        validators = rng.choice([3, 4, 5])
        s = scenario(validators, 30_000, seed=rng.randrange(2**32), root_name=f"run{run}",
                     label=f"O2O_FAULT_SEED={seed} run {run}")
        s.note(f"run {run}: {validators} validators")
        run_end = min(deadline, time.monotonic() + rng.uniform(35, 60))
        episodes = 0
        while episodes == 0 or time.monotonic() < run_end:
            what = random_fault(s)
            s.note(what)
            time.sleep(s.rng.uniform(1.5, 5))
            s.heal_and_check(what)
            episodes += 1
        s.finish()
        for node in s.network.nodes:
            node.kill()
        s.proxy.stop()
        print(f"run {run}: {validators} validators, {episodes} faults, {s.monitor.summary()}")
        run += 1

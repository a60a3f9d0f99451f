#!/usr/bin/env python3
"""Benchmark: N validators (separate processes on loopback) under a payment load.

Builds a private network with ``chain spec new --validators N --period 1``,
starts each validator as its own ``node start`` process (node i dials the
lower-numbered ones; with ``--delay-ms`` every link goes through the test
proxy, ``tests/functional/netproxy.py``, with that one-way delay), pre-signs
``--rate`` x ``--seconds`` payments (the generator of ``benchmarks/produce.py``)
and feeds them to validator 0 with ``sendrawtxs`` every 100 ms.  Prints:

* sustained tx/s (payments in main-chain blocks / first submit -> last inclusion),
* payments per block (mean, max),
* competing blocks per 100 heights (distinct blocks sealed at one height, from
  every node's "sealed block" log lines) and how many sealed blocks were orphaned,
* reorgs (each node's "reorganised" log lines) and the deepest one,
* submit -> in-block and submit -> final latency, p50 / p95 (as seen by node 0),
* whether all nodes agree on tip and UTXO set hash once the load stops.

    python benchmarks/network.py                            # 3 validators, 2500 tx/s, 20 s
    python benchmarks/network.py --rate 4000 --seconds 15
    python benchmarks/network.py --validators 4 --delay-ms 50

Run from the repository root (nodes are ``python -m o2ocli`` from the current
directory).  Every node process is stopped on exit, error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from _devnode import free_port, make_coins, payments

from o2ocli.chainspec import load_spec
from o2ocli.node.datadir import read_key_file
from o2ocli.rpc.client import RpcClient

REPO = Path(__file__).resolve().parent.parent
SEALED = re.compile(r"sealed block (\d+) \(([0-9a-f]+), (\d+) txs\)")
REORG = re.compile(r"reorganised: (\d+) blocks disconnected, (\d+) connected; tip (\d+)")


class Validator:
    """One ``node start`` process of the benchmark network."""

    def __init__(self, root: Path, index: int) -> None:
        self.name = f"v{index + 1}"
        self.datadir = root / self.name
        self.rpc_port = free_port()
        self.p2p_port = free_port()
        self.log_path = self.datadir / "bench-node.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, args: list[str]) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "o2ocli", "--datadir", str(self.datadir), "node",
                 "start", "--rpc-listen", f"127.0.0.1:{self.rpc_port}",
                 "--listen", f"127.0.0.1:{self.p2p_port}", *args],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            )

    def client(self, timeout: float = 120) -> RpcClient:
        return RpcClient(f"http://127.0.0.1:{self.rpc_port}",
                         cookie_path=self.datadir / ".cookie", timeout=timeout)

    def call(self, method: str, *params: Any) -> Any:
        return self.client().call(method, *params)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                info = json.loads((self.datadir / "node.json").read_text())
                if self.proc is not None and info.get("pid") == self.proc.pid:
                    self.call("getinfo")
                    return
            except Exception:  # noqa: BLE001 - not up yet
                pass
            if time.monotonic() > deadline or (self.proc and self.proc.poll() is not None):
                raise SystemExit(f"{self.name} did not start; see {self.log_path}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def cli(*args: str) -> Any:
    out = subprocess.run([sys.executable, "-m", "o2ocli", "--json", *args],
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise SystemExit(f"o2ocli {' '.join(args)} failed: {out.stderr.strip()}")
    return json.loads(out.stdout) if out.stdout.strip() else None


def wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception:  # noqa: BLE001 - retried until the deadline
            pass
        time.sleep(0.2)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(len(ordered) * q + 0.5) - 1))]


def log_stats(nodes: list[Validator], first: int,
              last: int) -> tuple[dict[int, set[str]], list[int]]:
    """(height -> distinct sealed hash prefixes over all nodes, depths of the
    reorgs to a tip in ``first``..``last``)."""
    sealed: dict[int, set[str]] = defaultdict(set)
    reorgs: list[int] = []
    for node in nodes:
        text = node.log_path.read_text(errors="replace")
        for m in SEALED.finditer(text):
            sealed[int(m.group(1))].add(m.group(2))
        reorgs += [int(m.group(1)) for m in REORG.finditer(text)
                   if first <= int(m.group(3)) <= last]
    return sealed, reorgs


def final_conflicts(nodes: list[Validator], finalized: list[int]) -> list[str]:
    """Pairs of nodes whose final blocks differ: each compared with the node
    that finalized the most, at every height both call final."""
    ref = max(range(len(nodes)), key=lambda i: finalized[i])
    out = []
    for i, node in enumerate(nodes):
        if i == ref:
            continue
        top = min(finalized[i], finalized[ref])
        differ = [h for h in range(1, top + 1)
                  if node.call("getblockhash", h) != nodes[ref].call("getblockhash", h)]
        if differ:
            out.append(f"{node.name} and {nodes[ref].name} differ at {len(differ)} final "
                       f"heights from {differ[0]} (final {finalized[i]} vs {finalized[ref]})")
    return out


def run(args: argparse.Namespace, root: Path, nodes: list[Validator], proxy: Any) -> int:
    spec_info = cli("--datadir", str(root / "unused"), "chain", "spec", "new", "benchnet",
                    "--validators", str(args.validators), "--period", "1",
                    "--out", str(root / "spec"))
    spec_path = Path(spec_info["spec"])
    for i in range(args.validators):
        nodes.append(Validator(root, i))
        cli("--datadir", str(nodes[i].datadir), "--chain", str(spec_path), "node", "init")
        if proxy is not None:
            proxy.add_node(nodes[i].name, nodes[i].p2p_port)
    for i, node in enumerate(nodes):
        peers: list[str] = []
        for other in nodes[:i]:
            port = (proxy.link_port(node.name, other.name) if proxy is not None
                    else other.p2p_port)
            peers += ["--connect", f"127.0.0.1:{port}"]
        extra = ["--no-discover"] if proxy is not None else []
        node.start(["--validator-key", spec_info["validator_keys"][i], *extra, *peers])
    for node in nodes:
        node.wait_ready()
    if proxy is not None:
        for a in nodes:
            for b in nodes:
                if a is not b:
                    proxy.set_delay(a.name, b.name, args.delay_ms, both=False)
    want = args.validators - 1
    wait(lambda: all(sum(p["ready"] for p in n.call("getpeerinfo")["peers"]) >= want
                     for n in nodes), 60, "a full mesh")
    wait(lambda: min(n.call("getinfo")["finalized_height"] for n in nodes) >= 2, 60,
         "finality to start")

    spec = load_spec(spec_path)
    key = read_key_file(Path(spec_info["funds_key"]), spec.wif_version)
    total = args.rate * args.seconds
    t0 = time.perf_counter()
    coins = make_coins(nodes[0], total, spec=spec, key=key)
    txs = payments(coins, spec=spec, key=key)
    raws = [t.to_bytes().hex() for t in txs]
    ids = [t.txid.hex() for t in txs]
    print(f"{args.validators} validators{f', {args.delay_ms} ms link delay' if proxy else ''}; "
          f"pre-signed {total} payments in {time.perf_counter() - t0:.1f} s")
    first_height = nodes[0].call("getblockcount") + 1
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())

    submitted: dict[str, float] = {}
    included: dict[str, float] = {}
    final: dict[str, float] = {}
    done = threading.Event()
    stop_watch = threading.Event()

    def watch() -> None:
        try:
            follow()
        except Exception as exc:  # noqa: BLE001 - nodes stopped under us (Ctrl-C)
            if not stop_watch.is_set():
                print(f"watcher stopped: {exc}", file=sys.stderr)

    def follow() -> None:
        client = nodes[0].client()
        height = first_height - 1
        finalized = client.call("getinfo")["finalized_height"]
        seen: dict[int, tuple[str, list[str]]] = {}  # height -> (hash, txids)

        def block_txids(h: int) -> list[str]:
            # One full getblock per block: the watcher's own load on validator 0
            # is not part of what is measured.
            block_hash = client.call("getblockhash", h)
            if h not in seen or seen[h][0] != block_hash:
                seen[h] = (block_hash, client.call("getblock", block_hash, 1)["txs"])
            return seen[h][1]

        while not stop_watch.is_set():
            info = client.call("getinfo")
            now = time.perf_counter()
            while height < info["height"]:
                height += 1
                for txid in block_txids(height):
                    if txid in submitted and txid not in included:
                        included[txid] = now
            while finalized < min(info["finalized_height"], height):
                finalized += 1
                for txid in block_txids(finalized):
                    if txid in submitted and txid not in final:
                        final[txid] = now
                        included.setdefault(txid, now)
            if info["height"] < height:  # reorganised to a shorter chain: look again
                height = max(first_height - 1, info["height"] - 1)
            if done.is_set() and len(final) >= len(submitted):
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    client = nodes[0].client()
    step = max(1, args.rate // 10)
    refused = 0
    start = time.perf_counter()
    for i in range(0, total, step):
        pause = start + (i // step) * 0.1 - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        now = time.perf_counter()
        for txid in ids[i : i + step]:
            submitted[txid] = now
        results = client.call("sendrawtxs", raws[i : i + step])
        refused += sum(1 for r in results if not isinstance(r, str))
    submit_end = time.perf_counter()
    done.set()
    watcher.join(args.drain)
    stop_watch.set()
    watcher.join(10)

    def agreed() -> dict[str, Any] | None:
        infos = [n.call("getutxosetinfo") for n in nodes]
        same = len({(i["tip"], i["utxo_set_hash"]) for i in infos}) == 1
        return infos[0] if same else None

    try:
        tip_info = wait(agreed, 60, "all nodes to agree on tip and UTXO set hash")
        agree = True
    except SystemExit:
        tip_info, agree = nodes[0].call("getutxosetinfo"), False
    last_height = tip_info["height"]
    per_block = [nodes[0].call("getblock", h, 1)["tx_count"] - 1
                 for h in range(first_height, last_height + 1)]
    busy = [n for n in per_block if n > 0]
    # Forks and reorgs while the load lasted: up to the last block with payments.
    load_end = max((first_height + i for i, n in enumerate(per_block) if n), default=last_height)
    sealed, reorgs = log_stats(nodes, first_height, load_end)
    heights = [h for h in sealed if first_height <= h <= load_end]
    competing = sum(len(sealed[h]) - 1 for h in heights)
    main = {h: nodes[0].call("getblockhash", h)[:16] for h in heights}
    orphaned = sum(1 for h in heights for p in sealed[h] if p != main[h])
    span = max(1, len(heights))
    end = max(included.values()) if included else submit_end

    print(f"submitted {len(submitted)} at {args.rate}/s asked, "
          f"{len(submitted) / (submit_end - start):,.0f}/s achieved over "
          f"{submit_end - start:.1f} s "
          f"({refused} refused); {len(included)} in blocks, {len(final)} final")
    print(f"sustained: {len(included) / (end - start):,.0f} tx/s "
          f"(first submit -> last inclusion, {end - start:.1f} s)")
    print(f"payments per block: mean {statistics.mean(busy) if busy else 0:,.0f}, "
          f"max {max(busy) if busy else 0} ({len(busy)} blocks with payments, "
          f"heights {first_height}-{last_height})")
    print(f"competing blocks: {competing} over {len(heights)} heights under load "
          f"({first_height}-{load_end}) = "
          f"{100 * competing / span:.1f} per 100 heights; {orphaned} sealed blocks orphaned")
    print(f"reorgs: {len(reorgs)} over all nodes, deepest {max(reorgs) if reorgs else 0} blocks")
    for label, seen in (("in-block", included), ("final", final)):
        lat = [seen[t] - submitted[t] for t in seen if t in submitted]
        if lat:
            print(f"submit->{label}: p50 {pct(lat, 0.5):.2f} s, p95 {pct(lat, 0.95):.2f} s "
                  f"({len(lat)} txs)")
        else:
            print(f"submit->{label}: no tx reached it")
    if agree:
        print(f"all {len(nodes)} nodes agree on tip {tip_info['tip'][:16]} (height "
              f"{last_height}) and UTXO set hash {tip_info['utxo_set_hash'][:16]}: yes")
    else:
        views = [(n.name, i["height"], i["tip"][:16], i["utxo_set_hash"][:16])
                 for n, i in ((n, n.call("getutxosetinfo")) for n in nodes)]
        print(f"nodes agree on tip and UTXO set hash: NO after 60 s: {views}")
    finalized = [n.call("getinfo")["finalized_height"] for n in nodes]
    conflicts = final_conflicts(nodes, finalized)
    print("conflicting final blocks: " + ("; ".join(conflicts) if conflicts else "none"))
    print(f"finalized heights at the end: {finalized}; load average {load_before} before, "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} after")
    return 0 if agree and len(final) == len(submitted) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--validators", type=int, default=3)
    parser.add_argument("--rate", type=int, default=2500, help="payments submitted per second")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--delay-ms", type=float, default=0.0,
                        help="one-way delay on every link (through the test proxy)")
    parser.add_argument("--drain", type=float, default=60.0,
                        help="seconds to wait after the load for every tx to become final")
    parser.add_argument("--keep", action="store_true", help="keep the datadirs (and logs)")
    args = parser.parse_args(argv)

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)  # even if started with SIGINT ignored
    root = Path(tempfile.mkdtemp(prefix="o2o-netbench-"))
    nodes: list[Validator] = []
    proxy = None
    try:
        if args.delay_ms > 0:
            sys.path.insert(0, str(REPO / "tests" / "functional"))
            from netproxy import NetProxy

            proxy = NetProxy().start()
        return run(args, root, nodes, proxy)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        for node in nodes:
            node.stop()
        if proxy is not None:
            proxy.stop()
        if args.keep:
            print(f"datadirs kept in {root}")
        else:
            import shutil

            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

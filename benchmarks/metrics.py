#!/usr/bin/env python3
"""Benchmark: what the node's metrics cost on its hot paths.

Times, in one process: the per-block work ``Node.submit_block`` adds (two
``perf_counter`` calls, a histogram observation, a counter increment); an
in-process RPC call of a trivial method without and with the metrics observer;
the per-transaction counter; and one scrape (the text exposition) of a registry
whose RPC histograms have ``--methods`` label values.  Compare the per-block
figure with ``o2o_block_connect_seconds`` (milliseconds per block).

    python benchmarks/metrics.py
    python benchmarks/metrics.py --n 200000
"""

from __future__ import annotations

import argparse
import asyncio
import time
from types import SimpleNamespace

from o2ocli.node.metrics import NodeMetrics
from o2ocli.rpc.dispatch import RpcMethods


def per_call(func, n: int) -> float:
    """Microseconds per call of ``func`` (best of 3)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            func()
        best = min(best, time.perf_counter() - start)
    return 1e6 * best / n


async def rpc_per_call(methods: RpcMethods, n: int) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            await methods.call("getblockcount")
        best = min(best, time.perf_counter() - start)
    return 1e6 * best / n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="calls per measurement")
    parser.add_argument("--methods", type=int, default=100, help="RPC methods seen")
    args = parser.parse_args(argv)
    metrics = NodeMetrics(SimpleNamespace(chain=None))  # no state: events only

    def block() -> None:
        started = time.perf_counter()
        metrics.block_connect.observe(time.perf_counter() - started)
        metrics.blocks_connected.inc(1)

    print(f"per block connected : {per_call(block, args.n):6.2f} us")
    print(f"per tx accepted     : {per_call(metrics.txs_accepted.inc, args.n):6.2f} us")
    methods = RpcMethods()
    methods.register("getblockcount", lambda: 42)
    plain = asyncio.run(rpc_per_call(methods, args.n))
    methods.observe = metrics.observe_rpc
    observed = asyncio.run(rpc_per_call(methods, args.n))
    print(f"RPC call, no metrics: {plain:6.2f} us")
    print(f"RPC call, metrics   : {observed:6.2f} us  (+{observed - plain:.2f} us)")
    for i in range(args.methods):
        metrics.observe_rpc(f"method{i}", 0.001)
    scrape = per_call(metrics.exposition, 200)
    print(f"one scrape ({args.methods} RPC methods): {scrape / 1000:6.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

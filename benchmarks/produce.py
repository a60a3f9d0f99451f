#!/usr/bin/env python3
"""Benchmark: a validator sealing 1-second blocks under a steady stream of txs.

A dev node (1-second blocks) runs in its own process.  This process submits
``--rate`` payments per second for ``--seconds`` seconds (``sendrawtxs``
every 100 ms), polls the tip, and records when each tx was first seen in a
block.  Prints txs per block, sustained tx/s and submit→in-block latency
(p50, p95) in seconds and in block periods.

    python benchmarks/produce.py                       # 2500 tx/s for 20 s
    python benchmarks/produce.py --rate 1000 --seconds 10
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time

from _devnode import DevNode, make_coins, payments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=2500, help="txs submitted per second")
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args(argv)
    total = args.rate * args.seconds
    node = DevNode()
    try:
        txs = payments(make_coins(node, total))
        raws = [t.to_bytes().hex() for t in txs]
        ids = [t.txid.hex() for t in txs]
        submitted: dict[str, float] = {}
        included: dict[str, float] = {}
        blocks: list[tuple[int, int]] = []
        done = threading.Event()

        def watch() -> None:
            client = node.client()
            height = client.call("getblockcount")
            while not done.is_set() or len(included) < len(submitted):
                tip = client.call("getblockcount")
                while height < tip:
                    height += 1
                    seen = time.perf_counter()
                    block = client.call("getblock", height, 1)
                    blocks.append((height, block["tx_count"]))
                    for txid in block["txs"]:
                        if txid in submitted:
                            included[txid] = seen
                if done.is_set() and time.perf_counter() > deadline:
                    break
                time.sleep(0.02)

        watcher = threading.Thread(target=watch, daemon=True)
        deadline = float("inf")
        watcher.start()
        client = node.client()
        step = args.rate // 10
        start = time.perf_counter()
        for i in range(0, total, step):
            target = start + (i // step) * 0.1
            pause = target - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            now = time.perf_counter()
            for txid in ids[i : i + step]:
                submitted[txid] = now
            results = client.call("sendrawtxs", raws[i : i + step])
            if any(not isinstance(r, str) for r in results):
                raise SystemExit(f"refused: {[r for r in results if not isinstance(r, str)][:1]}")
        submit_end = time.perf_counter()
        deadline = submit_end + 30
        done.set()
        watcher.join(40)
        end = max(included.values()) if included else submit_end
        latencies = sorted(included[t] - submitted[t] for t in included)
        busy = [n for _, n in blocks if n > 1]
        print(f"submitted {len(submitted)} txs at {args.rate}/s over "
              f"{submit_end - start:.1f} s; {len(included)} mined")
        print(f"blocks with txs: {len(busy)}; txs per block mean "
              f"{statistics.mean(busy) if busy else 0:,.0f}, max {max(busy) if busy else 0}")
        rate = len(included) / (end - start)
        print(f"sustained: {rate:,.0f} tx/s (first submit → last inclusion)")
        if latencies:
            p50 = latencies[len(latencies) // 2]
            p95 = latencies[int(len(latencies) * 0.95) - 1]
            print(f"submit→in-block latency: p50 {p50:.2f} s, p95 {p95:.2f} s "
                  f"({p95 / 1.0:.2f} block periods of 1 s)")
        if len(included) != len(submitted):
            print("ERROR: not every tx was mined", file=sys.stderr)
            return 1
    finally:
        node.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

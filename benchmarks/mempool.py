#!/usr/bin/env python3
"""Benchmark: transactions accepted per second through the node's RPC.

A dev node runs in its own process (sealing at most once an hour, so the
mempool alone is measured); this process signs N 1-in/2-out payments and
submits them over JSON-RPC: one ``sendrawtx`` call per HTTP request
("single"), JSON-RPC batch requests of ``sendrawtx`` calls ("batch"), and
``sendrawtxs`` (one call, signatures verified in one batch).

    python benchmarks/mempool.py                 # 3 x 3000 txs
    python benchmarks/mempool.py --txs 1000
"""

from __future__ import annotations

import argparse
import sys
import time

from _devnode import DevNode, make_coins, payments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--txs", type=int, default=3000, help="transactions per mode")
    parser.add_argument("--batch", type=int, default=500, help="txs per batch request")
    args = parser.parse_args(argv)
    node = DevNode()
    try:
        coins = make_coins(node, 3 * args.txs)
        node.restart("--dev-period", "3600")  # no blocks from now on: measure the mempool
        txs = [t.to_bytes().hex() for t in payments(coins)]
        single, batch, multi = txs[: args.txs], txs[args.txs : 2 * args.txs], txs[2 * args.txs :]
        client = node.client()

        start = time.perf_counter()
        for raw in single:
            client.call("sendrawtx", raw)
        t_single = time.perf_counter() - start

        start = time.perf_counter()
        for i in range(0, len(batch), args.batch):
            results = client.batch([("sendrawtx", [raw]) for raw in batch[i : i + args.batch]])
            bad = [r for r in results if not isinstance(r, str)]
            if bad:
                raise SystemExit(f"refused in batch: {bad[0]}")
        t_batch = time.perf_counter() - start

        start = time.perf_counter()
        for i in range(0, len(multi), args.batch):
            results = client.call("sendrawtxs", multi[i : i + args.batch])
            if any(not isinstance(r, str) for r in results):
                raise SystemExit("refused in sendrawtxs")
        t_multi = time.perf_counter() - start

        size = node.call("getinfo")["mempool_size"]
        assert size == 3 * args.txs, size
        print(f"{args.txs} txs per mode, mempool now holds {size}")
        print(f"sendrawtx, one per request : {args.txs / t_single:8,.0f} tx/s")
        print(f"sendrawtx, batch of {args.batch:<5}  : {args.txs / t_batch:8,.0f} tx/s")
        print(f"sendrawtxs, {args.batch:<5} per call : {args.txs / t_multi:8,.0f} tx/s")
    finally:
        node.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Benchmark: the public pages (``node start --http-listen``) under load.

Starts a --dev node with public pages (no rate limit), fills its chain with
``--items`` traced items and ``--reviews`` verified-purchase reviews of one
merchant (real signed txs through ``sendrawtxs``), then for ``--seconds``
each, with ``--clients`` concurrent clients over loopback, requests:

* item pages, each item once (first requests: rendered, not cached);
* the same item page again and again (served from the cache);
* merchant pages, each review page (``?page=N``) once, and the first page
  again and again.

Prints requests/s and p50/p95 latency of each.

    python benchmarks/web.py                                # 300 reviews, 100 items
    python benchmarks/web.py --reviews 10000 --items 1000   # the issue's sizes
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _devnode import DevNode, devnet_funds, free_port, make_coins  # noqa: E402

from o2ocli.core.payloads import Review, TraceRegister, item_asset_id, review_sig_digest  # noqa: E402
from o2ocli.core.payloads.trace import item_sig_digest  # noqa: E402
from o2ocli.core.tx import NATIVE_ASSET, Tx, TxIn, TxOut  # noqa: E402
from o2ocli.testing.chaingen import deterministic_key, p2a, sign_tx  # noqa: E402

FEE = 20_000
VALUE = 10_000_000


def submit(node: DevNode, txs: list[Tx]) -> None:
    """Send ``txs`` in batches and wait until the last is mined."""
    for i in range(0, len(txs), 500):
        results = node.call("sendrawtxs", [t.to_bytes().hex() for t in txs[i:i + 500]])
        bad = [r for r in results if not (isinstance(r, str) and len(r) == 64)]
        if bad:
            raise SystemExit(f"txs refused: {bad[:3]}")
    deadline = time.monotonic() + 600
    while node.call("gettx", txs[-1].txid.hex())["height"] is None:
        if time.monotonic() > deadline:
            raise SystemExit("txs were not mined")
        time.sleep(0.2)


def fill(node: DevNode, items: int, reviews: int) -> tuple[str, list[str]]:
    """Items of the funds key and reviews of one merchant; (merchant, item paths)."""
    spec, key = devnet_funds()
    chain = spec.chain_id
    me = key.public_key.hash160()
    merchant = deterministic_key(b"merchant", 0)
    coins = make_coins(node, items + reviews, VALUE, spec, key)
    registrations, paths = [], []
    for n, (outpoint, value) in enumerate(coins[:items]):
        item_id = f"ITEM-{n:05d}".encode()
        asset = item_asset_id(me, item_id)
        unsigned = TraceRegister(me, item_id, f"Product {n}, 1 kg".encode(),
                                 ((b"origin", b"bench"),), key.public_key.to_bytes(), bytes(64))
        outs = (TxOut(asset, 1, p2a(key)), TxOut(NATIVE_ASSET, value - FEE, p2a(key)))
        body = Tx((TxIn(outpoint),), outs, payload=unsigned)
        signed = replace(unsigned, signature=key.sign(
            item_sig_digest(unsigned, chain, body.wire_outpoints())))
        registrations.append(sign_tx(Tx((TxIn(outpoint),), outs, payload=signed), [[key]], chain))
        paths.append(f"/item/{spec.address(me)}/{item_id.decode()}")
    purchases = [sign_tx(Tx((TxIn(outpoint),), (
        TxOut(NATIVE_ASSET, 1_000_000, p2a(merchant)),
        TxOut(NATIVE_ASSET, value - 1_000_000 - FEE, p2a(key)))), [[key]], chain)
        for outpoint, value in coins[items:]]
    submit(node, registrations + purchases)
    from o2ocli.core.tx import Outpoint

    review_txs = []
    for n, purchase in enumerate(purchases):
        unsigned = Review(merchant.public_key.hash160(), purchase.txid, 1 + n % 5,
                          f"Review {n}: fine tea, quick delivery".encode(),
                          key.public_key.to_bytes(), bytes(64))
        review = replace(unsigned, signature=key.sign(review_sig_digest(unsigned, chain)))
        change = purchase.outputs[1].amount
        review_txs.append(sign_tx(Tx((TxIn(Outpoint(purchase.txid, 1)),),
                                     (TxOut(NATIVE_ASSET, change - FEE, p2a(key)),),
                                     payload=review), [[key]], chain))
    if review_txs:
        submit(node, review_txs)
    return spec.address(merchant.public_key.hash160()), paths


def load(base: str, paths: list[str], seconds: float, clients: int,
         once: bool = False) -> tuple[float, list[float]]:
    """Requests/s and the latencies (s) of ``clients`` threads cycling ``paths``
    for ``seconds`` (``once``: each path once, first requests, not cached)."""
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    counter = iter(range(10**9))

    def worker() -> None:
        mine = []
        while time.monotonic() < stop:
            n = next(counter)
            if once and n >= len(paths):
                break
            path = paths[n % len(paths)]
            start = time.perf_counter()
            with urllib.request.urlopen(base + path, timeout=60) as response:
                response.read()
                assert response.status == 200
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(latencies) / (time.monotonic() - began), latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews", type=int, default=300)
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    port = free_port()
    node = DevNode("--dev-period", "0", "--http-listen", f"127.0.0.1:{port}",
                   "--http-rate-limit", "0")
    base = f"http://127.0.0.1:{port}"
    try:
        began = time.monotonic()
        merchant, items = fill(node, args.items, args.reviews)
        print(f"chain: {args.items} items, {args.reviews} reviews of one merchant, height "
              f"{node.call('getblockcount')} (filled in {time.monotonic() - began:.0f} s)")
        pages = max(1, -(-args.reviews // 20))
        runs = [
            (f"item page, {len(items)} items once", items, True),
            ("item page, cached", items[:1], False),
            (f"merchant page, {pages} pages once", [f"/merchant/{merchant}?page={n}"
                                                    for n in range(1, pages + 1)], True),
            ("merchant page 1, cached", [f"/merchant/{merchant}"], False),
        ]
        for name, paths, once in runs:
            rate, latencies = load(base, paths, args.seconds, args.clients, once)
            q = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else latencies * 19
            print(f"{name:40s}: {rate:7.0f} req/s  p50 {1000 * statistics.median(latencies):6.1f}"
                  f" ms  p95 {1000 * q[18]:6.1f} ms  ({len(latencies)} requests, "
                  f"{args.clients} clients)")
    finally:
        node.close()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Benchmark: the point-of-sale server (``pos serve`` as a process on a watch-only
till, against a dev node).

* invoices created per second over the REST API (``--invoices`` of them, from
  ``--threads`` client threads);
* with all of them open, the time from a payment's block becoming final (the
  node's finalized height reaching it, seen through ``waitforchange``) to the
  ``final`` webhook arriving at a local receiver: p50 / p95 over
  ``--paid`` invoices, paid ``--per-tx`` at a time.

    python benchmarks/pos.py                     # 1,000 invoices, 50 paid
    python benchmarks/pos.py --invoices 200 --paid 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from _devnode import DevNode, free_port
from aiohttp import web


def o2o(node: DevNode, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "o2ocli", "--datadir", str(node.datadir),
                          "--json", *args], capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"{args} failed: {out.stderr}")
    return json.loads(out.stdout)


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.final_at: dict[str, float] = {}
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _hook(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        if body["state"] == "final":
            self.final_at.setdefault(body["invoice"], time.monotonic())
        return web.Response(text="ok")

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()


def watch_finality(node: DevNode, seen: dict[int, float], stop: threading.Event) -> None:
    """Record when each finalized height was first reported (long poll)."""
    client = node.client()
    cursor = None
    while not stop.is_set():
        answer = client.call("waitforchange", cursor, [], 5)
        now = time.monotonic()
        for h in range(max(seen, default=-1) + 1, answer["finalized_height"] + 1):
            seen.setdefault(h, now)
        cursor = answer["cursor"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--paid", type=int, default=50)
    parser.add_argument("--per-tx", type=int, default=10)
    args = parser.parse_args()

    node = DevNode("--dev-period", "1")
    receiver = Receiver()
    pos = None
    stop = threading.Event()
    try:
        o2o(node, "wallet", "create", "shop", "--no-passphrase")
        xpub = o2o(node, "-w", "shop", "wallet", "export-xpub")["xpub"]
        o2o(node, "wallet", "create", "till", "--watch-only", "--xpub", xpub)
        port = free_port()
        pos = subprocess.Popen(
            [sys.executable, "-m", "o2ocli", "--datadir", str(node.datadir), "-w", "till", "pos",
             "serve", "--listen", f"127.0.0.1:{port}",
             "--webhook", f"http://127.0.0.1:{receiver.port}/hook"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(node.datadir / "bench-pos.log", "wb"))  # noqa: SIM115
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("pos serve did not start") from None
                time.sleep(0.1)
        key = (node.datadir / "pos-api.key").read_text().strip()

        def create(i: int) -> dict:
            req = urllib.request.Request(
                base + "/api/invoices", method="POST",
                data=json.dumps({"amount": f"0.{i % 9 + 1}", "label": f"bench {i}"}).encode(),
                headers={"Authorization": f"Bearer {key}"})
            with urllib.request.urlopen(req, timeout=60) as resp:
                return json.loads(resp.read())

        start = time.perf_counter()
        with ThreadPoolExecutor(args.threads) as pool:
            invoices = list(pool.map(create, range(args.invoices)))
        took = time.perf_counter() - start
        print(f"created {args.invoices} invoices over REST in {took:.2f} s: "
              f"{args.invoices / took:.0f} invoices/s ({args.threads} threads)")

        finalized: dict[int, float] = {}
        threading.Thread(target=watch_finality, args=(node, finalized, stop),
                         daemon=True).start()
        paid = invoices[:args.paid]
        txids: dict[str, str] = {}
        for start_i in range(0, len(paid), args.per_tx):
            batch = paid[start_i:start_i + args.per_tx]
            cmd = ["-w", "dev", "wallet", "send"]
            for inv in batch:
                cmd += ["--to", inv["address"], "--amount", inv["amount"]]
            txid = o2o(node, *cmd)["txid"]
            for inv in batch:
                txids[inv["id"]] = txid
        deadline = time.monotonic() + 120
        while len(receiver.final_at) < len(paid) and time.monotonic() < deadline:
            time.sleep(0.1)
        latencies = []
        for inv in paid:
            arrived = receiver.final_at.get(inv["id"])
            if arrived is None:
                continue
            height = node.call("gettx", txids[inv["id"]])["height"]
            became_final = finalized.get(height)
            if became_final is not None:
                latencies.append((arrived - became_final) * 1000)
        if not latencies:
            raise SystemExit("no final webhook arrived")
        latencies.sort()
        p95 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))]
        print(f"final -> webhook with {args.invoices} open invoices: "
              f"p50 {statistics.median(latencies):.0f} ms, p95 {p95:.0f} ms "
              f"({len(latencies)} of {len(paid)} invoices)")
    finally:
        stop.set()
        if pos is not None:
            pos.terminate()
            pos.wait(15)
        node.close()


if __name__ == "__main__":
    main()

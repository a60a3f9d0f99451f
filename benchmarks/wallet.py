#!/usr/bin/env python3
"""Benchmark: wallet commands on a wallet holding many coins, and CLI start-up.

Starts a dev node, makes a wallet whose 20 addresses hold ``--utxos`` coins
(fan-out transactions from the devnet funds key), then times the real
commands as a user runs them (new process each time, wall clock, median):
``wallet balance`` and ``wallet send`` (coin selection over all coins,
signing, broadcast), plus ``o2ocli --help`` cold start.

    python benchmarks/wallet.py                # 10,000 coins
    python benchmarks/wallet.py --utxos 2000
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from _devnode import DevNode, devnet_funds

from o2ocli.core.locks import PayToAddress
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, Tx, TxIn, TxOut
from o2ocli.testing.chaingen import sign_tx


def o2o(node: DevNode, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    cmd = [sys.executable, "-m", "o2ocli", "--datadir", str(node.datadir), "--json", *args]
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"{args} failed: {out.stderr}")
    return elapsed, out


def fund(node: DevNode, addresses: list[str], count: int) -> None:
    spec, key = devnet_funds()
    utxos = node.call("getutxos", spec.address(key.public_key.hash160()))
    best = max(utxos, key=lambda u: u["units"])
    outpoint, value = Outpoint(bytes.fromhex(best["txid"]), best["index"]), best["units"]
    locks = [PayToAddress(spec.decode_address(a)) for a in addresses]
    txids = []
    made = 0
    while made < count:
        n = min(1500, count - made)
        outs = [TxOut(NATIVE_ASSET, 1_000_000 + i, locks[(made + i) % len(locks)])
                for i in range(n)]
        change = value - sum(o.amount for o in outs) - 400 * n
        outs.append(TxOut(NATIVE_ASSET, change, PayToAddress(key.public_key.hash160())))
        tx = sign_tx(Tx((TxIn(outpoint),), tuple(outs)), [[key]], spec.chain_id)
        txids.append(node.call("sendrawtx", tx.to_bytes().hex()))
        outpoint, value = Outpoint(tx.txid, n), change
        made += n
    deadline = time.monotonic() + 120
    while any(node.call("gettx", t)["height"] is None for t in txids):
        if time.monotonic() > deadline:
            raise SystemExit("funding not mined")
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utxos", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    node = DevNode()
    try:
        o2o(node, "wallet", "create", "bench", "--no-passphrase")
        addresses = [json.loads(o2o(node, "-w", "bench", "wallet", "address", "--new")[1].stdout)
                     ["address"] for _ in range(20)]
        fund(node, addresses, args.utxos)
        balance_times = []
        for _ in range(args.runs):
            elapsed, out = o2o(node, "-w", "bench", "wallet", "balance")
            balance_times.append(elapsed)
        confirmed = json.loads(out.stdout)["balances"][0]["confirmed"]
        coins = len(node.call("listunspent", addresses, False))
        send_times = []
        for _ in range(args.runs):
            elapsed, _ = o2o(node, "-w", "bench", "wallet", "send", "--to", addresses[0],
                             "--amount", "0.5")
            send_times.append(elapsed)
        help_times = []
        for _ in range(10):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "o2ocli", "--help"], capture_output=True,
                           check=True)
            help_times.append(time.perf_counter() - start)
        baseline = []
        for _ in range(10):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            baseline.append(time.perf_counter() - start)
        print(f"wallet with {coins} coins on {len(addresses)} addresses, balance {confirmed} O2O")
        print(f"wallet balance : median {statistics.median(balance_times):.3f} s "
              f"(min {min(balance_times):.3f})")
        print(f"wallet send    : median {statistics.median(send_times):.3f} s "
              f"(min {min(send_times):.3f})")
        print(f"o2ocli --help  : median {statistics.median(help_times):.3f} s "
              f"(bare python start-up {statistics.median(baseline):.3f} s)")
    finally:
        node.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

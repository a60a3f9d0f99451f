"""Shared helpers for benchmarks that drive a real dev node process."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from o2ocli.chainspec import ChainSpec, load_spec
from o2ocli.core.tx import Outpoint, Tx
from o2ocli.crypto.address import decode_wif
from o2ocli.crypto.keys import PrivateKey
from o2ocli.rpc.client import RpcClient
from o2ocli.testing.load import payment_txs, split_txs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DevNode:
    """A ``node start --dev`` process in a temp datadir."""

    def __init__(self, *args: str) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="o2o-bench-")
        self.datadir = Path(self.tmp.name)
        self.port = free_port()
        self.log = open(self.datadir / "bench-node.log", "wb")  # noqa: SIM115
        self._start(args)

    def restart(self, *args: str) -> None:
        """Stop gracefully and start again on the same datadir with ``args``."""
        self.proc.terminate()
        self.proc.wait(60)
        self._start(args)

    def _start(self, args: tuple[str, ...]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "o2ocli", "--datadir", str(self.datadir), "node", "start",
             "--dev", "--rpc-listen", f"127.0.0.1:{self.port}", *args],
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                info = json.loads((self.datadir / "node.json").read_text())
                if info.get("pid") == self.proc.pid:
                    self.client().call("getinfo")
                    break
            except Exception:  # noqa: BLE001 - not up yet
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit("dev node did not start; see " + str(self.datadir))
            time.sleep(0.05)

    def client(self, timeout: float = 120) -> RpcClient:
        return RpcClient(f"http://127.0.0.1:{self.port}", cookie_path=self.datadir / ".cookie",
                         timeout=timeout)

    def call(self, method: str, *params: Any) -> Any:
        return self.client().call(method, *params)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(60)
        self.log.close()
        self.tmp.cleanup()


def devnet_funds() -> tuple[ChainSpec, PrivateKey]:
    spec = load_spec("devnet")
    secret, _ = decode_wif(spec.dev_keys["funds"], version=spec.wif_version)
    return spec, PrivateKey(secret)


def make_coins(node: Any, count: int, value: int = 100_000_000,
               spec: ChainSpec | None = None,
               key: PrivateKey | None = None) -> list[tuple[Outpoint, int]]:
    """Split the funds of ``key`` (default: the devnet funds key) into ``count``
    coins (fan-out txs sent to ``node``, anything with ``call``), wait until mined."""
    if spec is None or key is None:
        spec, key = devnet_funds()
    utxos = node.call("getutxos", spec.address(key.public_key.hash160()))
    best = max(utxos, key=lambda u: spec.amount(u["amount"]))
    coin = (Outpoint(bytes.fromhex(best["txid"]), best["index"]), spec.amount(best["amount"]))
    txs, coins = split_txs(spec.chain_id, key, coin, count, value)
    for tx in txs:
        node.call("sendrawtx", tx.to_bytes().hex())
    txids = [tx.txid.hex() for tx in txs]
    deadline = time.monotonic() + 120
    while any(node.call("gettx", t)["height"] is None for t in txids):
        if time.monotonic() > deadline:
            raise SystemExit("fan-out txs were not mined")
        time.sleep(0.2)
    return coins


def payments(coins: list[tuple[Outpoint, int]], spec: ChainSpec | None = None,
             key: PrivateKey | None = None) -> list[Tx]:
    """One signed 1-in/2-out payment per coin (of ``key``, default the devnet funds key)."""
    if spec is None or key is None:
        spec, key = devnet_funds()
    return payment_txs(spec.chain_id, key, coins)

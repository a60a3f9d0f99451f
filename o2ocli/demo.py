"""``o2ocli demo``: the whole O2O story on a temporary 3-validator network.

Everything is real: three ``o2ocli node start`` processes on 127.0.0.1 with a
freshly generated chain spec, wallets in the first node's datadir, and every
step is an ``o2ocli`` command whose output is printed as a user would see it.
At the end the three nodes must agree on the UTXO set hash; then they are
stopped and (unless kept) the directory is removed.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from o2ocli.rpc.client import RpcClient

__all__ = ["DemoError", "run_demo"]

VALIDATORS = 3
STEP_TIMEOUT = 90.0


class DemoError(Exception):
    """The demo could not go on (the message says where)."""


def _child_env() -> dict[str, str]:
    """The environment for the demo's processes: none of the user's O2OCLI_*
    settings (a chain, an RPC URL, a wallet) may leak into the demo network."""
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("O2OCLI_")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, check: Callable[[], Any], timeout: float = STEP_TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last = exc
            result = None
        if result:
            return result
        time.sleep(0.2)
    raise DemoError(f"timed out waiting for {what}" + (f" ({last})" if last else ""))


@dataclass
class _Node:
    datadir: Path
    rpc_port: int = field(default_factory=_free_port)
    p2p_port: int = field(default_factory=_free_port)
    proc: subprocess.Popen[bytes] | None = None

    def client(self) -> RpcClient:
        return RpcClient(f"http://127.0.0.1:{self.rpc_port}",
                         cookie_path=self.datadir / ".cookie", timeout=30)


class _Story:
    def __init__(self, root: Path, echo: Callable[[str], None]) -> None:
        self.root = root
        self.echo = echo
        self.nodes: list[_Node] = []
        self.spec_path: Path | None = None

    # ----------------------------------------------------------- commands
    def o2o(self, *args: str, node: int = 0, show: bool = True, check: bool = True,
            json_out: bool = False) -> Any:
        """Run ``o2ocli --datadir NODE ARGS``; print the command and its output."""
        cmd = [sys.executable, "-m", "o2ocli", "--datadir", str(self.nodes[node].datadir)]
        cmd += ["--json"] if json_out else []
        cmd += list(args)
        if show:
            self.echo("$ o2ocli " + " ".join(_short(a) for a in args))
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=STEP_TIMEOUT,
                              stdin=subprocess.DEVNULL, env=_child_env())
        if check and done.returncode != 0:
            raise DemoError(f"`o2ocli {' '.join(args)}` failed: {done.stderr.strip()}")
        if show:
            text = (done.stdout.strip() or done.stderr.strip())
            if text and not json_out:
                self.echo(_indent(text))
        if json_out:
            return json.loads(done.stdout) if done.stdout.strip() else None
        return done

    def data(self, *args: str, node: int = 0) -> Any:
        """Run a command with --json, without printing it; return its JSON."""
        return self.o2o(*args, node=node, show=False, json_out=True)

    def address(self, wallet: str) -> str:
        return self.data("-w", wallet, "wallet", "address")["address"]

    def mined(self, txid: str, node: int = 0) -> None:
        client = self.nodes[node].client()
        _wait(f"tx {txid[:16]}… to be mined",
              lambda: client.call("gettx", txid)["height"] is not None)

    def section(self, title: str) -> None:
        self.echo("")
        self.echo(f"== {title} " + "=" * max(0, 66 - len(title)))

    # -------------------------------------------------------------- network
    def start_network(self) -> None:
        spec_dir = self.root / "spec"
        cmd = [sys.executable, "-m", "o2ocli", "--datadir", str(self.root / "tmp"), "--json",
               "chain", "spec", "new", "demo", "--validators", str(VALIDATORS), "--period", "1",
               "--out", str(spec_dir)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=STEP_TIMEOUT,
                              env=_child_env())
        if done.returncode != 0:
            raise DemoError(f"cannot create the chain spec: {done.stderr.strip()}")
        spec = json.loads(done.stdout)
        self.spec_path = Path(spec["spec"])
        self.funds_key = Path(spec["funds_key"])
        for i in range(VALIDATORS):
            node = _Node(self.root / f"node-{i + 1}")
            self.nodes.append(node)
            init = subprocess.run(
                [sys.executable, "-m", "o2ocli", "--datadir", str(node.datadir), "--chain",
                 str(self.spec_path), "node", "init"],
                capture_output=True, text=True, timeout=STEP_TIMEOUT, env=_child_env())
            if init.returncode != 0:
                raise DemoError(f"node init failed: {init.stderr.strip()}")
        for i, node in enumerate(self.nodes):
            peers = [x for other in self.nodes[:i]
                     for x in ("--connect", f"127.0.0.1:{other.p2p_port}")]
            cmd = [sys.executable, "-m", "o2ocli", "--datadir", str(node.datadir), "node",
                   "start", "--validator-key", spec["validator_keys"][i],
                   "--listen", f"127.0.0.1:{node.p2p_port}",
                   "--rpc-listen", f"127.0.0.1:{node.rpc_port}", *peers]
            log = open(node.datadir / "demo-node.log", "ab")  # noqa: SIM115 - handed to Popen
            node.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env=_child_env())
            log.close()
        for i, node in enumerate(self.nodes):
            _wait(f"node {i + 1} to start", lambda n=node: n.client().call("getinfo"))
        _wait("the validators to connect",
              lambda: all(n.client().call("getinfo")["peers"] >= VALIDATORS - 1
                          for n in self.nodes))
        _wait("the first blocks", lambda: self.nodes[0].client().call("getinfo")["height"] >= 2)
        self.echo(f"3 validators on 127.0.0.1 (P2P ports "
                  f"{', '.join(str(n.p2p_port) for n in self.nodes)}), one block per second")

    def stop_network(self) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.send_signal(signal.SIGTERM)
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.proc.wait(30)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait(10)

    # ---------------------------------------------------------------- story
    def run(self) -> dict[str, Any]:
        self.section("A private O2O network")
        self.start_network()

        self.section("Wallets: a bank, a shop, a customer, a courier, a platform, ...")
        names = ["bank", "shop", "alice", "courier", "platform", "fixit", "farm", "arbiter"]
        for name in names:
            self.data("wallet", "create", name, "--no-passphrase")
        wif = self.funds_key.read_text().strip()
        self.o2o("-w", "bank", "wallet", "import-key", wif, show=False)
        addr = {name: self.address(name) for name in names}
        self.echo(_indent("\n".join(f"{n:<9} {a}" for n, a in addr.items())))
        funding = ["-w", "bank", "wallet", "send"]
        for name, amount in (("shop", "100"), ("alice", "500"), ("fixit", "20"),
                             ("farm", "50"), ("courier", "5"), ("platform", "5")):
            funding += ["--to", addr[name], "--amount", amount]
        sent = self.data(*funding)
        self.mined(sent["txid"])
        self.echo("bank funded the shop, alice, fixit, the farm, the courier and the platform")

        self.section("1. The shop issues loyalty points")
        issued = self.data("-w", "shop", "token", "issue", "--symbol", "BEANS", "--name",
                           "Bean Points", "--supply", "100000", "--decimals", "2", "--mintable")
        self.echo('$ o2ocli -w shop token issue --symbol BEANS --name "Bean Points" '
                  '--supply 100000 --decimals 2 --mintable\n'
                  + _indent(f"committed in {issued['commit']}, revealed in {issued['txid']}"))
        self.mined(issued["txid"])
        self.o2o("token", "info", "BEANS")

        self.section("2. Alice buys coffee: 30 coins split shop 80% / courier 15% / platform 5%")
        pay = self.o2o("-w", "alice", "wallet", "send", "--amount", "30",
                       "--split", f"{addr['shop']}=80", "--split", f"{addr['courier']}=15",
                       "--split", f"{addr['platform']}=5", show=False, json_out=True)
        self.echo(f"$ o2ocli -w alice wallet send --amount 30 --split SHOP=80 --split COURIER=15 "
                  f"--split PLATFORM=5\n{_indent('sent ' + pay['txid'])}")
        self.mined(pay["txid"])
        purchase = pay["txid"]

        self.section("3. The shop rewards its customers: 10 BEANS per coin spent")
        since = str(self.nodes[0].client().call("gettx", purchase)["height"])
        self.o2o("-w", "shop", "token", "reward", "BEANS", "--rate", "10", "--since", since,
                 "--dry-run")
        reward = self.data("-w", "shop", "token", "reward", "BEANS", "--rate", "10", "--since",
                           since)
        self.echo(f"$ o2ocli -w shop token reward BEANS --rate 10 --since {since}\n"
                  f"{_indent('sent ' + reward['txid'])}")
        self.mined(reward["txid"])
        self.o2o("-w", "alice", "wallet", "balance")

        self.section("4. Alice reviews the shop; the shop replies")
        review = self.data("-w", "alice", "review", "write", "--purchase", purchase, "--rating",
                           "5", "--text", "Best flat white in town, delivered warm")
        self.echo(f"$ o2ocli -w alice review write --purchase {purchase[:12]}… --rating 5 "
                  f"--text \"Best flat white in town, delivered warm\"\n"
                  f"{_indent('review ' + review['txid'])}")
        self.mined(review["txid"])
        reply = self.data("-w", "shop", "review", "reply", review["txid"], "--text",
                          "Thank you Alice, see you tomorrow!")
        self.mined(reply["txid"])
        self.o2o("review", "list", "--merchant", addr["shop"])
        self.o2o("review", "stats", "--merchant", addr["shop"])

        self.section("5. A repair job through escrow: fixit 90%, platform 10%, with an arbiter")
        opened = self.data("-w", "alice", "escrow", "open", "--payee", f"{addr['fixit']}=9000",
                           "--payee", f"{addr['platform']}=1000", "--amount", "80",
                           "--arbiter", addr["arbiter"], "--timeout", "500")
        self.echo(f"$ o2ocli -w alice escrow open --payee FIXIT=9000 --payee PLATFORM=1000 "
                  f"--amount 80 --arbiter ARBITER --timeout 500\n"
                  f"{_indent('escrow ' + opened['escrow'])}")
        self.mined(opened["txid"])
        self.o2o("escrow", "show", opened["escrow"])
        released = self.data("-w", "alice", "escrow", "release", opened["escrow"])
        self.echo(f"$ o2ocli -w alice escrow release {opened['escrow'][:12]}…\n"
                  f"{_indent('released in ' + released['txid'])}")
        self.mined(released["txid"])
        self.o2o("-w", "fixit", "escrow", "list")

        self.section("6. A batch of tea, traced from farm to shop")
        reg = self.data("-w", "farm", "trace", "register", "TEA-2026-001", "--product",
                        "Pu'er tea, 20 kg", "--data", "origin=yunnan", "--data",
                        "harvest=2026-04")
        self.echo(f"$ o2ocli -w farm trace register TEA-2026-001 --product \"Pu'er tea, 20 kg\" "
                  f"--data origin=yunnan --data harvest=2026-04\n"
                  f"{_indent('registered ' + reg['asset'])}")
        self.mined(reg["txid"])
        steps = [
            ("farm", ["--event", "processed", "--location", "Menghai", "--note",
                      "pressed into cakes"]),
            ("farm", ["--event", "shipped", "--to", addr["shop"], "--location", "Kunming depot"]),
            ("shop", ["--event", "received", "--location", "Shop, Shanghai"]),
            ("shop", ["--event", "sold", "--to", addr["alice"], "--location",
                      "Shop, Shanghai"]),
        ]
        for wallet, args in steps:
            done = self.data("-w", wallet, "trace", "event", reg["asset"], *args)
            self.echo(f"$ o2ocli -w {wallet} trace event TEA-2026-001 "
                      + " ".join(_short(a) for a in args))
            self.mined(done["txid"])
        self.o2o("trace", "show", reg["asset"])
        self.o2o("trace", "verify", reg["asset"])

        self.section("7. Alice lets the shop use her purchase history")
        grant = self.data("-w", "alice", "consent", "grant", addr["shop"], "purchase-history",
                          "--blocks", "10000")
        self.echo(f"$ o2ocli -w alice consent grant SHOP purchase-history --blocks 10000\n"
                  f"{_indent('grant ' + grant['txid'])}")
        self.mined(grant["txid"])
        self.o2o("consent", "check", grant["user"], addr["shop"], "purchase-history")

        self.section("8. All validators agree")
        agreed = _wait("the three nodes to agree on the UTXO set", self._agreement)
        rows = [f"node {i + 1}: height {info['height']}  utxo set {info['utxo_set_hash'][:32]}…"
                for i, info in enumerate(agreed)]
        self.echo(_indent("\n".join(rows)))
        return {"height": agreed[0]["height"], "utxo_set_hash": agreed[0]["utxo_set_hash"],
                "tip": agreed[0]["tip"], "nodes": VALIDATORS,
                "purchase": purchase, "review": review["txid"], "escrow": opened["escrow"],
                "item": reg["asset"], "consent": grant["txid"]}

    def _agreement(self) -> list[dict[str, Any]] | None:
        infos = [n.client().call("getutxosetinfo") for n in self.nodes]
        same = len({i["tip"] for i in infos}) == 1 and len({i["utxo_set_hash"] for i in infos}) == 1
        return infos if same else None


def _short(arg: str) -> str:
    return arg[:12] + "…" if len(arg) > 40 and " " not in arg else (
        f'"{arg}"' if " " in arg else arg)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def run_demo(echo: Callable[[str], None], keep: Path | None = None) -> dict[str, Any]:
    """Run the story; ``keep`` keeps the network's files in that directory
    (otherwise a temporary one is removed).  Returns a summary."""
    root = keep if keep is not None else Path(tempfile.mkdtemp(prefix="o2ocli-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    story = _Story(root, echo)
    previous = signal.getsignal(signal.SIGTERM)

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    try:
        result = story.run()
        story.section("Shutting down")
        return result
    finally:
        story.stop_network()
        signal.signal(signal.SIGTERM, previous)
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)
        echo("3 nodes stopped" + ("" if keep is None else f"; files kept in {root}"))

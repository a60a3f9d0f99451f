"""A small functional-test framework: real node processes on 127.0.0.1.

Modelled on Bitcoin Core's test framework: each :class:`NodeProcess` is a real
``python -m o2ocli node start`` in its own temp datadir, with free ports,
its log kept in the datadir; helpers wait for conditions with timeouts and
every process is killed at teardown (see the ``node_factory`` fixture).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from o2ocli.rpc.client import RpcClient

DEFAULT_TIMEOUT = 30.0


_FIXED_PORTS = 20_000
"""Where the ports :func:`free_port` hands out start (below the kernel's
ephemeral range, see :func:`_ephemeral_low`)."""
_next_port: list[int] = []


def _ephemeral_low() -> int:
    """The first port the kernel gives to outgoing connections and bind(0)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now, and stays free for a
    node that restarts on it.

    A port from bind(0) lies in the kernel's ephemeral range, which every
    outgoing connection's local port is also taken from: while a node was
    down between a SIGKILL and its restart, an RPC or P2P connection of
    another test could get its port as a source port, and the node could no
    longer listen there ("address already in use"; seen in CI).  So ports
    are handed out below that range, in a band of its own for each pytest-xdist
    worker (``PYTEST_XDIST_WORKER`` gw0, gw1, …), each checked free by binding
    it; bind(0) only if the range leaves no room."""
    low = _ephemeral_low()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    band = 1500
    start = _FIXED_PORTS + band * index
    if low - start >= band:
        if not _next_port:
            _next_port.append(start + os.getpid() % band)
        for _ in range(band):
            port = _next_port[0]
            _next_port[0] = start + (port - start + 1) % band
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    predicate: Callable[[], Any], timeout: float = DEFAULT_TIMEOUT, what: str = "condition",
    interval: float = 0.05,
) -> Any:
    """Poll ``predicate`` until it returns a truthy value; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}"
                         + (f" (last error: {last_error})" if last_error else ""))


def run_cli(datadir: Path, *args: str, json_out: bool = False, timeout: float = 60.0,
            input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``o2ocli --datadir DATADIR [--json] ARGS`` and return the finished process."""
    cmd = [sys.executable, "-m", "o2ocli", "--datadir", str(datadir)]
    if json_out:
        cmd.append("--json")
    cmd += list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input_text)


class NodeProcess:
    """One node process."""

    def __init__(self, datadir: Path, name: str = "node") -> None:
        self.datadir = datadir
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None
        self.rpc_port = free_port()
        self.p2p_port = free_port()
        self.log_path = datadir / "test-node.log"

    # ---------------------------------------------------------------- process
    def start(self, *args: str, wait: bool = True, timeout: float = DEFAULT_TIMEOUT,
              preexec_fn: Callable[[], None] | None = None,
              env: dict[str, str] | None = None) -> None:
        """Start ``node start ARGS`` (``env``: extra environment variables) and
        (by default) wait until its RPC answers; ``preexec_fn`` runs in the
        child before the node (e.g. to set resource limits)."""
        self.datadir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "o2ocli", "--datadir", str(self.datadir), "node", "start",
               "--rpc-listen", f"127.0.0.1:{self.rpc_port}", *args]
        if "--listen" not in args and "--no-listen" not in args:
            cmd += ["--listen", f"127.0.0.1:{self.p2p_port}"]
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     preexec_fn=preexec_fn,
                                     env={**os.environ, **env} if env else None)
        log.close()
        if wait:
            self.wait_ready(timeout)

    def wait_ready(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until the node published its info and answers ``getinfo``."""
        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n"
                                     + self.log_tail())
            info = self.info()
            if not info or info.get("pid") != self.proc.pid:
                return False
            self.rpc("getinfo")
            return True

        wait_until(ready, timeout, f"{self.name} to start")

    def info(self) -> dict[str, Any] | None:
        """Contents of DATADIR/node.json, if present."""
        try:
            return json.loads((self.datadir / "node.json").read_text())
        except (OSError, ValueError):
            return None

    def log_tail(self, lines: int = 30) -> str:
        """The end of this node's log (for failure messages)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def running(self) -> bool:
        """True while the process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        """Graceful stop with SIGTERM; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL (no cleanup at all), then reap."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(DEFAULT_TIMEOUT)

    # -------------------------------------------------------------------- rpc
    def client(self) -> RpcClient:
        """A JSON-RPC client with this node's cookie."""
        return RpcClient(f"http://127.0.0.1:{self.rpc_port}",
                         cookie_path=self.datadir / ".cookie", timeout=60)

    def rpc(self, method: str, *params: Any) -> Any:
        """Call an RPC method."""
        return self.client().call(method, *params)

    def cli(
        self, *args: str, json_out: bool = False, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run an o2ocli command against this node's datadir."""
        return run_cli(self.datadir, *args, json_out=json_out, **kw)

    def cli_json(self, *args: str) -> Any:
        """Run a command with ``--json`` and parse stdout (fails on non-zero exit)."""
        out = self.cli(*args, json_out=True)
        assert out.returncode == 0, f"{args} failed ({out.returncode}): {out.stderr}"
        return json.loads(out.stdout)

    @property
    def p2p_address(self) -> str:
        """Where this node accepts peers."""
        return f"127.0.0.1:{self.p2p_port}"

    def height(self) -> int:
        """Tip height."""
        return self.rpc("getblockcount")

    def wait_height(self, height: int, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until the tip reaches ``height``."""
        wait_until(lambda: self.height() >= height, timeout, f"{self.name} height {height}")


class Network:
    """N validator nodes of a freshly generated chain spec, connected in a mesh."""

    def __init__(self, root: Path, factory: Callable[[str], NodeProcess], validators: int,
                 period: int = 1) -> None:
        self.root = root
        spec_dir = root / "spec"
        out = run_cli(root / "unused", "chain", "spec", "new", "testchain", "--validators",
                      str(validators), "--period", str(period), "--out", str(spec_dir),
                      json_out=True)
        assert out.returncode == 0, out.stderr
        self.spec_info = json.loads(out.stdout)
        self.spec_path = Path(self.spec_info["spec"])
        self.nodes = [factory(f"v{i + 1}") for i in range(validators)]
        for node in self.nodes:
            init = run_cli(node.datadir, "--chain", str(self.spec_path), "node", "init")
            assert init.returncode == 0, init.stderr

    def key(self, index: int) -> str:
        return self.spec_info["validator_keys"][index]

    def start_all(self, *extra: str) -> None:
        for i, node in enumerate(self.nodes):
            peers = [a for other in self.nodes[:i] for a in ("--connect", other.p2p_address)]
            node.start("--validator-key", self.key(i), *peers, *extra)

    def add_full_node(self, factory: Callable[[str], NodeProcess], name: str) -> NodeProcess:
        node = factory(name)
        init = run_cli(node.datadir, "--chain", str(self.spec_path), "node", "init")
        assert init.returncode == 0, init.stderr
        return node

    def tips(self) -> set[str]:
        return {n.rpc("getbestblockhash") for n in self.nodes if n.running()}

    def wait_synced(self, nodes: list[NodeProcess] | None = None, timeout: float = 60) -> str:
        """Wait until ``nodes`` share one tip and one UTXO set hash; returns the tip."""
        nodes = nodes or self.nodes

        def same() -> str | None:
            infos = [n.rpc("getutxosetinfo") for n in nodes]
            tips = {i["tip"] for i in infos}
            hashes = {i["utxo_set_hash"] for i in infos}
            return infos[0]["tip"] if len(tips) == 1 and len(hashes) == 1 else None

        return wait_until(same, timeout, "nodes to agree on tip and UTXO set")

"""Slow-loris against a real node: half-open RPC connections cannot starve it of file
descriptors, and the server closes them itself."""

from __future__ import annotations

import contextlib
import resource
import selectors
import socket
import time
from collections.abc import Iterator

import pytest

from o2ocli.rpc.client import RpcClient

from .framework import run_cli

FLOOD = 1200
NODE_FDS = (256, 1024)
"""The node's open-file limits (soft, hard) in this test: the flood is larger than both."""
HEADER_TIMEOUT = 10.0
PARTIAL = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic "


def _limit_node_fds() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, NODE_FDS)


def _open_file_limit(pid: int) -> tuple[int, int]:
    for line in open(f"/proc/{pid}/limits").read().splitlines():  # noqa: SIM115, PTH123
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open-file limit in /proc/PID/limits")


@contextlib.contextmanager
def _own_fd_limit(needed: int) -> Iterator[None]:
    """Let this test process hold ``needed`` sockets (restored afterwards)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard == resource.RLIM_INFINITY or hard >= needed, (
        f"the test needs {needed} open files, the hard limit is {hard}")
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _wait_all_closed(socks: list[socket.socket], timeout: float) -> float:
    """Wait until the server has closed every socket (EOF or reset); returns the time taken."""
    started = time.monotonic()
    pending = set(socks)
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        deadline = started + timeout
        while pending and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.5):
                sock = key.fileobj
                try:
                    data = sock.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    selector.unregister(sock)
                    pending.discard(sock)
    assert not pending, f"{len(pending)} of {len(socks)} half-open connections still open"
    return time.monotonic() - started


@pytest.mark.slow
def test_rpc_answers_under_1200_half_open_connections(node_factory):
    node = node_factory("loris")
    node.start("--dev", "--dev-period", "0", preexec_fn=_limit_node_fds)
    # the node raised its soft open-file limit to the hard limit
    assert _open_file_limit(node.proc.pid) == (NODE_FDS[1], NODE_FDS[1])
    client = RpcClient(f"http://127.0.0.1:{node.rpc_port}", cookie_path=node.datadir / ".cookie",
                       timeout=5)
    flood: list[socket.socket] = []
    with _own_fd_limit(FLOOD + 256):
        try:
            started = time.monotonic()
            for _ in range(FLOOD):
                sock = socket.create_connection(("127.0.0.1", node.rpc_port), timeout=10)
                flood.append(sock)
                with contextlib.suppress(OSError):  # closed already to make room: fine
                    sock.sendall(PARTIAL)
            flood_seconds = time.monotonic() - started

            # what `chain info` asks, timed
            started = time.monotonic()
            info = client.call("getinfo")
            client.call("getutxosetinfo")
            latency = time.monotonic() - started
            print(f"opened {FLOOD} half-open connections in {flood_seconds:.2f} s; "
                  f"getinfo + getutxosetinfo answered in {latency * 1000:.0f} ms")
            assert latency < 1.0, f"RPC took {latency:.2f} s under the flood"
            assert info["height"] >= 0
            out = run_cli(node.datadir, "chain", "info", json_out=True, timeout=60)
            assert out.returncode == 0, out.stderr

            # the server closes every half-open connection: to make room, or at the timeout
            closed_in = _wait_all_closed(flood, timeout=HEADER_TIMEOUT + 30)
            print(f"all closed by the server {closed_in:.1f} s after the RPC calls")

            # a lone half-open connection lasts the header timeout, no more
            started = time.monotonic()
            lone = socket.create_connection(("127.0.0.1", node.rpc_port), timeout=10)
            flood.append(lone)
            lone.sendall(PARTIAL)
            lasted = _wait_all_closed([lone], timeout=HEADER_TIMEOUT + 30)
            assert HEADER_TIMEOUT - 1 <= lasted < HEADER_TIMEOUT + 15, lasted
        finally:
            for sock in flood:
                sock.close()
    assert node.rpc("getblockcount") >= 0

"""Slow-loris defence: connection timeouts, keep-alive limits and the connection cap.

Real server on 127.0.0.1 with short timeouts, raw sockets as clients.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rpc_helpers import post_json

PARTIAL = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appli"
"""The start of a request whose headers never end."""


@contextmanager
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    try:
        yield opened
    finally:
        for sock in opened:
            sock.close()


def half_open(port: int, opened: list[socket.socket], data: bytes = PARTIAL) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    opened.append(sock)
    if data:
        sock.sendall(data)
    return sock


def wait_closed(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Read until the server closes ``sock`` (EOF or reset); returns what it sent."""
    sock.settimeout(timeout)
    received = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    raise AssertionError(f"server did not close the connection within {timeout} s")


def request_bytes(body: dict, *, keep_alive: bool = True) -> bytes:
    data = json.dumps(body).encode()
    head = (f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(data)}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n")
    return head.encode() + data


GETINFO = {"jsonrpc": "2.0", "id": 1, "method": "getinfo"}


def test_unfinished_headers_are_closed_after_the_header_timeout(start_server):
    st = start_server(header_timeout=0.5)
    with sockets() as opened:
        started = time.monotonic()
        partial = half_open(st.port, opened)
        silent = half_open(st.port, opened, b"")
        assert wait_closed(partial) == b""
        assert wait_closed(silent) == b""
        elapsed = time.monotonic() - started
    assert 0.4 <= elapsed < 5, elapsed
    assert st.run(_guard_len(st)) == 0


async def _guard_len(st) -> int:
    return len(st.server.guard)


def test_slow_body_gets_408_then_close(start_server):
    st = start_server(body_timeout=0.5)
    with sockets() as opened:
        sock = half_open(
            st.port, opened,
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"jsonrpc\":",
        )
        reply = wait_closed(sock)
    assert reply.startswith(b"HTTP/1.1 408 "), reply[:80]
    assert b"not received within 0.5 s" in reply


def test_idle_keep_alive_connection_is_closed(start_server):
    st = start_server(keepalive_timeout=0.5, header_timeout=30)
    with sockets() as opened:
        sock = half_open(st.port, opened, request_bytes(GETINFO))
        started = time.monotonic()
        reply = wait_closed(sock)
        elapsed = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert b'"blocks":0' in reply
    assert 0.4 <= elapsed < 5, elapsed


def test_keep_alive_connection_serves_several_requests_then_says_close(start_server):
    st = start_server(max_requests_per_connection=3)
    conn = http.client.HTTPConnection("127.0.0.1", st.port, timeout=10)
    try:
        answers = []
        for i in range(3):
            conn.request("POST", "/", json.dumps({**GETINFO, "id": i}))
            response = conn.getresponse()
            answers.append((json.loads(response.read())["id"], response.getheader("Connection")))
    finally:
        conn.close()
    assert answers[0] == (0, None)
    assert answers[1] == (1, None)
    assert answers[2][0] == 2
    assert answers[2][1].lower() == "close"


def test_unauthorized_request_closes_the_connection(start_server, tmp_path):
    st = start_server(cookie_path=tmp_path / ".cookie")
    with sockets() as opened:
        sock = half_open(st.port, opened, request_bytes(GETINFO))
        reply = wait_closed(sock)
    assert reply.startswith(b"HTTP/1.1 401 ")
    assert b"Connection: close" in reply


def test_connection_cap_closes_oldest_half_open_and_serves_a_real_client(start_server):
    st = start_server(max_connections=4, header_timeout=60)
    with sockets() as opened:
        flood = [half_open(st.port, opened) for _ in range(10)]
        started = time.monotonic()
        status, reply = post_json(st.url, GETINFO)
        latency = time.monotonic() - started
        # the six oldest made room for the four newer ones; then the real request made room
        for sock in flood[:7]:
            assert wait_closed(sock) == b""
        assert st.run(_guard_len(st)) <= 4
    assert status == 200 and reply["result"]["blocks"] == 0
    assert latency < 1.0, latency
    assert st.server.guard.evicted >= 7


def test_busy_connections_are_not_evicted(start_server):
    st = start_server(max_connections=1)
    result: dict[str, object] = {}

    def slow_call() -> None:
        result["reply"] = post_json(st.url, {**GETINFO, "method": "asleep", "params": [1.0]})

    caller = threading.Thread(target=slow_call)
    caller.start()
    try:
        with sockets() as opened:
            deadline = time.monotonic() + 10
            while st.run(_busy(st)) == 0:
                assert time.monotonic() < deadline, "slow call never started"
                time.sleep(0.01)
            newcomer = half_open(st.port, opened)
            assert wait_closed(newcomer, timeout=5) == b""
    finally:
        caller.join(15)
    assert result["reply"] == (200, {"jsonrpc": "2.0", "id": 1, "result": "done"})


async def _busy(st) -> int:
    return sum(1 for conn in st.server.guard._open if conn.state == "busy")

"""The test network proxy itself: pass-through, delay, partition/heal, drop, order."""

from __future__ import annotations

import os
import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from .netproxy import NetProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while True:
            try:
                data = self.request.recv(65536)
                if not data:
                    return
                self.request.sendall(data)
            except OSError:
                return


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def echo() -> Iterator[int]:
    server = _Server(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(echo: int) -> Iterator[NetProxy]:
    p = NetProxy(seed=1).start()
    p.add_node("b", echo)
    p.add_node("a", echo)  # only the "b" side is a real target here
    yield p
    p.stop()


def dial(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exact(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError(f"closed after {len(out)} of {n} bytes")
        out += chunk
    return out


def closed_by_peer(sock: socket.socket, timeout: float = 5) -> bool:
    """True once the other end closed (EOF or reset) within ``timeout``."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def rtt(sock: socket.socket, payload: bytes = b"ping") -> float:
    start = time.monotonic()
    sock.sendall(payload)
    assert recv_exact(sock, len(payload)) == payload
    return time.monotonic() - start


def test_bytes_pass_through_both_ways_unchanged(proxy):
    port = proxy.link_port("a", "b")
    data = bytes(range(256)) * 4096  # 1 MiB, several chunks
    with dial(port) as sock:
        sender = threading.Thread(target=sock.sendall, args=(data,))
        sender.start()
        assert recv_exact(sock, len(data)) == data
        sender.join(10)
    assert proxy.stats("a", "b").bytes == len(data)
    assert proxy.stats("b", "a").bytes == len(data)
    assert proxy.stats("a", "b").accepted == 1


def test_delay_and_jitter_are_applied_per_direction(proxy):
    port = proxy.link_port("a", "b")
    with dial(port) as sock:
        base = min(rtt(sock) for _ in range(3))
        assert base < 0.1
        proxy.set_delay("a", "b", 150)  # both directions: ~300 ms round trip
        slow = [rtt(sock) for _ in range(3)]
        assert all(0.29 <= r < 0.29 + 0.3 for r in slow), slow
        proxy.set_delay("a", "b", 100, both=False)  # only a -> b now
        proxy.set_delay("b", "a", 0, both=False)
        one_way = rtt(sock)
        assert 0.095 <= one_way < 0.095 + 0.3, one_way
        proxy.set_delay("a", "b", 0, jitter_ms=200)
        jittery = [rtt(sock) for _ in range(8)]
        assert all(r < 0.5 for r in jittery), jittery
        assert max(jittery) - min(jittery) > 0.02, jittery
        proxy.clear_delays()
        assert rtt(sock) < 0.1


def test_delay_keeps_bytes_of_one_stream_in_order(proxy):
    port = proxy.link_port("a", "b")
    proxy.set_delay("a", "b", 5, jitter_ms=50)
    proxy.set_reorder(50)
    with dial(port) as sock:
        parts = [i.to_bytes(4, "big") for i in range(200)]
        for part in parts:
            sock.sendall(part)
        assert recv_exact(sock, 800) == b"".join(parts)


def test_reorder_lets_connections_overtake_each_other(proxy):
    """With a random extra delay per chunk, a message sent later on one
    connection sometimes arrives before one sent earlier on another."""
    port = proxy.link_port("a", "b")
    proxy.set_reorder(80)
    overtaken = 0
    with dial(port) as first, dial(port) as second:
        for _ in range(20):
            first.sendall(b"1")
            second.sendall(b"2")
            arrived: dict[str, float] = {}

            def wait(sock: socket.socket, name: str, arrived: dict[str, float] = arrived) -> None:
                recv_exact(sock, 1)
                arrived[name] = time.monotonic()

            threads = [threading.Thread(target=wait, args=(s, n))
                       for s, n in ((first, "1"), (second, "2"))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(5)
            overtaken += arrived["2"] < arrived["1"]
    assert overtaken > 0


def test_partition_refuses_and_closes_then_heal_restores(proxy):
    port = proxy.link_port("a", "b")
    with dial(port) as sock:
        assert rtt(sock) < 1
        proxy.partition([{"a"}, {"b"}])
        assert closed_by_peer(sock)
    assert proxy.connections("a", "b") == 0
    with dial(port) as refused:  # accepted by the listener, then closed at once
        assert closed_by_peer(refused)
    assert proxy.stats("a", "b").refused >= 1
    # A partition that keeps a and b together does not block them.
    proxy.partition([{"a", "b"}])
    with dial(port) as sock:
        assert rtt(sock) < 1
    proxy.isolate("a")
    with dial(port) as refused:
        assert closed_by_peer(refused)
    proxy.heal()
    with dial(port) as sock:
        assert rtt(sock) < 1
        assert proxy.connections("a", "b") == 1


def test_partition_drops_bytes_in_flight(proxy):
    port = proxy.link_port("a", "b")
    proxy.set_delay("a", "b", 500, both=False)
    with dial(port) as sock:
        sock.sendall(b"x" * 1000)
        deadline = time.monotonic() + 5
        while proxy.connections("a", "b") == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)  # the bytes reached the proxy and wait in its queue
        proxy.partition([{"a"}, {"b"}])
        assert closed_by_peer(sock)
    deadline = time.monotonic() + 5
    while proxy.stats("a", "b").dropped_bytes < 1000 and time.monotonic() < deadline:
        time.sleep(0.01)
    stats = proxy.stats("a", "b")
    assert stats.bytes == 0 and stats.dropped_bytes == 1000, stats


def test_drop_link_closes_both_ends_and_new_connections_work(proxy):
    port = proxy.link_port("a", "b")
    with dial(port) as one, dial(port) as two:
        assert rtt(one) < 1 and rtt(two) < 1
        assert proxy.connections("a", "b") == 2
        assert proxy.drop_link("b", "a") == 2
        assert closed_by_peer(one) and closed_by_peer(two)
    with dial(port) as again:
        assert rtt(again) < 1


def test_unreachable_target_closes_the_client(proxy):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]  # bound but not listening: connection refused
        proxy.add_node("dead", dead)
        port = proxy.link_port("a", "dead")
        with dial(port) as client:
            assert closed_by_peer(client)
    assert proxy.stats("a", "dead").refused == 1


def test_buffer_is_bounded_when_the_receiver_does_not_read():
    """A receiver that never reads: the proxy holds at most max_buffer bytes
    (plus socket buffers), so the sender's writes eventually block."""
    with socket.socket() as sink, NetProxy(max_buffer=256 * 1024) as p:
        sink.bind(("127.0.0.1", 0))
        sink.listen()  # accepted by the kernel, never read
        p.add_node("b", sink.getsockname()[1])
        port = p.link_port("a", "b")
        with dial(port) as sock:
            sock.setblocking(False)
            sent = 0
            deadline = time.monotonic() + 20
            stalled_since = None
            while time.monotonic() < deadline:
                try:
                    sent += sock.send(b"z" * 65536)
                    stalled_since = None
                except BlockingIOError:
                    stalled_since = stalled_since or time.monotonic()
                    if time.monotonic() - stalled_since > 0.5:
                        break
                    time.sleep(0.01)
            assert stalled_since is not None, f"never blocked after {sent} bytes"
            assert sent < 32 * 1024 * 1024, sent
            assert p.stats("a", "b").bytes < sent


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_stop_closes_everything(echo):
    before = open_fds()
    p = NetProxy().start()
    p.add_node("b", echo)
    p.add_node("a", echo)
    port = p.link_port("a", "b")
    p.link_port("b", "a")
    sock = dial(port)
    assert rtt(sock) < 1
    p.set_delay("a", "b", 300)
    sock.sendall(b"in flight")  # still queued in the proxy when it stops
    assert p.connections() == 1
    p.stop()
    assert closed_by_peer(sock)
    sock.close()
    with pytest.raises(OSError):
        dial(port).close()
    assert not any(t.name == "netproxy" for t in threading.enumerate())
    # Every listener, connection and the loop's own descriptors are closed.
    wait = time.monotonic() + 5
    while open_fds() > before and time.monotonic() < wait:
        time.sleep(0.05)
    assert open_fds() <= before

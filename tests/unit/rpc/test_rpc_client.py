"""The synchronous client against a real server."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import pytest

from o2ocli.rpc import NodeUnreachable, RpcAuthError, RpcClient, RpcError
from o2ocli.rpc.errors import INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, TX_REJECTED


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_call_and_call_named(server):
    client = RpcClient(server.url)
    assert client.call("add", 2, 3) == 5
    assert client.call_named("add", a=2, b=10) == 12
    assert client.call("getinfo") == {"version": "0.1.0", "blocks": 0}
    assert client.call("asleep", 0, None) is None


def test_errors_are_raised_as_rpc_error(server):
    client = RpcClient(server.url)
    with pytest.raises(RpcError) as info:
        client.call("reject")
    assert (info.value.code, info.value.data) == (TX_REJECTED, {"reason": "fee-too-low"})
    with pytest.raises(RpcError) as info:
        client.call("nosuch")
    assert info.value.code == METHOD_NOT_FOUND
    with pytest.raises(RpcError) as info:
        client.call_named("add", b=1)
    assert info.value.code == INVALID_PARAMS
    with pytest.raises(RpcError) as info:
        client.call("getbytes")
    assert info.value.code == INTERNAL_ERROR


def test_batch(server):
    client = RpcClient(server.url)
    results = client.batch([("add", [1, 2]), ("nosuch", []), ("add", {"a": 7}), ("echo", ["x"])])
    assert results[0] == 3
    assert isinstance(results[1], RpcError) and results[1].code == METHOD_NOT_FOUND
    assert results[2:] == [7, "x"]
    assert client.batch([]) == []


def test_batch_refused_as_a_whole_raises(start_server):
    st = start_server(max_batch=2)
    with pytest.raises(RpcError, match="batch"):
        RpcClient(st.url).batch([("add", [1])] * 3)


def test_closed_port_is_node_unreachable_quickly():
    port = closed_port()
    started = time.monotonic()
    with pytest.raises(NodeUnreachable) as info:
        RpcClient(f"http://127.0.0.1:{port}").call("getinfo")
    assert time.monotonic() - started < 2
    assert str(info.value) == f"node is not running (no answer at http://127.0.0.1:{port}/)"


def test_missing_cookie_is_node_unreachable(tmp_path):
    client = RpcClient("http://127.0.0.1:1", cookie_path=tmp_path / ".cookie")
    with pytest.raises(NodeUnreachable, match="no cookie file"):
        client.call("getinfo")


def test_malformed_cookie_is_auth_error(server, tmp_path):
    cookie = tmp_path / ".cookie"
    cookie.write_text("nocolon")
    with pytest.raises(RpcAuthError):
        RpcClient(server.url, cookie_path=cookie).call("getinfo")


def test_timeout_is_node_unreachable(server):
    client = RpcClient(server.url, timeout=0.2)
    started = time.monotonic()
    with pytest.raises(NodeUnreachable, match="did not answer"):
        client.call("asleep", 1.0)
    assert time.monotonic() - started < 1.0


def test_not_a_json_rpc_server_is_malformed():
    # a bare HTTP server answering 200 with a non-JSON body
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        with pytest.raises(RpcError) as info:
            RpcClient(f"http://127.0.0.1:{listener.getsockname()[1]}").call("getinfo")
        assert info.value.code == INTERNAL_ERROR
    finally:
        thread.join(5)
        listener.close()


def test_url_credentials_are_not_kept_in_url():
    client = RpcClient("http://alice:s%40cret@127.0.0.1:19443")
    assert client.url == "http://127.0.0.1:19443/"
    assert (client.user, client.password) == ("alice", "s@cret")
    with pytest.raises(ValueError):
        RpcClient("ftp://127.0.0.1/")


def test_importing_the_package_does_not_load_aiohttp():
    code = (
        "import sys, o2ocli.rpc; "
        "heavy = ('aiohttp', 'o2ocli.rpc.server', 'urllib.request'); "
        "print([m for m in heavy if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

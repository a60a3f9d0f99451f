"""Cookie authentication, the cookie file's lifecycle, and the loopback-only bind."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import stat

import pytest
from rpc_helpers import make_methods, post_json, raw_post

from o2ocli.rpc import RpcAuthError, RpcClient
from o2ocli.rpc.errors import INVALID_REQUEST
from o2ocli.rpc.server import RpcServer

REQUEST = {"jsonrpc": "2.0", "id": 1, "method": "add", "params": [1, 2]}


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def authed(start_server, tmp_path):
    cookie = tmp_path / "data" / ".cookie"
    st = start_server(cookie_path=cookie)
    return st, cookie


def test_cookie_file_format_and_mode(authed):
    _, cookie = authed
    text = cookie.read_text()
    assert re.fullmatch(r"__cookie__:[0-9a-f]{64}", text)
    assert stat.S_IMODE(cookie.stat().st_mode) == 0o600
    assert [p.name for p in cookie.parent.iterdir()] == [".cookie"]  # no temp file left


def test_no_credentials_is_401(authed):
    st, _ = authed
    status, headers, data = raw_post(st.url, json.dumps(REQUEST))
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Basic realm="o2ocli"'
    reply = json.loads(data)
    assert reply["id"] is None
    assert reply["error"] == {"code": INVALID_REQUEST, "message": "unauthorized"}
    # unauthenticated requests are refused before anything else is looked at
    assert raw_post(st.url, b"", method="GET")[0] == 401


@pytest.mark.parametrize(
    "headers",
    [
        basic("__cookie__", "0" * 64),
        basic("someone", "x"),
        {"Authorization": "Bearer abc"},
        {"Authorization": "Basic !!!not-base64"},
    ],
)
def test_wrong_credentials_are_401(authed, headers):
    st, _ = authed
    assert raw_post(st.url, json.dumps(REQUEST), headers=headers)[0] == 401


def test_right_cookie_is_accepted(authed):
    st, cookie = authed
    user, password = cookie.read_text().split(":")
    status, reply = post_json(st.url, REQUEST, headers=basic(user, password))
    assert (status, reply["result"]) == (200, 3)
    assert RpcClient(st.url, cookie_path=cookie).call("add", 4, 5) == 9
    assert RpcClient(f"http://{user}:{password}@127.0.0.1:{st.port}").call("add", 1) == 1


def test_client_with_wrong_password_raises_auth_error(authed):
    st, _ = authed
    client = RpcClient(st.url, user="__cookie__", password="wrong")
    with pytest.raises(RpcAuthError, match="cookie file may be stale"):
        client.call("add", 1)


def test_stale_cookie_after_restart(start_server, tmp_path):
    cookie = tmp_path / ".cookie"
    first = start_server(cookie_path=cookie)
    stale = cookie.read_text()
    first.stop()
    assert not cookie.exists()  # deleted on stop
    second = start_server(cookie_path=cookie, port=0)
    assert cookie.read_text() != stale  # a new password at each start
    user, password = stale.split(":")
    with pytest.raises(RpcAuthError):
        RpcClient(second.url, user=user, password=password).call("add", 1)
    # the client re-reads the cookie at each call
    assert RpcClient(second.url, cookie_path=cookie).call("add", 2) == 2


def test_cookie_deleted_on_stop(start_server, tmp_path):
    cookie = tmp_path / ".cookie"
    st = start_server(cookie_path=cookie)
    assert cookie.exists()
    st.stop()
    assert not cookie.exists()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com", ""])
def test_non_loopback_bind_refused(host):
    with pytest.raises(ValueError, match="non-loopback"):
        RpcServer(make_methods(), host=host)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "localhost", "LOCALHOST"])
def test_loopback_hosts_allowed(host):
    RpcServer(make_methods(), host=host)


def test_allow_remote_permits_any_address():
    server = RpcServer(make_methods(), host="0.0.0.0", allow_remote=True)
    assert server.host == "0.0.0.0"


def test_start_and_stop_with_asyncio_run(tmp_path):
    cookie = tmp_path / ".cookie"

    async def scenario() -> None:
        server = RpcServer(make_methods(), host="::1", cookie_path=cookie)
        try:
            port = await server.start()
        except OSError:
            pytest.skip("no IPv6 loopback")
        try:
            assert port > 0 and server.url == f"http://[::1]:{port}/"
            client = RpcClient(server.url, cookie_path=cookie)
            assert await asyncio.to_thread(client.call, "add", 20, 22) == 42
        finally:
            await server.stop()
        assert not cookie.exists()
        await server.stop()  # idempotent

    asyncio.run(scenario())

"""Helpers for the RPC tests: a real server on 127.0.0.1 (port 0) in a background thread.

The server runs on its own event loop in a daemon thread, so the synchronous client (and raw
``urllib``/``http.client`` requests) can talk to it from the test's thread.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Coroutine
from typing import Any

from o2ocli.rpc.errors import TX_REJECTED, RpcError
from o2ocli.rpc.server import RpcMethods, RpcServer


class ServerThread:
    """An :class:`RpcServer` started on its own loop in a daemon thread."""

    def __init__(self, methods: RpcMethods, **kwargs: Any) -> None:
        self.server = RpcServer(methods, **kwargs)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        try:
            self.port = self.run(self.server.start())
        except BaseException:
            self._stop_loop()
            raise
        self.url = f"http://127.0.0.1:{self.port}/"

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        try:
            self.run(self.server.stop())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def make_methods() -> RpcMethods:
    """A registry of small test methods covering each kind of behaviour."""
    methods = RpcMethods()

    @methods.method("echo")
    def echo(value: Any) -> Any:
        return value

    @methods.method("add")
    def add(a: int, b: int = 0) -> int:
        return a + b

    @methods.method("getinfo")
    def getinfo() -> dict[str, Any]:
        return {"version": "0.1.0", "blocks": 0}

    @methods.method("typeerror_inside")
    def typeerror_inside(x: int) -> int:
        return len(x)  # TypeError raised *inside* the method

    @methods.method("boom")
    def boom() -> None:
        raise ValueError("secret internal detail")

    @methods.method("reject")
    def reject() -> None:
        raise RpcError(TX_REJECTED, "transaction rejected: fee too low", {"reason": "fee-too-low"})

    @methods.method("asleep")
    async def asleep(seconds: float, value: Any = "done") -> Any:
        await asyncio.sleep(seconds)
        return value

    @methods.method("getbytes")
    def getbytes() -> bytes:
        return b"\x00\x01"

    return methods


def raw_post(
    url: str,
    body: bytes | str,
    *,
    method: str = "POST",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """Send ``body`` as is; returns (HTTP status, headers, response body), errors included."""
    if isinstance(body, str):
        body = body.encode()
    request = urllib.request.Request(
        url,
        data=body if method == "POST" else None,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()


def post_json(url: str, payload: Any, **kwargs: Any) -> tuple[int, Any]:
    """POST ``payload`` as JSON; returns (HTTP status, decoded reply or None if empty)."""
    status, _, data = raw_post(url, json.dumps(payload), **kwargs)
    return status, json.loads(data) if data else None

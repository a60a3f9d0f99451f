"""The RPC server's connection guard: timeouts and a cap on open connections.

Connections (slow-loris defence)
--------------------------------
A client that opens connections and never finishes a request must not be able to use up the
node's file descriptors. Every connection passes through :class:`ConnectionGuard`:

* a request's line and headers must arrive within ``header_timeout`` (10 s) of the connection
  being opened (or of its first byte after an idle keep-alive pause), its body within
  ``body_timeout`` (30 s) of the headers; otherwise the connection is closed (for a body,
  after a 408 answer and at most 2 s of draining what is still sent);
* an idle keep-alive connection is closed after ``keepalive_timeout`` (15 s), and after
  ``max_requests_per_connection`` (1,000) requests the answer says ``Connection: close``;
* at most ``max_connections`` (128) connections are open at once: a new connection over the
  cap closes the oldest connection that is not running a request (one that never completed
  a request first), or is itself closed if all are busy. So a flood of half-open
  connections costs at most ``max_connections`` file descriptors, and a real client always
  gets a slot.

Header lines are capped at 8,190 bytes and 64 header fields. A client that disconnects while
its request runs does not cancel the method (aiohttp's ``handler_cancellation`` stays off): a
method that changes state is never stopped half-way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web

__all__ = ["ConnectionGuard", "GuardedConnection", "GuardedTCPSite"]

log = logging.getLogger("o2ocli.rpc.server")


_FRESH = "fresh"
"""Connected, no request completed yet (its headers are due ``header_timeout`` after connect)."""
_BUSY = "busy"
"""A request is being handled (headers complete)."""
_IDLE = "idle"
"""Keep-alive pause between requests (closed after ``keepalive_timeout``)."""
_READING = "reading"
"""Bytes of a further request arrived after an idle pause; its headers are due."""


class GuardedConnection(asyncio.Protocol):
    """One accepted connection: forwards everything to aiohttp's protocol, and tells the guard
    what happens so it can time the connection out or close it to make room."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self.guard = guard
        self.inner = inner
        self.transport: asyncio.Transport | None = None
        self.state = _FRESH
        self.requests = 0
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.inner.connection_made(transport)
        self.guard.opened(self)

    def data_received(self, data: bytes) -> None:
        if self.state == _IDLE:
            self.state = _READING
            self.guard.arm(self, self.guard.header_timeout)
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.forget(self)
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class ConnectionGuard:
    """Bookkeeping of the open connections (oldest first): deadlines and the cap."""

    def __init__(
        self,
        *,
        max_connections: int,
        header_timeout: float,
        keepalive_timeout: float,
    ) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.keepalive_timeout = keepalive_timeout
        self._open: dict[GuardedConnection, None] = {}  # insertion order = age
        self._by_transport: dict[asyncio.BaseTransport, GuardedConnection] = {}
        self.timed_out = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._open)

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for ``loop.create_server`` around aiohttp's ``factory``."""
        return lambda: GuardedConnection(self, factory())

    def opened(self, conn: GuardedConnection) -> None:
        assert conn.transport is not None
        self._open[conn] = None
        self._by_transport[conn.transport] = conn
        self.arm(conn, self.header_timeout)
        if len(self._open) > self.max_connections:
            victim = self._victim()
            if victim is None:
                log.debug("RPC: %d connections all busy; refusing a new one", len(self._open) - 1)
                victim = conn
            else:
                self.evicted += 1
            self.close(victim)

    def _victim(self) -> GuardedConnection | None:
        """The oldest connection that never completed a request, else the oldest idle one."""
        idle = None
        for conn in self._open:
            if conn.state == _FRESH:
                return conn
            if idle is None and conn.state != _BUSY:
                idle = conn
        return idle

    def arm(self, conn: GuardedConnection, delay: float) -> None:
        """Close ``conn`` after ``delay`` seconds unless its state changes first."""
        if conn.timer is not None:
            conn.timer.cancel()
        conn.timer = asyncio.get_running_loop().call_later(delay, self._expire, conn)

    def _expire(self, conn: GuardedConnection) -> None:
        conn.timer = None
        if conn in self._open and conn.state != _BUSY:
            self.timed_out += 1
            log.debug("RPC: closing a connection (%s for too long)", conn.state)
            self.close(conn)

    def close(self, conn: GuardedConnection) -> None:
        """Close ``conn`` now and stop counting it."""
        self.forget(conn)
        if conn.transport is not None:
            conn.transport.close()

    def forget(self, conn: GuardedConnection) -> None:
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        self._open.pop(conn, None)
        if conn.transport is not None:
            self._by_transport.pop(conn.transport, None)

    def request_started(self, transport: asyncio.BaseTransport | None) -> GuardedConnection | None:
        """The request's headers are complete: no deadline while it runs."""
        conn = self._by_transport.get(transport) if transport is not None else None
        if conn is not None:
            conn.state = _BUSY
            conn.requests += 1
            if conn.timer is not None:
                conn.timer.cancel()
                conn.timer = None
        return conn

    def request_finished(self, conn: GuardedConnection | None) -> None:
        """The answer is ready: the connection idles until its next request."""
        if conn is not None and conn in self._open:
            conn.state = _IDLE
            self.arm(conn, self.keepalive_timeout)

    def close_all(self) -> None:
        for conn in list(self._open):
            self.close(conn)


class GuardedTCPSite(web.BaseSite):
    """``web.TCPSite`` whose connections go through a :class:`ConnectionGuard`."""

    __slots__ = ("_host", "_port", "_guard")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, guard: ConnectionGuard,
                 backlog: int = 128) -> None:
        super().__init__(runner, backlog=backlog)
        self._host = host
        self._port = port
        self._guard = guard

    @property
    def name(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._guard.wrap(server), self._host, self._port, backlog=self._backlog
        )

    @property
    def port(self) -> int:
        """The bound port."""
        assert self._server is not None and self._server.sockets
        return int(self._server.sockets[0].getsockname()[1])

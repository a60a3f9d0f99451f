"""JSON-RPC 2.0 over HTTP: the node's control interface.

Protocol
--------
* ``POST /`` with a JSON-RPC 2.0 body; any other HTTP method is answered 405, any other
  path 404. The ``Content-Type`` is not checked.
* A request is ``{"jsonrpc": "2.0", "id": <str|number|null>, "method": <str>,
  "params": <list|object>}``; ``params`` may be omitted (no arguments), given by position
  (list) or by name (object). A request without ``id`` is a notification: it runs, but gets
  no response entry.
* A batch is a JSON array of requests, answered by an array of the non-notification
  responses, in request order. An empty batch is one ``-32600`` error; a batch of only
  notifications (like a single notification) is answered ``204 No Content``. Batches are
  capped (``max_batch``, 10,000 by default).
* A response is ``{"jsonrpc": "2.0", "id": ..., "result": ...}`` or
  ``{"jsonrpc": "2.0", "id": ..., "error": {"code": ..., "message": ...[, "data": ...]}}``,
  always with HTTP 200 for JSON-RPC-level errors. Codes: see :mod:`o2ocli.rpc.errors`
  (standard -327xx codes, plus bitcoind-like ones such as -26 ``TX_REJECTED``, whose
  ``data`` is ``{"reason": ...}``). Unexpected failures are ``-32603`` with a short
  message; the traceback goes to the node log only.
* HTTP-level refusals carry a JSON-RPC error body with ``id: null``: 401 (bad or missing
  credentials, with ``WWW-Authenticate: Basic realm="o2ocli"``), 405, 404, 408 (body not
  received within ``body_timeout``) and 413 (body larger than ``max_body``, 8 MiB by
  default). After a 401 or 408 the server closes the connection.

Connections (slow-loris defence)
--------------------------------
A client that opens connections and never finishes a request must not be able to use up the
node's file descriptors. Every connection passes through :class:`_ConnectionGuard`:

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

Authentication
--------------
Like bitcoind's cookie: at start the server writes ``<cookie_path>`` (mode 0600, atomically)
containing ``__cookie__:<64 hex chars>``, a new random password each start, and deletes it at
stop. Every request needs HTTP Basic auth with exactly that user and password. The server
binds loopback addresses only unless ``allow_remote=True``.

By hand::

    curl --user __cookie__:$(cut -d: -f2 ~/.o2ocli/dev/.cookie) \\
        --data-binary '{"jsonrpc":"2.0","id":1,"method":"getinfo","params":[]}' \\
        -H 'content-type: application/json' http://127.0.0.1:19443/

Methods
-------
Methods live in an :class:`RpcMethods` registry; they may be plain or ``async`` callables and
run on the server's event loop (plain ones are called directly, so they must be fast). They
return JSON-serializable values (hex strings, never ``bytes``) and signal failures by raising
:class:`RpcError`. ``await methods.call(name, params)`` runs one without HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import inspect
import ipaddress
import json
import logging
import math
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from o2ocli.fsmodes import make_private_dir

from .errors import (
    DESERIALIZATION_ERROR,
    ERROR_NAMES,
    IN_WARMUP,
    INTERNAL_ERROR,
    INVALID_ADDRESS,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    MISC_ERROR,
    NOT_FOUND,
    PARSE_ERROR,
    TX_ALREADY_KNOWN,
    TX_MISSING_INPUTS,
    TX_REJECTED,
    RpcError,
    tx_rejected,
)

__all__ = [
    "DESERIALIZATION_ERROR",
    "ERROR_NAMES",
    "IN_WARMUP",
    "INTERNAL_ERROR",
    "INVALID_ADDRESS",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "MISC_ERROR",
    "NOT_FOUND",
    "PARSE_ERROR",
    "TX_ALREADY_KNOWN",
    "TX_MISSING_INPUTS",
    "TX_REJECTED",
    "RpcError",
    "RpcMethods",
    "RpcServer",
    "tx_rejected",
]

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_USER = "__cookie__"
DEFAULT_MAX_BODY = 8 * 1024 * 1024
DEFAULT_MAX_BATCH = 10_000
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 30.0
DEFAULT_KEEPALIVE_TIMEOUT = 15.0
DEFAULT_MAX_CONNECTIONS = 128
DEFAULT_MAX_REQUESTS_PER_CONNECTION = 1000
MAX_HEADER_LINE = 8190
MAX_HEADERS = 64
LINGERING_TIME = 2.0
"""Seconds an answered connection keeps reading (and dropping) an unread body before it is
closed, so the client sees the answer instead of a reset."""
REALM = "o2ocli"

_NO_ID = object()
"""Marks a request without an ``id`` member (a notification)."""

_P = inspect.Parameter


def _dumps(obj: Any) -> str:
    """Compact, strict JSON (``NaN``/``Infinity`` are not JSON and are refused)."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


def _finite_float(text: str) -> float:
    """A JSON number with a fraction or exponent; one that overflows (``1e999``)
    is refused, as it could not be written back (an id is echoed)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:32]} is out of range")
    return value


def _loads(body: bytes) -> Any:
    """Parse a request body; any failure is a ``ValueError``."""
    try:
        return json.loads(body, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


# ---------------------------------------------------------------------------------------------
# Method registry
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Method:
    name: str
    func: Callable[..., Any]
    signature: inspect.Signature
    by_keyword: bool
    """Call with ``func(**arguments)`` (when ``params=`` renamed/reordered the parameters)."""

    def usage(self) -> str:
        parts = [self.name]
        for p in self.signature.parameters.values():
            if p.kind is _P.VAR_POSITIONAL:
                parts.append(f"[{p.name}...]")
            elif p.kind is _P.VAR_KEYWORD:
                parts.append(f"[{p.name}=...]")
            elif p.default is _P.empty:
                parts.append(f"<{p.name}>" if p.kind is not _P.KEYWORD_ONLY else f"{p.name}=<...>")
            else:
                try:
                    default = _dumps(p.default)
                except (TypeError, ValueError):
                    default = repr(p.default)
                parts.append(f"[{p.name}={default}]")
        return " ".join(parts)


class RpcMethods:
    """Registry of the callables exposed over JSON-RPC, and dispatcher.

    ::

        methods = RpcMethods()

        @methods.method("getblock")
        async def getblock(blockhash: str, verbosity: int = 1) -> dict: ...

        methods.register("getinfo", node.getinfo)
    """

    def __init__(self) -> None:
        self._methods: dict[str, _Method] = {}

    # -- registration -------------------------------------------------------------------------

    def register(
        self, name: str, func: Callable[..., Any], *, params: list[str] | None = None
    ) -> None:
        """Expose ``func`` as ``name``.

        The accepted parameters come from ``inspect.signature(func)``. ``params`` instead lists
        the exposed parameter names in positional order: each must be a parameter of ``func``
        that can be passed by keyword (or ``func`` takes ``**kwargs``), and the parameters of
        ``func`` left out must have defaults. Raises ``ValueError`` on a duplicate name or an
        impossible ``params``.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"RPC method name must be a non-empty string, not {name!r}")
        if name in self._methods:
            raise ValueError(f"RPC method {name!r} is already registered")
        if not callable(func):
            raise TypeError(f"RPC method {name!r}: {func!r} is not callable")
        try:
            signature = inspect.signature(func)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"RPC method {name!r}: cannot read the signature: {exc}") from exc
        by_keyword = False
        if params is not None:
            signature = self._exposed_signature(name, signature, params)
            by_keyword = True
        self._methods[name] = _Method(name, func, signature, by_keyword)

    @staticmethod
    def _exposed_signature(
        name: str, signature: inspect.Signature, params: list[str]
    ) -> inspect.Signature:
        if isinstance(params, str) or len(set(params)) != len(params):
            raise ValueError(f"RPC method {name!r}: params must be a list of distinct names")
        original = signature.parameters
        takes_kwargs = any(p.kind is _P.VAR_KEYWORD for p in original.values())
        exposed = []
        for pname in params:
            if not isinstance(pname, str) or not pname.isidentifier():
                raise ValueError(f"RPC method {name!r}: bad parameter name {pname!r}")
            p = original.get(pname)
            if p is None:
                if not takes_kwargs:
                    raise ValueError(f"RPC method {name!r}: function has no parameter {pname!r}")
                default = _P.empty
            elif p.kind in (_P.POSITIONAL_OR_KEYWORD, _P.KEYWORD_ONLY):
                default = p.default
            else:
                raise ValueError(
                    f"RPC method {name!r}: parameter {pname!r} cannot be passed by name"
                )
            exposed.append(_P(pname, _P.POSITIONAL_OR_KEYWORD, default=default))
        for p in original.values():
            if (
                p.name not in params
                and p.default is _P.empty
                and p.kind not in (_P.VAR_POSITIONAL, _P.VAR_KEYWORD)
            ):
                raise ValueError(
                    f"RPC method {name!r}: parameter {p.name!r} is not exposed and has no default"
                )
        try:
            return inspect.Signature(exposed)
        except ValueError as exc:
            raise ValueError(f"RPC method {name!r}: {exc}") from exc

    def method(
        self, name: str | Callable[..., Any] | None = None, *, params: list[str] | None = None
    ) -> Any:
        """Decorator form of :meth:`register`: ``@methods.method("getblock")``.

        ``@methods.method()`` and bare ``@methods.method`` use the function's ``__name__``.
        The function is returned unchanged.
        """
        if callable(name):
            func = name
            self.register(func.__name__, func, params=params)
            return func

        def decorator(func: F) -> F:
            self.register(name or func.__name__, func, params=params)
            return func

        return decorator

    # -- introspection ------------------------------------------------------------------------

    def __contains__(self, name: object) -> bool:
        return name in self._methods

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._methods))

    def __len__(self) -> int:
        return len(self._methods)

    def names(self) -> list[str]:
        """Registered method names, sorted."""
        return sorted(self._methods)

    def usage(self, name: str) -> str:
        """One-line usage, e.g. ``getblock <blockhash> [verbosity=1]``; ``KeyError`` if unknown."""
        return self._methods[name].usage()

    # -- dispatch -----------------------------------------------------------------------------

    def _bind(self, m: _Method, params: list[Any] | dict[str, Any]) -> inspect.BoundArguments:
        def invalid(detail: str) -> RpcError:
            return RpcError(INVALID_PARAMS, f"{m.name}: {detail} (usage: {m.usage()})")

        plist = list(m.signature.parameters.values())
        kinds = {p.kind for p in plist}
        try:
            if isinstance(params, list):
                if _P.VAR_POSITIONAL not in kinds:
                    most = sum(
                        p.kind in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD) for p in plist
                    )
                    if len(params) > most:
                        raise invalid(
                            f"too many parameters: got {len(params)}, takes at most {most}"
                        )
                return m.signature.bind(*params)
            if _P.VAR_KEYWORD not in kinds:
                accepted = [
                    p.name for p in plist if p.kind in (_P.POSITIONAL_OR_KEYWORD, _P.KEYWORD_ONLY)
                ]
                unknown = [k for k in params if k not in accepted]
                if unknown:
                    names = ", ".join(repr(k) for k in unknown)
                    raise invalid(
                        f"unknown parameter {names} (accepted: {', '.join(accepted) or 'none'})"
                    )
            return m.signature.bind(**params)
        except TypeError as exc:
            detail = str(exc).replace(
                "missing a required argument: ", "missing required parameter "
            )
            raise invalid(detail) from None

    async def _invoke(self, name: str, params: list[Any] | dict[str, Any] | None) -> Any:
        """Run ``name``; every failure is an :class:`RpcError`. The result is not checked."""
        m = self._methods.get(name)
        if m is None:
            raise RpcError(METHOD_NOT_FOUND, f"Method not found: {name}")
        if params is None:
            params = []
        if not isinstance(params, list | dict):
            raise RpcError(INVALID_REQUEST, "params must be an array or an object")
        bound = self._bind(m, params)
        try:
            if m.by_keyword:
                result = m.func(**bound.arguments)
            else:
                result = m.func(*bound.args, **bound.kwargs)
            if inspect.isawaitable(result):
                result = await result
        except RpcError:
            raise
        except Exception as exc:
            log.exception("RPC method %s failed", name)
            raise RpcError(
                INTERNAL_ERROR, f"internal error in {name} ({type(exc).__name__}); see the node log"
            ) from exc
        return result

    async def call(self, name: str, params: list[Any] | dict[str, Any] | None = None) -> Any:
        """Run method ``name`` in-process, exactly as over HTTP, and return its result.

        Raises :class:`RpcError` for everything a client would see as an error: unknown
        method, invalid params, an error raised by the method, an unexpected exception
        (``INTERNAL_ERROR``, chained) or a result that is not JSON-serializable.
        """
        result = await self._invoke(name, params)
        try:
            _dumps(result)
        except (TypeError, ValueError) as exc:
            raise _not_serializable(name, exc) from exc
        return result

    def call_sync(self, name: str, params: list[Any] | dict[str, Any] | None = None) -> Any:
        """:meth:`call` from synchronous code with no running event loop (tests, scripts)."""
        return asyncio.run(self.call(name, params))


def _not_serializable(name: str, exc: Exception) -> RpcError:
    log.error("RPC method %s returned a value that is not JSON-serializable: %s", name, exc)
    return RpcError(INTERNAL_ERROR, f"internal error in {name}: result is not JSON-serializable")


# ---------------------------------------------------------------------------------------------
# HTTP server
# ---------------------------------------------------------------------------------------------


def is_loopback_host(host: str) -> bool:
    """``localhost``, ``127.0.0.0/8`` or ``::1`` (an IPv6 address may be bracketed)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _error_response(id_: Any, error: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "error": error.to_dict()}


def _valid_id(id_: Any) -> bool:
    return id_ is None or (isinstance(id_, str | int | float) and not isinstance(id_, bool))


# ---------------------------------------------------------------------------------------------
# Connection guard: timeouts and a cap on open connections
# ---------------------------------------------------------------------------------------------

_FRESH = "fresh"
"""Connected, no request completed yet (its headers are due ``header_timeout`` after connect)."""
_BUSY = "busy"
"""A request is being handled (headers complete)."""
_IDLE = "idle"
"""Keep-alive pause between requests (closed after ``keepalive_timeout``)."""
_READING = "reading"
"""Bytes of a further request arrived after an idle pause; its headers are due."""


class _GuardedConnection(asyncio.Protocol):
    """One accepted connection: forwards everything to aiohttp's protocol, and tells the guard
    what happens so it can time the connection out or close it to make room."""

    def __init__(self, guard: _ConnectionGuard, inner: asyncio.Protocol) -> None:
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


class _ConnectionGuard:
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
        self._open: dict[_GuardedConnection, None] = {}  # insertion order = age
        self._by_transport: dict[asyncio.BaseTransport, _GuardedConnection] = {}
        self.timed_out = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._open)

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for ``loop.create_server`` around aiohttp's ``factory``."""
        return lambda: _GuardedConnection(self, factory())

    def opened(self, conn: _GuardedConnection) -> None:
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

    def _victim(self) -> _GuardedConnection | None:
        """The oldest connection that never completed a request, else the oldest idle one."""
        idle = None
        for conn in self._open:
            if conn.state == _FRESH:
                return conn
            if idle is None and conn.state != _BUSY:
                idle = conn
        return idle

    def arm(self, conn: _GuardedConnection, delay: float) -> None:
        """Close ``conn`` after ``delay`` seconds unless its state changes first."""
        if conn.timer is not None:
            conn.timer.cancel()
        conn.timer = asyncio.get_running_loop().call_later(delay, self._expire, conn)

    def _expire(self, conn: _GuardedConnection) -> None:
        conn.timer = None
        if conn in self._open and conn.state != _BUSY:
            self.timed_out += 1
            log.debug("RPC: closing a connection (%s for too long)", conn.state)
            self.close(conn)

    def close(self, conn: _GuardedConnection) -> None:
        """Close ``conn`` now and stop counting it."""
        self.forget(conn)
        if conn.transport is not None:
            conn.transport.close()

    def forget(self, conn: _GuardedConnection) -> None:
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        self._open.pop(conn, None)
        if conn.transport is not None:
            self._by_transport.pop(conn.transport, None)

    def request_started(self, transport: asyncio.BaseTransport | None) -> _GuardedConnection | None:
        """The request's headers are complete: no deadline while it runs."""
        conn = self._by_transport.get(transport) if transport is not None else None
        if conn is not None:
            conn.state = _BUSY
            conn.requests += 1
            if conn.timer is not None:
                conn.timer.cancel()
                conn.timer = None
        return conn

    def request_finished(self, conn: _GuardedConnection | None) -> None:
        """The answer is ready: the connection idles until its next request."""
        if conn is not None and conn in self._open:
            conn.state = _IDLE
            self.arm(conn, self.keepalive_timeout)

    def close_all(self) -> None:
        for conn in list(self._open):
            self.close(conn)


class _GuardedTCPSite(web.BaseSite):
    """``web.TCPSite`` whose connections go through a :class:`_ConnectionGuard`."""

    __slots__ = ("_host", "_port", "_guard")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, guard: _ConnectionGuard,
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


class RpcServer:
    """JSON-RPC 2.0 over HTTP (aiohttp), with bitcoind-style cookie authentication."""

    def __init__(
        self,
        methods: RpcMethods,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        cookie_path: Path | None = None,
        allow_remote: bool = False,
        max_body: int = DEFAULT_MAX_BODY,
        user: str = DEFAULT_USER,
        max_batch: int = DEFAULT_MAX_BATCH,
        header_timeout: float = DEFAULT_HEADER_TIMEOUT,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_requests_per_connection: int = DEFAULT_MAX_REQUESTS_PER_CONNECTION,
    ) -> None:
        if not allow_remote and not is_loopback_host(host):
            raise ValueError(
                f"refusing to serve RPC on non-loopback address {host!r}: anyone who can reach "
                "it could control the node; bind 127.0.0.1 or ::1, or explicitly allow remote "
                "access (allow_remote=True)"
            )
        if ":" in user:
            raise ValueError("RPC user name must not contain ':'")
        if max_connections < 1 or max_requests_per_connection < 1:
            raise ValueError("max_connections and max_requests_per_connection must be >= 1")
        if min(header_timeout, body_timeout, keepalive_timeout) <= 0:
            raise ValueError("RPC timeouts must be positive")
        self.methods = methods
        self.host = host
        self.port = port
        self.cookie_path = Path(cookie_path) if cookie_path is not None else None
        self.allow_remote = allow_remote
        self.max_body = max_body
        self.max_batch = max_batch
        self.user = user
        self.body_timeout = body_timeout
        self.max_requests_per_connection = max_requests_per_connection
        self.guard = _ConnectionGuard(
            max_connections=max_connections,
            header_timeout=header_timeout,
            keepalive_timeout=keepalive_timeout,
        )
        self._credentials: bytes | None = None
        self._cookie_text: str | None = None
        self._runner: web.AppRunner | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://host:port/`` of the running server (no credentials)."""
        host = f"[{self.host.strip('[]')}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    async def start(self) -> int:
        """Bind, start serving and write the cookie file; returns the bound port."""
        if self._runner is not None:
            raise RuntimeError("RPC server already started")
        password = secrets.token_hex(32)
        self._credentials = f"{self.user}:{password}".encode()
        app = web.Application(client_max_size=self.max_body)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(
            app,
            access_log=None,
            shutdown_timeout=2.0,
            keepalive_timeout=self.guard.keepalive_timeout,
            max_line_size=MAX_HEADER_LINE,
            max_field_size=MAX_HEADER_LINE,
            max_headers=MAX_HEADERS,
            lingering_time=LINGERING_TIME,
        )
        await runner.setup()
        # "localhost" could resolve to both 127.0.0.1 and ::1, which with port 0 would be
        # two different ports: bind the IPv4 one only.
        bind_host = "127.0.0.1" if self.host.lower() == "localhost" else self.host.strip("[]")
        try:
            site = _GuardedTCPSite(runner, bind_host, self.port, self.guard)
            await site.start()
            self.port = site.port
            if self.cookie_path is not None:
                self._cookie_text = f"{self.user}:{password}"
                _write_cookie(self.cookie_path, self._cookie_text)
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        log.info("RPC server listening on %s", self.url)
        return self.port

    async def stop(self) -> None:
        """Stop serving and delete the cookie file (idempotent)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            self.guard.close_all()
        if self.cookie_path is not None and self._cookie_text is not None:
            try:
                if self.cookie_path.read_text(encoding="utf-8") == self._cookie_text:
                    self.cookie_path.unlink()
            except OSError:
                pass
            self._cookie_text = None

    # -- HTTP ---------------------------------------------------------------------------------

    def _authorized(self, request: web.Request) -> bool:
        if self.cookie_path is None:
            return True
        header = request.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or self._credentials is None:
            return False
        try:
            given = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(given, self._credentials)

    @staticmethod
    def _http_error(
        status: int, message: str, headers: dict[str, str] | None = None
    ) -> web.Response:
        body = _dumps(_error_response(None, RpcError(INVALID_REQUEST, message)))
        return web.Response(
            status=status, text=body, content_type="application/json", headers=headers
        )

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        conn = self.guard.request_started(request.transport)
        try:
            response = await self._respond(request)
        finally:
            self.guard.request_finished(conn)
        if conn is not None and conn.requests >= self.max_requests_per_connection:
            response.force_close()
        return response

    async def _respond(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            response = self._http_error(
                401, "unauthorized", {"WWW-Authenticate": f'Basic realm="{REALM}"'}
            )
            response.force_close()
            return response
        if request.path != "/":
            return self._http_error(404, f"not found: {request.path} (use POST /)")
        if request.method != "POST":
            return self._http_error(405, "method not allowed (use POST)", {"Allow": "POST"})
        too_large = f"request body too large (max {self.max_body} bytes)"
        if request.content_length is not None and request.content_length > self.max_body:
            return self._http_error(413, too_large)
        try:
            async with asyncio.timeout(self.body_timeout):
                body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._http_error(413, too_large)
        except TimeoutError:
            response = self._http_error(
                408, f"request body not received within {self.body_timeout:g} s"
            )
            response.force_close()
            return response
        if len(body) > self.max_body:
            return self._http_error(413, too_large)
        reply = await self.handle_body(body)
        if reply is None:
            return web.Response(status=204)
        return web.Response(text=reply, content_type="application/json")

    # -- JSON-RPC -----------------------------------------------------------------------------

    async def handle_body(self, body: bytes) -> str | None:
        """The JSON reply to a request body, or ``None`` when nothing is to be answered."""
        try:
            payload = _loads(body)
        except ValueError as exc:
            error = RpcError(PARSE_ERROR, f"Parse error: {exc}")
            return _dumps(_error_response(None, error))
        if isinstance(payload, list):
            if not payload:
                error = RpcError(INVALID_REQUEST, "Invalid Request: empty batch")
                return _dumps(_error_response(None, error))
            if len(payload) > self.max_batch:
                error = RpcError(
                    INVALID_REQUEST,
                    f"Invalid Request: batch of {len(payload)} requests (max {self.max_batch})",
                )
                return _dumps(_error_response(None, error))
            parts = []
            for item in payload:
                part = await self._handle_one(item)
                if part is not None:
                    parts.append(part)
            return "[" + ",".join(parts) + "]" if parts else None
        return await self._handle_one(payload)

    async def _handle_one(self, request: Any) -> str | None:
        """Serialized response to one request object, ``None`` for a notification."""
        if not isinstance(request, dict):
            error = RpcError(INVALID_REQUEST, "Invalid Request: not a JSON object")
            return _dumps(_error_response(None, error))
        id_ = request.get("id", _NO_ID)
        reply_id = id_ if id_ is not _NO_ID and _valid_id(id_) else None
        problem = None
        if request.get("jsonrpc") != "2.0":
            problem = 'jsonrpc must be "2.0"'
        elif not isinstance(request.get("method"), str):
            problem = "method must be a string"
        elif "params" in request and not isinstance(request["params"], list | dict):
            problem = "params must be an array or an object"
        elif id_ is not _NO_ID and not _valid_id(id_):
            problem = "id must be a string, a number or null"
        if problem is not None:
            error = RpcError(INVALID_REQUEST, f"Invalid Request: {problem}")
            return _dumps(_error_response(reply_id, error))

        name = request["method"]
        try:
            result = await self.methods._invoke(name, request.get("params"))
        except RpcError as error:
            if id_ is _NO_ID:
                log.debug("RPC notification %s failed: %s", name, error)
                return None
            try:
                return _dumps(_error_response(id_, error))
            except (TypeError, ValueError) as exc:
                log.error("RPC method %s raised an error with unserializable data: %s", name, exc)
                return _dumps(_error_response(id_, RpcError(error.code, error.message)))
        if id_ is _NO_ID:
            return None
        try:
            return _dumps({"jsonrpc": "2.0", "id": id_, "result": result})
        except (TypeError, ValueError) as exc:
            return _dumps(_error_response(id_, _not_serializable(name, exc)))


def _write_cookie(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by the owner only (0600)."""
    make_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

"""JSON-RPC 2.0 over HTTP: the node's control interface.

HTTP
----
* ``POST /`` with a JSON-RPC 2.0 body (the requests, batches and replies are
  described in :mod:`.dispatch`); any other HTTP method is answered 405, any other
  path 404. The ``Content-Type`` is not checked.
* HTTP-level refusals carry a JSON-RPC error body with ``id: null``: 401 (bad or missing
  credentials, with ``WWW-Authenticate: Basic realm="o2ocli"``), 405, 404, 408 (body not
  received within ``body_timeout``) and 413 (body larger than ``max_body``, 8 MiB by
  default). After a 401 or 408 the server closes the connection.
* Every connection passes through the :mod:`.guard` (timeouts, a cap on open
  connections: the slow-loris defence).

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

Methods live in an :class:`~o2ocli.rpc.dispatch.RpcMethods` registry (re-exported here).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import ipaddress
import logging
import os
import secrets
from pathlib import Path

from aiohttp import web

from o2ocli.fsmodes import make_private_dir

from .dispatch import DEFAULT_MAX_BATCH, RpcMethods, error_reply
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
from .guard import ConnectionGuard, GuardedTCPSite

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
    "DEFAULT_MAX_BATCH",
    "DEFAULT_MAX_CONNECTIONS",
    "is_loopback_host",
    "tx_rejected",
]

log = logging.getLogger(__name__)

DEFAULT_USER = "__cookie__"
DEFAULT_MAX_BODY = 8 * 1024 * 1024
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
        self.guard = ConnectionGuard(
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
            site = GuardedTCPSite(runner, bind_host, self.port, self.guard)
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
        body = error_reply(None, RpcError(INVALID_REQUEST, message))
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

    async def handle_body(self, body: bytes) -> str | None:
        """The JSON reply to a request body, or ``None`` when nothing is to be answered."""
        return await self.methods.handle_body(body, self.max_batch)



def is_loopback_host(host: str) -> bool:
    """``localhost``, ``127.0.0.0/8`` or ``::1`` (an IPv6 address may be bracketed)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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

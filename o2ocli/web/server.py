"""The public pages' HTTP server (aiohttp), started by the node with
``--http-listen``.

Read only, safe to expose: every page is rendered from a Jinja2 template with
autoescaping (texts from the chain are written by strangers), responses carry
a strict Content-Security-Policy, ``nosniff`` and no cookies; a per-IP token
bucket answers 429 past the rate; pages of an unchanged tip are served from a
small cache.  Errors are a short 400/404 page (or JSON), never a traceback.
"""

from __future__ import annotations

import collections
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jinja2
from aiohttp import web

from o2ocli.node.methods.context import NodeContext
from o2ocli.node.runtime import NodeStartError
from o2ocli.rpc.server import is_loopback_host

from . import pages
from .links import item_url
from .pages import PageError

__all__ = ["WebConfig", "WebServer", "SECURITY_HEADERS", "web_service"]

log = logging.getLogger("o2ocli.web")

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
                               "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
CACHE_ENTRIES = 512
MEMO_ENTRIES = 256
RATE_BUCKETS = 4096


@dataclass
class WebConfig:
    """How to serve the pages."""

    host: str = "127.0.0.1"
    port: int = 0
    public_url: str | None = None
    """Base of the links on pages and labels (default: http://HOST:PORT)."""
    rate: float = 20.0
    """Requests per second per client IP (0: no limit); bursts of ``4 * rate``."""


class RateLimiter:
    """A token bucket per client address, at most :data:`RATE_BUCKETS` kept."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(1.0, 4 * rate)
        self.clock = clock
        self.buckets: collections.OrderedDict[str, tuple[float, float]] = \
            collections.OrderedDict()

    def allow(self, key: str) -> bool:
        """Take one token for ``key``; False when its bucket is empty."""
        if self.rate <= 0:
            return True
        now = self.clock()
        tokens, last = self.buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        allowed = tokens >= 1
        self.buckets[key] = (tokens - 1 if allowed else tokens, now)
        while len(self.buckets) > RATE_BUCKETS:
            self.buckets.popitem(last=False)
        return allowed


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("o2ocli.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["when"] = _when
    env.filters["short"] = lambda value, n=12: (value[:n] + "…") if value and len(value) > n \
        else value
    return env


def _when(timestamp: int | None) -> str:
    if timestamp is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WebServer:
    """The public pages of ``node``."""

    def __init__(self, node: NodeContext, config: WebConfig) -> None:
        self.node = node
        self.config = config
        self.env = _environment()
        self.limiter = RateLimiter(config.rate)
        self.cache: collections.OrderedDict[tuple[str, bytes], tuple[int, str, str]] = \
            collections.OrderedDict()
        self.memos: dict[tuple[Any, ...], Any] = {}
        self.memo_tip = b""
        self.runner: web.AppRunner | None = None
        self.url = ""
        self.public_url = config.public_url or ""
        self.css = resources.files("o2ocli.web").joinpath("static/style.css").read_text()

    # ------------------------------------------------------------ lifecycle
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=4096)
        page = self._page
        routes = [
            ("/", page("home.html", lambda r: pages.home(self.node), cache=False)),
            ("/item/{asset}", page("item.html", lambda r: pages.item_by_asset(
                self.node, r.match_info["asset"], self.memo))),
            ("/item/{merchant}/{item}", page("item.html", lambda r: pages.item(
                self.node, r.match_info["merchant"], r.match_info["item"], self.memo))),
            ("/merchant/{address}", page("merchant.html", lambda r: pages.merchant(
                self.node, r.match_info["address"], r.query.get("page"), self.memo))),
            ("/token/{symbol}", page("token.html",
                                     lambda r: pages.token(self.node, r.match_info["symbol"]))),
            ("/tx/{txid}", page("tx.html", lambda r: pages.tx(self.node, r.match_info["txid"]),
                                cache=False)),
            ("/block/{ref}", page("block.html",
                                  lambda r: pages.block(self.node, r.match_info["ref"]))),
            ("/address/{address}", page("address.html", lambda r: pages.address(
                self.node, r.match_info["address"], r.query.get("page"), self.memo))),
        ]
        for path, handler in routes:
            app.router.add_get(path, handler)
            app.router.add_get("/api" + (path if path != "/" else "/status"), handler)
        app.router.add_get("/search", self._search)
        app.router.add_get("/api/search", self._search)
        app.router.add_get("/style.css", self._style)
        return app

    async def start(self) -> dict[str, str]:
        """Listen; returns the node-info entries ``http`` (where it listens) and
        ``public_url`` (the base of links)."""
        self.runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.config.host, self.config.port)
        try:
            await site.start()
        except OSError as exc:
            await self.stop()
            raise NodeStartError(f"cannot serve pages on {self.config.host}:{self.config.port}: "
                                 f"{exc.strerror or exc} (choose another --http-listen)") from None
        port = self.runner.addresses[0][1] if self.runner.addresses else self.config.port
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        self.url = f"http://{host}:{port}"
        self.public_url = self.config.public_url or self.url
        exposure = "loopback only" if is_loopback_host(self.config.host) else \
            "PUBLIC: read-only, reachable from other machines"
        log.info("public pages at %s (%s); links use %s", self.url, exposure, self.public_url)
        if self.config.public_url is None and self.config.host in ("0.0.0.0", "::", ""):
            log.warning("labels and links will use %s, which phones cannot open: pass "
                        "--public-url with the address customers reach", self.public_url)
        return {"http": self.url, "public_url": self.public_url}

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    # ----------------------------------------------------------- middleware
    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        wants_json = request.path.startswith("/api/")
        if not self.limiter.allow(request.remote or "?"):
            response: web.StreamResponse = self._error(429, "too many requests; slow down",
                                                       wants_json)
            response.headers["Retry-After"] = "1"
        else:
            try:
                response = await handler(request)
            except PageError as exc:
                response = self._error(exc.status, exc.message, wants_json)
            except web.HTTPException as exc:
                if exc.status >= 400:
                    message = "no such page" if exc.status == 404 else exc.reason
                    response = self._error(exc.status, message, wants_json)
                    if "Allow" in exc.headers:  # a 405 says which methods are
                        response.headers["Allow"] = exc.headers["Allow"]
                else:
                    raise
            except Exception:  # noqa: BLE001 - logged; the visitor gets a short page
                log.exception("page %s failed", request.path)
                response = self._error(500, "internal error", wants_json)
        response.headers.update(SECURITY_HEADERS)
        return response

    def _error(self, status: int, message: str, wants_json: bool) -> web.Response:
        if wants_json:
            return web.json_response({"error": {"status": status, "message": message}},
                                     status=status)
        body = self.env.get_template("error.html").render(
            status=status, message=message, **self._common())
        return web.Response(text=body, status=status, content_type="text/html")

    # ---------------------------------------------------------------- pages
    def memo(self, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        """``make()``, kept until the tip or the finalized block changes (a
        merchant's review stats, the latest sealers): see :data:`pages.Memo`."""
        chain = self.node.chain
        tip = chain.tip.hash + chain.finalized_hash
        if tip != self.memo_tip or len(self.memos) > MEMO_ENTRIES:
            self.memos.clear()
            self.memo_tip = tip
        if key not in self.memos:
            self.memos[key] = make()
        return self.memos[key]

    def _common(self) -> dict[str, Any]:
        return {"chain_id": self.node.spec.chain_id, "public_url": self.public_url,
                "symbol": self.node.spec.native_symbol}

    def _page(self, template: str, data: Callable[[web.Request], dict[str, Any]],
              cache: bool = True) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            as_json = request.path.startswith("/api/")
            chain = self.node.chain
            key = (request.path_qs, chain.tip.hash + chain.finalized_hash)
            hit = self.cache.get(key) if cache else None
            if hit is None:
                result = data(request)
                if as_json:
                    text, kind = json.dumps(result, sort_keys=True), "application/json"
                else:
                    text, kind = self.env.get_template(template).render(
                        d=result, links=self._links(result), **self._common()), "text/html"
                hit = (200, text, kind)
                if cache:
                    self.cache[key] = hit
                    while len(self.cache) > CACHE_ENTRIES:
                        self.cache.popitem(last=False)
            return web.Response(text=hit[1], status=hit[0], content_type=hit[2])

        return handler

    def _links(self, result: dict[str, Any]) -> dict[str, str]:
        links = {}
        if "item" in result and "merchant" in result and "timeline" in result:
            links["label"] = item_url(self.public_url, result["merchant"], result["item"])
        return links

    async def _search(self, request: web.Request) -> web.Response:
        target = pages.search(self.node, request.query.get("q", ""))
        if request.path.startswith("/api/"):
            return web.json_response({"path": target})
        return web.Response(status=303, headers={"Location": target})

    async def _style(self, request: web.Request) -> web.Response:
        response = web.Response(text=self.css, content_type="text/css")
        response.headers["Cache-Control"] = "public, max-age=3600"
        return response


def web_service(config: WebConfig) -> Callable[[Any], WebServer]:
    """A node service (see ``NodeConfig.services``) serving the public pages."""
    return lambda node: WebServer(node, config)

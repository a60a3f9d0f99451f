"""A tiny HTTP server for Prometheus scrapes: ``GET /metrics`` answers what a
render callable returns; other paths are 404.  No authentication (metrics hold
no secrets); bind it to loopback unless the scraper runs elsewhere."""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web

__all__ = ["MetricsHttpServer"]

log = logging.getLogger(__name__)


class MetricsHttpServer:
    """``GET /metrics`` on ``host:port`` (aiohttp, on the caller's event loop)."""

    def __init__(self, render: Callable[[], bytes], content_type: str, host: str,
                 port: int) -> None:
        self.render = render
        self.content_type = content_type
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    async def _handle(self, request: web.Request) -> web.Response:
        if request.path != "/metrics":
            return web.Response(status=404, text="not found: use /metrics\n")
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, text="use GET\n", headers={"Allow": "GET"})
        return web.Response(body=self.render(), headers={"Content-Type": self.content_type})

    async def start(self) -> int:
        """Bind and serve; returns the bound port (raises OSError)."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        """Stop serving (idempotent)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

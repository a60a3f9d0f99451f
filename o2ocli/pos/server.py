"""``pos serve``: a point-of-sale HTTP server on a (watch-only) wallet and a node.

Routes::

    GET  /                          the till page (type an amount, see QR + state)
    POST /api/invoices              create (Authorization: Bearer API-KEY)
    GET  /api/invoices/<id>         one invoice (its id is the secret)
    GET  /api/invoices?state=S      list (Authorization: Bearer API-KEY)
    GET  /api/invoices/<id>/qr.png  its QR (also qr.svg)
    GET  /api/events                Server-Sent Events: block, finalized, invoice

One background task follows the node with the ``waitforchange`` long poll (no
polling per address), recomputes the open invoices when something changed,
publishes events and queues webhooks (:mod:`.webhooks`).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from o2ocli.amounts import parse_amount
from o2ocli.wallet.invoices import (
    STATES,
    apply_payments,
    create_invoice,
    fetch_payments,
    get_invoice,
    invoice_json,
    iter_invoices,
)

from .webhooks import DeliveryStore, Sender

__all__ = ["PosServer", "FOLLOW_SECONDS"]

log = logging.getLogger("o2ocli.pos")
FOLLOW_SECONDS = 7 * 86400
"""Invoices are followed (states recomputed) until final, or this long after expiry."""
MAX_BODY = 16 * 1024
MAX_SUBSCRIBERS = 100
TEMPLATES = Path(__file__).parent / "templates"



PROGRESS = ("new", "seen", "confirmed", "final")
"""The states a paid invoice moves through, in order."""


def passed_states(old: str | None, new: str) -> tuple[str, ...]:
    """The states strictly between ``old`` and ``new`` when an invoice skipped
    some of :data:`PROGRESS` between two looks (e.g. new → confirmed)."""
    if old not in PROGRESS or new not in PROGRESS:
        return ()
    return PROGRESS[PROGRESS.index(old) + 1:PROGRESS.index(new)]

class PosServer:
    """The till's HTTP server and its background tasks."""

    def __init__(self, wallet: Any, client: Any, api_key: str, store: DeliveryStore | None,
                 webhooks: list[str], secret: bytes, *, webhook_timeout: float = 5.0,
                 wait_seconds: float = 1.0, retry_base: float = 0.5) -> None:
        self.wallet = wallet
        self.client = client
        self.api_key = api_key
        self.webhooks = webhooks
        self.store = store
        self.sender = (Sender(store, secret, webhook_timeout, retry_base)
                       if store is not None else None)
        self.wait_seconds = wait_seconds
        self.subscribers: set[asyncio.Queue[str]] = set()
        self._followed = 0
        self.kick = asyncio.Event()
        self.tasks: list[asyncio.Task[Any]] = []
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                                 autoescape=jinja2.select_autoescape(["html"]))
        self.till_template = env.get_template("till.html")
        self.app = web.Application(client_max_size=MAX_BODY)
        self.app.add_routes([
            web.get("/", self.till_page),
            web.post("/api/invoices", self.create),
            web.get("/api/invoices", self.list),
            web.get("/api/invoices/{id}", self.show),
            web.get("/api/invoices/{id}/qr.{kind}", self.qr),
            web.get("/api/events", self.events),
        ])
        self.app.on_startup.append(self._start_tasks)
        self.app.on_shutdown.append(self._end_streams)
        self.app.on_cleanup.append(self._stop_tasks)

    # ------------------------------------------------------------ lifecycle
    async def _start_tasks(self, _app: web.Application) -> None:
        self.tasks.append(asyncio.create_task(self._follow()))
        if self.sender is not None:
            self.tasks.append(asyncio.create_task(self.sender.run()))

    async def _stop_tasks(self, _app: web.Application) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _end_streams(self, _app: web.Application) -> None:
        """On shutdown: end every event stream (an open browser must not hold it up)."""
        for queue in list(self.subscribers):
            queue.put_nowait("")

    # --------------------------------------------------------------- helpers
    def _authorized(self, request: web.Request) -> bool:
        given = request.headers.get("Authorization", "")
        return given.startswith("Bearer ") and hmac.compare_digest(
            given[7:].strip().encode(), self.api_key.encode())

    @staticmethod
    def _error(status: int, message: str) -> web.Response:
        return web.json_response({"error": message}, status=status)

    def _publish(self, event: str, data: dict[str, Any]) -> None:
        text = f"event: {event}\ndata: {json.dumps(data)}\n\n"
        for queue in list(self.subscribers):
            if queue.qsize() < 1000:
                queue.put_nowait(text)

    # --------------------------------------------------------------- routes
    async def till_page(self, _request: web.Request) -> web.Response:
        html = self.till_template.render(symbol=self.wallet.spec.native_symbol,
                                         wallet=self.wallet.name)
        return web.Response(text=html, content_type="text/html",
                            headers={"Content-Security-Policy":
                                     "default-src 'self'; style-src 'unsafe-inline'; "
                                     "script-src 'unsafe-inline' 'self'; img-src 'self'"})

    async def create(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._error(401, "missing or wrong API key (Authorization: Bearer KEY)")
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return self._error(400, "the body is not JSON")
        except web.HTTPRequestEntityTooLarge:
            return self._error(413, "the body is too large")
        if not isinstance(body, dict):
            return self._error(400, "the body must be a JSON object")
        amount, asset = body.get("amount"), body.get("asset")
        label, memo = body.get("label"), body.get("memo")
        expires = body.get("expires_minutes", 60)
        for name, value in (("label", label), ("memo", memo), ("asset", asset)):
            if value is not None and (not isinstance(value, str) or len(value) > 200):
                return self._error(400, f"{name} must be a string of at most 200 characters")
        if isinstance(expires, bool) or not isinstance(expires, (int, float)) \
                or not 0.01 <= expires <= 525_600:
            return self._error(400, "expires_minutes must be a number from 0.01 to 525600")
        spec = self.wallet.spec
        if asset is not None and asset.upper() != spec.native_symbol:
            try:
                info = await asyncio.to_thread(self.client.call, "gettoken", asset)
            except Exception:  # noqa: BLE001 - unknown token or node error: refused
                return self._error(400, f"unknown asset {asset!r}")
            symbol, asset_id, decimals = info["symbol"], info["asset"], info["decimals"]
        else:
            symbol, asset_id, decimals = spec.native_symbol, bytes(32).hex(), spec.native_decimals
        if not isinstance(amount, str):
            return self._error(400, "amount must be a decimal string like \"12.5\"")
        try:
            units = parse_amount(amount, decimals)
        except ValueError as exc:
            return self._error(400, f"bad amount: {exc}")
        now = int(time.time())
        inv = create_invoice(self.wallet, units=units, asset=symbol, asset_id=asset_id,
                             decimals=decimals, label=label, memo=memo,
                             expires=now + max(1, round(expires * 60)), now=now)
        self.kick.set()  # follow its address from now on
        return web.json_response(invoice_json(self.wallet, inv), status=201)

    async def show(self, request: web.Request) -> web.Response:
        inv = get_invoice(self.wallet, request.match_info["id"])
        if inv is None:
            return self._error(404, "no such invoice")
        return web.json_response(invoice_json(self.wallet, inv))

    async def list(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._error(401, "missing or wrong API key (Authorization: Bearer KEY)")
        state = request.query.get("state")
        if state is not None and state not in STATES:
            return self._error(400, f"state must be one of {', '.join(STATES)}")
        data = [invoice_json(self.wallet, i) for i in iter_invoices(self.wallet)
                if state is None or i["state"] == state]
        data.sort(key=lambda d: (d["created"], d["id"]))
        return web.json_response({"invoices": data})

    async def qr(self, request: web.Request) -> web.Response:
        import io

        import segno

        inv = get_invoice(self.wallet, request.match_info["id"])
        kind = request.match_info["kind"]
        if inv is None or kind not in ("png", "svg"):
            return self._error(404, "no such invoice")
        buf = io.BytesIO()
        segno.make(invoice_json(self.wallet, inv)["uri"], error="m").save(
            buf, kind=kind, scale=6, border=4)
        return web.Response(body=buf.getvalue(),
                            content_type="image/png" if kind == "png" else "image/svg+xml")

    async def events(self, request: web.Request) -> web.StreamResponse:
        if len(self.subscribers) >= MAX_SUBSCRIBERS:
            return self._error(503, "too many event subscribers")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
        await resp.prepare(request)
        queue: asyncio.Queue[str] = asyncio.Queue()
        self.subscribers.add(queue)
        try:
            await resp.write(b": connected\n\n")
            while True:
                try:
                    text = await asyncio.wait_for(queue.get(), timeout=15)
                except TimeoutError:
                    text = ": keep-alive\n\n"
                if not text:
                    break
                await resp.write(text.encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.subscribers.discard(queue)
        return resp

    # ------------------------------------------------------------ following
    def _open_invoices(self, now: int) -> list[dict[str, Any]]:
        return [i for i in iter_invoices(self.wallet) if i["state"] != "final"
                and (i.get("expires") or now) + FOLLOW_SECONDS > now]

    async def refresh(self) -> None:
        """Recompute the open invoices; publish and queue webhooks for changes."""
        now = int(time.time())
        invs = self._open_invoices(now)
        if not invs:
            return
        payments = await asyncio.to_thread(fetch_payments, self.client, invs)
        info = await asyncio.to_thread(self.client.call, "getinfo")
        # Re-read: an invoice may have been written since (never resurrect an old copy).
        fresh = [get_invoice(self.wallet, inv["id"]) or inv for inv in invs]
        for inv, old in apply_payments(self.wallet, fresh, payments, now):
            data = invoice_json(self.wallet, inv)
            previous = old
            # A payment first noticed in a block (or final) still passes through
            # each state, in order: consumers see seen, confirmed, final once each.
            for step in passed_states(old, inv["state"]):
                self._publish("invoice", {**data, "state": step})
                self._queue_webhooks({**data, "state": step}, previous, info)
                previous = step
            self._publish("invoice", data)
            if previous != inv["state"]:
                self._queue_webhooks(data, previous, info)

    def _queue_webhooks(self, data: dict[str, Any], old: str | None, info: dict[str, Any]) -> None:
        if self.store is None or self.sender is None:
            return
        body = {"event": "invoice.state", "invoice": data["id"], "state": data["state"],
                "previous": old, "amount": data["amount"], "paid": data["paid"],
                "asset": data["asset"], "flag": data["flag"], "txids": data["txids"],
                "height": data["height"], "finalized_height": info["finalized_height"],
                "address": data["address"], "time": int(time.time())}
        for url in self.webhooks:
            self.store.add(url, body)
        self.sender.wake.set()

    def _expiry_due(self, now: int) -> bool:
        return any(i["state"] == "new" and i.get("expires") is not None and i["expires"] <= now
                   for i in self._open_invoices(now))

    async def _follow(self) -> None:
        """Long-poll the node on the open invoices' addresses; refresh the open
        invoices when it reports a change, or when an unpaid invoice reached its
        expiry.  A new invoice restarts the wait at once with its address; the
        call it replaces is left to end by itself (at most one such call at a time,
        so a burst of new invoices costs no more than one extra thread)."""
        cursor = None
        waiter: asyncio.Task[Any] | None = None
        orphan: asyncio.Task[Any] | None = None
        while True:
            try:
                if waiter is None:
                    now = int(time.time())
                    addresses = [i["address"] for i in self._open_invoices(now)][:10_000]
                    key = hash(tuple(addresses))
                    if key != self._followed:
                        cursor = None  # a new address set: compare its mempool afresh
                    self._followed = key
                    waiter = asyncio.create_task(asyncio.to_thread(
                        self.client.call, "waitforchange", cursor, addresses,
                        self.wait_seconds))
                kicked = asyncio.create_task(self.kick.wait())
                done, _ = await asyncio.wait({waiter, kicked},
                                             return_when=asyncio.FIRST_COMPLETED)
                if waiter not in done:
                    if orphan is None or orphan.done():
                        self.kick.clear()
                        orphan, waiter = waiter, None
                    else:  # one call is already left running: let this one end too
                        await asyncio.wait({waiter})
                        self.kick.clear()
                    if waiter is None:
                        continue
                kicked.cancel()
                finished, waiter = waiter, None
                answer = finished.result()
                if "block" in answer["changes"]:
                    self._publish("block", {"height": answer["height"], "tip": answer["tip"]})
                if "finalized" in answer["changes"]:
                    self._publish("finalized", {"finalized_height": answer["finalized_height"]})
                cursor = answer["cursor"]
                if answer["changes"] or self._expiry_due(int(time.time())):
                    await self.refresh()
            except asyncio.CancelledError:
                for task in (waiter, orphan):
                    if task is not None:
                        task.cancel()
                raise
            except Exception as exc:  # noqa: BLE001 - node down etc.: retry after a pause
                log.warning("pos: following the node failed: %s", exc)
                waiter = None
                await asyncio.sleep(1.0)


async def serve(server: PosServer, host: str, port: int,
                on_ready: Any = None) -> None:
    """Run ``server`` on ``host:port`` until SIGINT/SIGTERM; ``on_ready(port)`` is
    called once listening (OSError if the address is taken)."""
    import signal

    runner = web.AppRunner(server.app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    if on_ready is not None:
        on_ready(runner.addresses[0][1] if runner.addresses else port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()

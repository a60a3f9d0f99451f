"""Webhook deliveries against a real local HTTP receiver: signatures, order per
URL, retries with backoff that survive a new Sender (a restart), a hanging URL
bounded by the timeout."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import time

from aiohttp import web

from o2ocli.pos import load_or_create_secret
from o2ocli.pos.webhooks import MAX_DELAY, DeliveryStore, Sender, backoff, sign

SECRET = b"k"


def test_sign_and_backoff():
    body = b'{"a": 1}'
    assert sign(SECRET, body) == "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    assert [backoff(n, 0.5) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff(100) == MAX_DELAY


def test_api_key_file_is_created_0600_once(tmp_path):
    key, created = load_or_create_secret(tmp_path / "pos-api.key")
    assert created and len(key) == 64
    assert (tmp_path / "pos-api.key").stat().st_mode & 0o777 == 0o600
    assert load_or_create_secret(tmp_path / "pos-api.key") == (key, False)


async def _receiver(got: list, fail_first: int) -> tuple[web.AppRunner, int]:
    calls = {"n": 0}

    async def hook(request: web.Request) -> web.Response:
        calls["n"] += 1
        if calls["n"] <= fail_first:
            return web.Response(status=503)
        raw = await request.read()
        got.append((request.headers["X-O2O-Signature"], request.headers["X-O2O-Delivery"], raw))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


def test_in_order_signed_retried_and_persisted(tmp_path):
    got: list = []

    async def scenario() -> None:
        runner, port = await _receiver(got, fail_first=2)
        url = f"http://127.0.0.1:{port}/hook"
        store = DeliveryStore(tmp_path / "d")
        for state in ("seen", "confirmed", "final"):
            store.add(url, {"invoice": "i1", "state": state})
        # A "restart": a fresh store and sender over the same folder.
        sender = Sender(DeliveryStore(tmp_path / "d"), SECRET, timeout=2, base_delay=0.05)
        task = asyncio.create_task(sender.run())
        deadline = time.monotonic() + 20
        while len(got) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        task.cancel()
        await runner.cleanup()

    asyncio.run(scenario())
    states = []
    for signature, delivery, raw in got:
        assert signature == sign(SECRET, raw)
        body = json.loads(raw)
        assert body["delivery_id"] == delivery
        states.append(body["state"])
    assert states == ["seen", "confirmed", "final"]
    assert DeliveryStore(tmp_path / "d").items() == []


def test_hanging_url_is_bounded_and_does_not_block_others(tmp_path):
    got: list = []
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(8)

    async def scenario() -> float:
        runner, port = await _receiver(got, fail_first=0)
        store = DeliveryStore(tmp_path / "d")
        store.add(f"http://127.0.0.1:{hang.getsockname()[1]}/x", {"state": "seen"})
        store.add(f"http://127.0.0.1:{port}/hook", {"state": "seen"})
        sender = Sender(store, SECRET, timeout=0.5, base_delay=10)
        started = time.monotonic()
        task = asyncio.create_task(sender.run())
        while time.monotonic() - started < 10:
            items = store.items()
            if got and items and items[0]["attempts"] >= 1:
                break
            await asyncio.sleep(0.05)
        task.cancel()
        await runner.cleanup()
        return time.monotonic() - started

    took = asyncio.run(scenario())
    hang.close()
    assert len(got) == 1 and took < 5
    (left,) = DeliveryStore(tmp_path / "d").items()
    assert left["attempts"] == 1 and left["status"] == "pending"
    assert "Timeout" in left["last_error"]

"""`pos serve` as a process on a watch-only till: REST API, webhooks (signed, in
order, retried across a receiver outage and a restart), SSE, and the till page in
a real headless browser."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from aiohttp import web

from .framework import free_port, run_cli, wait_until

SECRET = b"test webhook secret"


class Receiver:
    """A webhook receiver (aiohttp) on its own thread; start/stop at will."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.got: list[tuple[dict, dict]] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner = None

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.got.append((dict(request.headers), {"raw": body}))
        return web.Response(text="ok")

    def start(self) -> None:
        async def go():
            app = web.Application()
            app.router.add_post("/hook", self._hook)
            self.runner = web.AppRunner(app)
            await self.runner.setup()
            await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        asyncio.run_coroutine_threadsafe(go(), self.loop).result(10)

    def close(self) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class Pos:
    """`o2ocli -w till pos serve` as a process."""

    def __init__(self, datadir: Path, *args: str) -> None:
        self.datadir = datadir
        self.port = free_port()
        self.args = args
        self.proc: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "o2ocli", "--datadir", str(self.datadir), "-w", "till",
             "pos", "serve", "--listen", f"127.0.0.1:{self.port}", *self.args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self.datadir / "pos.log", "ab"))  # noqa: SIM115
        wait_until(lambda: self.get("/api/invoices/none")[0] == 404, 30, "pos to serve")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)

    def request(self, method: str, path: str, body: bytes | None = None,
                key: str | None = None) -> tuple[int, dict]:
        req = urllib.request.Request(self.url + path, data=body, method=method)
        if key is not None:
            req.add_header("Authorization", f"Bearer {key}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def get(self, path: str) -> tuple[int, dict]:
        return self.request("GET", path)


@pytest.fixture
def till(node_factory, tmp_path):
    node = node_factory()
    node.start("--dev", "--dev-period", "2")
    node.cli_json("wallet", "create", "shop", "--no-passphrase")
    xpub = node.cli_json("-w", "shop", "wallet", "export-xpub")["xpub"]
    node.cli_json("wallet", "create", "till", "--watch-only", "--xpub", xpub)
    procs: list[Pos] = []

    def make(*args: str) -> Pos:
        pos = Pos(node.datadir, *args)
        procs.append(pos)
        return pos

    node.make_pos = make
    yield node
    for pos in procs:
        if pos.proc is not None and pos.proc.poll() is None:
            pos.proc.kill()


def api_key(node) -> str:
    path = node.datadir / "pos-api.key"
    assert path.stat().st_mode & 0o777 == 0o600
    return path.read_text().strip()


def test_rest_webhooks_survive_outage_and_restart(till, tmp_path):
    secret_file = tmp_path / "hook.key"
    secret_file.write_bytes(SECRET + b"\n")
    hook_port = free_port()
    hanging = socket.socket()
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(16)  # accepts connections (backlog), never answers
    hang_url = f"http://127.0.0.1:{hanging.getsockname()[1]}/hang"
    args = ("--webhook", f"http://127.0.0.1:{hook_port}/hook", "--webhook", hang_url,
            "--webhook-secret", str(secret_file), "--webhook-timeout", "1",
            "--webhook-retry-base", "0.2")
    pos = till.make_pos(*args)
    pos.start()
    key = api_key(till)
    good = json.dumps({"amount": "2.5", "label": "Coffee & cake"}).encode()
    assert pos.request("POST", "/api/invoices", good)[0] == 401
    assert pos.request("POST", "/api/invoices", good, key="wrong")[0] == 401
    status, err = pos.request("POST", "/api/invoices", b"{not json", key=key)
    assert (status, err["error"]) == (400, "the body is not JSON")
    status, err = pos.request("POST", "/api/invoices", b'{"amount": 2.5}', key=key)
    assert status == 400 and "decimal string" in err["error"]
    status, inv = pos.request("POST", "/api/invoices", good, key=key)
    assert status == 201 and set(inv) >= {"id", "address", "uri", "state", "expires"}
    assert inv["state"] == "new" and pos.get(f"/api/invoices/{inv['id']}")[1]["state"] == "new"

    # Another consumer follows the event stream.
    events: list[str] = []
    stream = urllib.request.urlopen(pos.url + "/api/events", timeout=60)

    def read_events() -> None:
        try:
            for line in stream:
                events.append(line.decode().rstrip("\n"))
        except (OSError, ValueError, AttributeError):
            pass  # the stream was closed under the reader (end of the test)

    threading.Thread(target=read_events, daemon=True).start()
    wait_until(lambda: ": connected" in events, 10, "the event stream")

    # The customer pays the URI while the receiver is down.
    paid = till.cli_json("-w", "dev", "wallet", "pay", inv["uri"], "--yes")
    wait_until(lambda: pos.get(f"/api/invoices/{inv['id']}")[1]["state"] == "final", 60,
               "invoice final")
    wait_until(lambda: '"state": "final"' in "".join(events), 10, "the final invoice event")
    assert {"event: block", "event: finalized", "event: invoice"} <= set(events)
    invoice_events = [json.loads(e[6:]) for e in events if e.startswith("data: {\"id\"")]
    assert [e["state"] for e in invoice_events] == ["seen", "confirmed", "final"]
    stream.close()
    failed = wait_until(lambda: [d for d in till.cli_json("-w", "till", "pos", "deliveries")
                                 ["deliveries"] if d["url"].endswith("/hook")], 30,
                        "failed deliveries listed")
    assert failed[0]["state"] == "seen" and failed[0]["attempts"] >= 1

    # Restart pos serve; the pending deliveries are still there and go out once
    # the receiver is back, in order, signed.
    pos.stop()
    pos = till.make_pos(*args)
    pos.start()
    receiver = Receiver(hook_port)
    try:
        receiver.start()
        wait_until(lambda: len(receiver.got) >= 3, 60, "three webhook deliveries")
        bodies = []
        for headers, data in receiver.got:
            raw = data["raw"]
            expected = "sha256=" + hmac.new(SECRET, raw, hashlib.sha256).hexdigest()
            assert headers["X-O2O-Signature"] == expected
            body = json.loads(raw)
            assert headers["X-O2O-Delivery"] == body["delivery_id"]
            bodies.append(body)
        assert [b["state"] for b in bodies] == ["seen", "confirmed", "final"]
        assert all(b["invoice"] == inv["id"] and b["txids"] == [paid["txid"]] for b in bodies)
        assert len({b["delivery_id"] for b in bodies}) == 3
        left = till.cli_json("-w", "till", "pos", "deliveries")["deliveries"]
        assert all(d["url"] == hang_url for d in left)
        assert left and "Timeout" in left[0]["last_error"]
    finally:
        receiver.close()
        hanging.close()
    status, listed = pos.request("GET", "/api/invoices?state=final", key=key)
    assert status == 200 and [i["id"] for i in listed["invoices"]] == [inv["id"]]
    assert run_cli(till.datadir, "-w", "till", "wallet", "send", "--to", inv["address"],
                   "--amount", "1").returncode != 0  # the wallet is the running till's


def test_till_page_in_a_browser_turns_final_without_reload(till):
    from .browser import browser_page, decode_qr

    pos = till.make_pos()
    pos.start()
    key = api_key(till)
    with browser_page() as page:
        page.goto(pos.url + "/")
        page.fill("#key", key)
        page.fill("#amount", "1.25")
        page.click("#charge")
        page.wait_for_selector("#qr[src]")
        uri = page.text_content("#uri")
        assert uri.startswith("o2o:") and "amount=1.25" in uri
        wait_until(lambda: decode_qr(page.locator("#qr").screenshot()) == [uri], 15,
                   "the QR on the page to read as the URI")
        assert page.text_content("#state") == "new"
        page.evaluate("window.notReloaded = true")
        till.cli_json("-w", "dev", "wallet", "pay", uri, "--yes")
        page.wait_for_selector("#state.final", timeout=60_000)
        assert page.text_content("#state") == "final"
        assert page.evaluate("window.notReloaded") is True

"""Webhook deliveries: signed POSTs on every invoice state change, retried with
exponential backoff, persisted so they survive a restart of ``pos serve``.

Each delivery is one JSON file ``DIR/<seq>-<delivery id>.json`` (mode 0600,
written to a temporary name, fsynced and renamed, so a crash leaves either the
old or the new version).  Deliveries to one URL go out in order (``seq``): a
receiver that is down holds the later ones back, so it gets ``seen`` before
``confirmed`` before ``final``.  A delivered one is deleted; one that failed
``MAX_ATTEMPTS`` times stays with ``status`` ``failed`` (``pos deliveries``
lists them) and no longer blocks the queue.

Request: ``POST URL`` with the JSON body, ``Content-Type: application/json``,
``X-O2O-Delivery: <delivery id>``, ``X-O2O-Signature: sha256=<hex HMAC-SHA256
of the raw body with the webhook secret>``.  Any 2xx answer is a success.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

import aiohttp

from o2ocli.fsmodes import make_private_dir

__all__ = ["sign", "DeliveryStore", "Sender", "backoff", "MAX_ATTEMPTS"]

MAX_ATTEMPTS = 12
BASE_DELAY = 0.5
MAX_DELAY = 300.0


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-O2O-Signature`` value of ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def backoff(attempts: int, base: float = BASE_DELAY) -> float:
    """Seconds to wait after the ``attempts``-th failure (doubling, capped)."""
    return min(MAX_DELAY, base * (2 ** max(0, attempts - 1)))


class DeliveryStore:
    """Pending and failed deliveries, one file each, in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = make_private_dir(folder)
        existing = [self._seq(p) for p in self.folder.glob("*.json")]
        self.next_seq = max(existing, default=0) + 1

    @staticmethod
    def _seq(path: Path) -> int:
        try:
            return int(path.name.split("-", 1)[0])
        except ValueError:
            return 0

    def _path(self, item: dict[str, Any]) -> Path:
        return self.folder / f"{item['seq']:012d}-{item['id']}.json"

    def save(self, item: dict[str, Any]) -> None:
        path = self._path(item)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, json.dumps(item).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)

    def add(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        """Queue a delivery of ``body`` to ``url`` (written before this returns)."""
        delivery_id = secrets.token_hex(12)
        body = {**body, "delivery_id": delivery_id}
        item = {"seq": self.next_seq, "id": delivery_id, "url": url,
                "body": json.dumps(body, sort_keys=True), "attempts": 0, "next_at": 0.0,
                "status": "pending", "last_error": None, "created": time.time()}
        self.next_seq += 1
        self.save(item)
        return item

    def remove(self, item: dict[str, Any]) -> None:
        self._path(item).unlink(missing_ok=True)

    def items(self) -> list[dict[str, Any]]:
        """Every stored delivery, oldest first (unreadable files skipped)."""
        result = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                result.append(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue
        return result


class Sender:
    """Sends the stored deliveries in order, one queue per URL."""

    def __init__(self, store: DeliveryStore, secret: bytes, timeout: float = 5.0,
                 base_delay: float = BASE_DELAY) -> None:
        self.store = store
        self.secret = secret
        self.timeout = timeout
        self.base_delay = base_delay
        self.wake = asyncio.Event()
        self.delivered = 0

    async def run(self) -> None:
        """Deliver forever (cancel to stop)."""
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout)) as session:
            while True:
                self.wake.clear()
                delay = await self._round(session)
                try:
                    await asyncio.wait_for(self.wake.wait(), timeout=delay)
                except TimeoutError:
                    pass

    async def _round(self, session: aiohttp.ClientSession) -> float:
        """Try the head of every URL's queue that is due; returns seconds until the
        next one is due."""
        heads: dict[str, dict[str, Any]] = {}
        for item in self.store.items():
            if item["status"] == "pending":
                heads.setdefault(item["url"], item)
        now = time.time()
        due = [item for item in heads.values() if item["next_at"] <= now]
        await asyncio.gather(*(self._attempt(session, item) for item in due))
        waits = [item["next_at"] - time.time() for item in heads.values()
                 if item["status"] == "pending" and item not in due]
        if due:
            return 0.0
        return max(0.05, min(waits, default=60.0))

    async def _attempt(self, session: aiohttp.ClientSession, item: dict[str, Any]) -> None:
        body = item["body"].encode()
        headers = {"Content-Type": "application/json", "X-O2O-Delivery": item["id"],
                   "X-O2O-Signature": sign(self.secret, body)}
        error = None
        try:
            async with session.post(item["url"], data=body, headers=headers) as resp:
                await resp.read()
                if not 200 <= resp.status < 300:
                    error = f"HTTP {resp.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if error is None:
            self.store.remove(item)
            self.delivered += 1
            return
        item["attempts"] += 1
        item["last_error"] = error
        item["next_at"] = time.time() + backoff(item["attempts"], self.base_delay)
        if item["attempts"] >= MAX_ATTEMPTS:
            item["status"] = "failed"
        self.store.save(item)

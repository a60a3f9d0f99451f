"""Outbound connections: which address to dial next, and backing off.

Every due ``--connect``/``addpeer`` peer is kept dialed; the free outbound
slots (up to the manager's ``target_outbound``) are filled from the address
manager, preferring network groups none of our outbound peers is in, then from
bootstrap host names.  A failed dial (or a lost connection) backs off
exponentially, up to MAX_BACKOFF seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from .addrman import backoff
from .netaddr import host_group
from .peer import Peer

if TYPE_CHECKING:  # pragma: no cover
    from .manager import PeerManager

__all__ = ["Dialer", "CONNECT_TIMEOUT", "MAX_BACKOFF"]

log = logging.getLogger("o2ocli.p2p")

CONNECT_TIMEOUT = 5.0
MAX_BACKOFF = 60.0
DIAL_ROUND_SECONDS = 0.5
MAX_RETRY_ENTRIES = 4096


class Dialer:
    """The outbound side of one peer manager."""

    def __init__(self, manager: PeerManager) -> None:
        self.manager = manager
        self.retry_at: dict[tuple[str, int], float] = {}
        """Address → when it may be dialed again (monotonic time)."""
        self.dialing: set[tuple[str, int]] = set()
        self.round_errors = 0
        """Dial rounds that raised (each is logged with its traceback)."""

    def _connected_to(self, key: tuple[str, int]) -> bool:
        return any(p.listen_address == key and not p.closed
                   for p in self.manager.peers.values())

    async def connect(self, host: str, port: int) -> bool:
        """Dial ``host:port`` once; True if a connection was made."""
        m = self.manager
        key = (host, port)
        if key in self.dialing or self._connected_to(key) or m.banned(host):
            return False
        self.dialing.add(key)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, limit=2**16), CONNECT_TIMEOUT
            )
        except (TimeoutError, OSError) as exc:
            self.failed(key)
            log.debug("cannot connect to %s:%d: %s", host, port, exc)
            return False
        finally:
            self.dialing.discard(key)
        peer = Peer(m, reader, writer, inbound=False, dialed=key)
        m.run_peer_task(peer)
        return True

    def failed(self, key: tuple[str, int]) -> None:
        """A dial of ``key`` failed: back off (exponentially) before the next."""
        book = self.manager.book
        fixed = book.fixed.get(key)
        if fixed is not None:
            fixed.failures += 1
            fixed.next_try = time.monotonic() + backoff(fixed.failures, MAX_BACKOFF)
        attempts = book.attempted(key, int(time.time()))
        self.retry_at[key] = time.monotonic() + backoff(attempts, MAX_BACKOFF)

    def disconnected(self, key: tuple[str, int]) -> None:
        """A connection we dialed closed: wait before dialing it again."""
        fixed = self.manager.book.fixed.get(key)
        failures = fixed.failures if fixed is not None else 0
        self.retry_at[key] = time.monotonic() + backoff(failures, MAX_BACKOFF)

    def may_dial(self, key: tuple[str, int], connected: set[tuple[str, int]]) -> bool:
        """True if ``key`` is not connected, not being dialed, not backing off,
        not banned and not ourselves."""
        m = self.manager
        return (key not in connected and key not in self.dialing
                and self.retry_at.get(key, 0.0) <= time.monotonic()
                and not m.banned(key[0]) and not m.is_self(key))

    def pick_outbound(self, connected: set[tuple[str, int]]) -> tuple[str, int] | None:
        """The next address to fill an outbound slot: from the address
        manager, in a network group none of our outbound peers is in if
        possible; else a bootstrap host name that is due."""
        m = self.manager
        if len(self.retry_at) > MAX_RETRY_ENTRIES:
            now = time.monotonic()
            self.retry_at = {k: t for k, t in self.retry_at.items() if t > now}
        groups = {host_group(p.dialed[0]) for p in m.peers.values()
                  if p.dialed is not None and not p.closed}
        groups.update(host_group(host) for host, _ in self.dialing)
        fixed = m.book.fixed
        entry = m.book.addrman.select(
            int(time.time()),
            lambda e: e.key not in fixed and self.may_dial(e.key, connected), groups)
        if entry is not None:
            return entry.key
        now = time.monotonic()
        for key, peer in fixed.items():
            if not peer.always and peer.next_try <= now and self.may_dial(key, connected):
                return key
        return None

    async def loop(self) -> None:
        """Dial rounds for as long as the manager runs (none while networking is
        off).  A round that fails is logged and the next one runs: one bad
        address book entry must not stop the node from ever dialing again."""
        while True:
            if self.manager.network_active:
                try:
                    await self.round()
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - logged; the loop must go on
                    self.round_errors += 1
                    log.exception("dial round failed (the next one runs in %.1f s)",
                                  DIAL_ROUND_SECONDS)
            await asyncio.sleep(DIAL_ROUND_SECONDS)

    async def round(self) -> None:
        """Dial every due manual peer, then fill the free outbound slots."""
        m = self.manager
        now = time.monotonic()
        connected = {p.listen_address for p in m.peers.values() if not p.closed}
        for key, fixed in list(m.book.fixed.items()):
            if fixed.always and fixed.next_try <= now and self.may_dial(key, connected):
                fixed.next_try = now + 1.0
                await self.connect(*key)
        if not m.discover:
            return  # only the --connect/addpeer peers above
        outbound = sum(1 for p in m.peers.values() if not p.inbound and not p.closed)
        for _ in range(max(0, m.target_outbound - outbound)):
            connected = {p.listen_address for p in m.peers.values() if not p.closed}
            key = self.pick_outbound(connected)
            if key is None:
                break
            self.retry_at[key] = time.monotonic() + 1.0
            fixed = m.book.fixed.get(key)
            if fixed is not None:
                fixed.next_try = time.monotonic() + 1.0
            await self.connect(*key)

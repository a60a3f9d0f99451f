"""The addresses a node knows: manual and bootstrap peers, and the address manager.

:class:`AddressBook` holds the ``--connect``/``addpeer`` addresses (always
dialed), bootstrap host names (dialed when the address manager offers nothing)
and the bucketed :class:`~o2ocli.p2p.addrman.AddrMan` of addresses learned from
the spec and by gossip, saved in the node's database (under
:data:`o2ocli.storage.schema.PEER_ADDR`) after every change.  When to dial
them is the peer manager's business (:mod:`o2ocli.p2p.manager`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .addrman import AddrMan, AddrStore
from .interface import KeyValueStore
from .netaddr import parse_ip

__all__ = ["AddressBook", "FixedPeer"]


@dataclass
class FixedPeer:
    """A ``--connect``/``addpeer`` address (``always`` dialed, whatever the
    outbound target) or a bootstrap peer given by host name (dialed when
    the address manager has nothing better)."""

    always: bool
    failures: int = 0
    next_try: float = 0.0


class AddressBook:
    """Fixed peers and the (persisted) address manager."""

    def __init__(self, db: KeyValueStore, now: int) -> None:
        self.store = AddrStore(db)
        self.addrman: AddrMan = self.store.load(now)
        self.fixed: dict[tuple[str, int], FixedPeer] = {}
        self.rate_limited = 0
        """Gossiped addresses dropped by the per-peer rate limit."""

    def save(self) -> None:
        """Write the address manager to the database."""
        self.store.save(self.addrman)

    def add(self, host: str, port: int, now: int, *, manual: bool = False,
            seen: int | None = None, source: str | None = None) -> bool:
        """Remember a listening address.

        ``manual`` ones (``--connect``, ``addpeer``; host names allowed) are
        always kept dialed.  Others go to the address manager, told by
        ``source`` (default: the address itself, e.g. a bootstrap peer) and
        last seen at ``seen`` (default: now); a bootstrap host name is kept
        aside and dialed when the address manager offers nothing."""
        key = (host, port)
        if not 0 < port < 65536 or not host:
            return False
        if manual:
            fixed = self.fixed.setdefault(key, FixedPeer(always=True))
            fixed.always = True
            fixed.next_try = 0.0
            return True
        if source is None and parse_ip(host) is None:
            self.fixed.setdefault(key, FixedPeer(always=False))
            return True
        added = self.addrman.add(host, port, source if source is not None else host,
                                 now if seen is None else seen, now)
        self.save()
        return added or self.addrman.get(host, port) is not None

    def forget(self, key: tuple[str, int]) -> None:
        """Drop an address (e.g. it turned out to be ourselves)."""
        self.fixed.pop(key, None)
        if self.addrman.remove(*key):
            self.save()

    def connected(self, listen: tuple[str, int], peer_host: str, inbound: bool,
                  now: int) -> None:
        """A handshake completed: an outbound peer's address moves to the tried
        table; an inbound one's listening address (on its own IP) is learned as
        a new address."""
        fixed = self.fixed.get(listen)
        if fixed is not None:
            fixed.failures = 0
        if inbound:
            self.addrman.add(listen[0], listen[1], peer_host, now, now)
        elif parse_ip(listen[0]) is not None:
            if self.addrman.get(*listen) is None:
                self.addrman.add(listen[0], listen[1], listen[0], now, now)
            self.addrman.good(listen[0], listen[1], now)
        self.save()

    def attempted(self, key: tuple[str, int], now: int) -> int:
        """A dial of ``key`` failed; returns its failed attempts so far."""
        self.addrman.attempt(key[0], key[1], now)
        self.save()
        entry = self.addrman.get(*key)
        return entry.attempts if entry is not None else 1

    def learn(self, peer: Any, addresses: tuple[tuple[str, int, int], ...], limit: int,
              now: float, accept: Callable[[str, int], bool]) -> None:
        """Gossiped ``addresses`` from ``peer``: at most as many as its token
        bucket allows and ``limit`` (the rest are dropped and counted), those
        ``accept`` takes."""
        allowed = peer.addr_limiter.take(len(addresses), now)
        if allowed < len(addresses):
            self.rate_limited += len(addresses) - allowed
        for host, port, seen in addresses[:min(allowed, limit)]:
            if accept(host, port):
                self.addrman.add(host, port, peer.host, seen, int(now))
        self.save()

    def info(self) -> dict[str, Any]:
        """Address manager sizes and counters (for ``getaddrmaninfo``)."""
        stats = self.addrman.stats
        return {**self.addrman.counts(),
                "added": stats["added"], "evicted": stats["evicted"],
                "rejected_invalid": stats["invalid"], "rejected_source_cap": stats["source_cap"],
                "rejected_collision": stats["collision_dropped"],
                "rate_limited": self.rate_limited,
                "fixed": sorted(f"{h}:{p}" for (h, p), f in self.fixed.items() if f.always)}

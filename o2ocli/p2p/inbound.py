"""Who may connect inbound: networking switched on, no ban, at most
``MAX_INBOUND_PER_HOST`` connections per host, a discouraged host only while
slots are left, and when the slots are full a newcomer may evict an inbound
peer (:func:`~o2ocli.p2p.misbehaviour.select_eviction`)."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from .misbehaviour import EvictionCandidate, netgroup, select_eviction

if TYPE_CHECKING:  # pragma: no cover
    from .manager import PeerManager
    from .peer import Peer

__all__ = ["MAX_INBOUND_PER_HOST", "InboundPolicy"]

MAX_INBOUND_PER_HOST = 8


class InboundPolicy:
    """Admission of the inbound connections of one :class:`PeerManager`."""

    def __init__(self, manager: PeerManager) -> None:
        self.manager = manager
        self.evict_salt = secrets.token_bytes(16)

    def refusal(self, host: str, discouraged: bool) -> str | None:
        """Why a connection from ``host`` is refused, or None (admitted; a peer
        may have been evicted to make room)."""
        m = self.manager
        inbound = [p for p in m.peers.values() if p.inbound and not p.closed]
        same_host = sum(1 for p in inbound if p.host == host)
        if not m.network_active or m.banned(host):
            return "networking disabled" if not m.network_active else "banned"
        if same_host >= MAX_INBOUND_PER_HOST:
            return f"already {same_host} connections from this host"
        if discouraged and len(inbound) + 1 >= m.max_inbound:
            return "discouraged, and inbound slots are (nearly) full"
        if len(inbound) >= m.max_inbound and not self.evict(inbound):
            return "inbound slots full (no peer to evict)"
        return None

    def evict(self, inbound: list[Peer]) -> bool:
        """Close one inbound peer to make room (see :func:`select_eviction`)."""
        candidates = [
            EvictionCandidate(p.id, p.connected_mono, netgroup(p.host), p.min_ping,
                              p.last_block, p.last_tx, p.discouraged)
            for p in inbound
        ]
        victim = select_eviction(candidates, self.manager.max_inbound, self.evict_salt)
        if victim is None:
            return False
        self.manager.peers[victim].close("evicted: inbound slots full, room made for a newcomer")
        return True

"""Peer misbehaviour policy: what is punished, how, and who gets evicted.

Pure helpers used by :class:`~o2ocli.p2p.manager.PeerManager` (no sockets,
no database); ``now`` is always passed in, so everything here is unit-tested
directly.  See "Misbehaviour policy" in docs/protocol.rst.

* Misbehaviour points decay (half-life :data:`SCORE_HALF_LIFE`); at
  :data:`DISCONNECT_SCORE` the offending *connection* is closed.  Nothing
  else is dropped: other connections from the same host stay up.
* A public address that misbehaved is *discouraged* (:class:`Discouraged`):
  it is accepted again only while inbound slots are spare, and is the first
  to be evicted.  A local address (loopback, private, link-local, this host)
  is never discouraged or banned: many honest nodes can share it.
* Rules that depend on the receiver's clock or view (:data:`RECEIVER_DEPENDENT`)
  are never misbehaviour: such a header or block is dropped, or kept and
  retried later (:class:`FuturePool`), and the sender keeps its score.
* When inbound slots are full, :func:`select_eviction` picks an inbound peer
  to make room for a newcomer, in the manner of Bitcoin Core's
  ``AttemptToEvictConnection``.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from o2ocli.consensus.o2o import STATE_DEPENDENT_REASONS

__all__ = [
    "DISCONNECT_SCORE",
    "SCORE_HALF_LIFE",
    "RECEIVER_DEPENDENT",
    "DecayingScore",
    "Discouraged",
    "EvictionCandidate",
    "FuturePool",
    "is_local",
    "netgroup",
    "punishable",
    "select_eviction",
]

DISCONNECT_SCORE = 100
"""Misbehaviour points at which the offending connection is closed."""
SCORE_HALF_LIFE = 600.0
"""Seconds for a peer's misbehaviour points to halve (a long-lived honest peer's
occasional points never add up to a disconnect)."""
DISCOURAGE_SECONDS = 24 * 3600
MAX_DISCOURAGED = 50_000

RECEIVER_DEPENDENT = frozenset({
    # The receiver's clock: the block becomes valid when its time comes.
    "bad-poa-time-future",
    # The receiver's finalized height (another node may have finalized less).
    "bad-fork-below-finalized",
    # Transaction rules whose verdict depends on the UTXO / O2O state the
    # receiver has computed (or not yet): a state disagreement, not an attack.
    "bad-txns-inputs-missingorspent",
    "bad-txns-premature",
    *STATE_DEPENDENT_REASONS,
})
"""Invalidity reasons that depend on the receiving node's clock or view and so
are never punished (unknown parents are not errors at all: headers are
requested)."""


def punishable(reason: str) -> bool:
    """True if a header/block refused for ``reason`` is the sender's fault
    whatever the receiver's clock and state (context-free invalidity)."""
    return reason not in RECEIVER_DEPENDENT


# ---------------------------------------------------------------------------
# Addresses
# ---------------------------------------------------------------------------


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_local(host: str, own_hosts: Iterable[str] = ()) -> bool:
    """True for an address several honest nodes may share, which must never
    be banned or discouraged: loopback, private ranges (RFC 1918, ULA, CGNAT),
    link-local, unspecified, or one of ``own_hosts`` (this host's addresses).
    Names that are not IP addresses count as local (``localhost`` and the like;
    inbound peers always have numeric addresses)."""
    if host in own_hosts:
        return True
    ip = _ip(host)
    if ip is None:
        return True
    return (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_unspecified
            or ip in ipaddress.ip_network("100.64.0.0/10"))


def netgroup(host: str) -> str:
    """The network group used to keep inbound peers diverse: the /16 of an
    IPv4 address (127.0.0.0/8 included, so 127.0.x.y and 127.1.x.y are two
    groups), the /32 of an IPv6 address; anything else is its own group."""
    ip = _ip(host)
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ipaddress.ip_network(f"{ip}/16", strict=False))
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{ip}/32", strict=False))
    return host


# ---------------------------------------------------------------------------
# Scores and discouragement
# ---------------------------------------------------------------------------


class DecayingScore:
    """Misbehaviour points that halve every :data:`SCORE_HALF_LIFE` seconds."""

    def __init__(self, half_life: float = SCORE_HALF_LIFE) -> None:
        self.half_life = half_life
        self._value = 0.0
        self._at = 0.0

    def value(self, now: float) -> float:
        """The points left at ``now``."""
        if self._value <= 0:
            return 0.0
        return self._value * 0.5 ** (max(0.0, now - self._at) / self.half_life)

    def add(self, points: float, now: float) -> float:
        """Add ``points`` at ``now``; returns the new total."""
        self._value = self.value(now) + points
        self._at = now
        return self._value


class Discouraged:
    """Public hosts that misbehaved recently (bounded, in memory, expiring).

    Not a ban: a discouraged host may still connect while inbound slots are
    spare and is the first to be evicted; established connections stay."""

    def __init__(self, seconds: float = DISCOURAGE_SECONDS, limit: int = MAX_DISCOURAGED) -> None:
        self.seconds = seconds
        self.limit = limit
        self._until: OrderedDict[str, float] = OrderedDict()

    def add(self, host: str, now: float) -> None:
        """Discourage ``host`` until ``now`` + ``seconds`` (the oldest entry is
        forgotten when the set is full)."""
        self._until[host] = now + self.seconds
        self._until.move_to_end(host)
        while len(self._until) > self.limit:
            self._until.popitem(last=False)

    def contains(self, host: str, now: float) -> bool:
        """True if ``host`` is discouraged at ``now``."""
        until = self._until.get(host)
        if until is None:
            return False
        if until <= now:
            del self._until[host]
            return False
        return True

    def listing(self, now: float) -> list[dict[str, Any]]:
        """``[{"host", "until"}]`` of the current entries."""
        return [{"host": h, "until": int(u)} for h, u in sorted(self._until.items()) if u > now]

    def __len__(self) -> int:
        return len(self._until)


# ---------------------------------------------------------------------------
# Headers and blocks that are early by the receiver's clock
# ---------------------------------------------------------------------------


class FuturePool:
    """Items (headers or blocks) that are valid only once the local clock
    reaches ``due``; kept (bounded per peer and in all) and handed back by
    :meth:`take_due`.  Items due more than ``horizon`` seconds ahead are not
    kept at all (the caller drops them, still without punishing)."""

    def __init__(self, per_peer: int = 8, total: int = 64, horizon: float = 600.0) -> None:
        self.per_peer = per_peer
        self.total = total
        self.horizon = horizon
        self._items: list[tuple[float, int, Any]] = []

    def add(self, due: float, peer_id: int, item: Any, now: float) -> bool:
        """Keep ``item`` from ``peer_id`` until ``due``; False if refused
        (too far ahead, or the peer's share is used up)."""
        if due - now > self.horizon:
            return False
        if sum(1 for _, pid, _ in self._items if pid == peer_id) >= self.per_peer:
            return False
        if len(self._items) >= self.total:
            latest = max(range(len(self._items)), key=lambda i: self._items[i][0])
            if self._items[latest][0] <= due:
                return False
            del self._items[latest]
        self._items.append((due, peer_id, item))
        return True

    def take_due(self, now: float) -> list[tuple[int, Any]]:
        """Remove and return ``(peer_id, item)`` for items whose time came."""
        due = [(pid, item) for at, pid, item in self._items if at <= now]
        if due:
            self._items = [entry for entry in self._items if entry[0] > now]
        return due

    def __len__(self) -> int:
        return len(self._items)


# ---------------------------------------------------------------------------
# Inbound eviction
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EvictionCandidate:
    """What eviction looks at for one inbound peer."""

    peer_id: int
    connected_at: float
    """Monotonic time the connection was made."""
    netgroup: str
    min_ping: float | None = None
    """Lowest ping seen, seconds (None: not measured yet)."""
    last_block: float = 0.0
    """When the peer last sent us a new valid block (0: never)."""
    last_tx: float = 0.0
    """When the peer last sent us a new valid transaction (0: never)."""
    discouraged: bool = False


def _protect(candidates: list[EvictionCandidate], count: int, key: Any,
             keep: Any = None) -> list[EvictionCandidate]:
    """Remove the ``count`` best candidates by ``key`` (ascending) that pass ``keep``."""
    if count <= 0:
        return candidates
    eligible = sorted((c for c in candidates if keep is None or keep(c)), key=key)
    protected = {c.peer_id for c in eligible[:count]}
    return [c for c in candidates if c.peer_id not in protected]


def select_eviction(
    candidates: Sequence[EvictionCandidate], max_inbound: int, salt: bytes = b""
) -> int | None:
    """Which inbound peer to drop for a newcomer, or None to refuse the newcomer.

    A discouraged peer goes first (the youngest of them), unprotected.
    Otherwise, protected (in this order, each from the peers still unprotected), with
    Bitcoin Core's counts for 32 slots scaled to ``max_inbound``:
    one peer from each of up to ``max_inbound // 8`` network groups (chosen
    by a salted hash, so an attacker cannot predict which); the
    ``max_inbound // 4`` lowest pings; the ``max(1, max_inbound // 8)`` that
    most recently sent a new valid transaction and the same number that most
    recently sent a new valid block; half of the rest, longest connected first.
    Of those left, the youngest peer of the network group with the most peers
    left goes (ties: the group whose newest peer is youngest)."""
    discouraged = [c for c in candidates if c.discouraged]
    if discouraged:
        return max(discouraged, key=lambda c: c.connected_at).peer_id
    left = list(candidates)
    groups_to_protect = max_inbound // 8
    if groups_to_protect:
        by_group: dict[str, list[EvictionCandidate]] = defaultdict(list)
        for c in left:
            by_group[c.netgroup].append(c)
        ranked = sorted(by_group, key=lambda g: hashlib.sha256(salt + g.encode()).digest())
        protected = {min(by_group[g], key=lambda c: c.connected_at).peer_id
                     for g in ranked[:groups_to_protect]}
        left = [c for c in left if c.peer_id not in protected]
    left = _protect(left, max_inbound // 4, key=lambda c: c.min_ping,
                    keep=lambda c: c.min_ping is not None)
    relayers = max(1, max_inbound // 8)
    left = _protect(left, relayers, key=lambda c: -c.last_tx, keep=lambda c: c.last_tx > 0)
    left = _protect(left, relayers, key=lambda c: -c.last_block, keep=lambda c: c.last_block > 0)
    left = _protect(left, len(left) // 2, key=lambda c: c.connected_at)
    if not left:
        return None
    groups: dict[str, list[EvictionCandidate]] = defaultdict(list)
    for c in left:
        groups[c.netgroup].append(c)
    largest = max(groups.values(),
                  key=lambda cs: (len(cs), max(c.connected_at for c in cs)))
    return max(largest, key=lambda c: c.connected_at).peer_id

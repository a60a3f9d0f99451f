"""Who downloads which block: per-peer windows, stall detection, preference.

Pure bookkeeping, no I/O and no clock (every call takes ``now``), so it can be
tested on its own; :class:`o2ocli.p2p.sync.BlockSync` sends the requests and
disconnects peers.  Modelled on Bitcoin Core's block download logic, with two
changes: a stalling peer first loses its requests (and is put on probation)
rather than its connection, and the timeout also adapts to each peer's own
recent delivery rate.

* Each peer has at most ``window`` blocks in flight (``WINDOW`` at most).
  It grows by one per block delivered and is halved when the peer is found
  holding up the download.
* A peer is *stalling* when it owes us blocks and has delivered none for
  :meth:`BlockDownloader.timeout`: ``max(base, STALL_FACTOR × its recent
  per-block delivery time)``, at most ``MAX_STALL_TIMEOUT``.  ``base`` starts
  at ``MIN_STALL_TIMEOUT``, doubles at every stall (the network as a whole
  may be slow) and decays by ``BASE_DECAY`` with every block delivered.
  Only acted upon when another peer could take its blocks, or after
  ``NO_PROGRESS_SECONDS`` in any case.
* A stall is a *strike*: the peer's requests go back to the queue, it gets
  none for a cool-down (``base × 2^strikes``), then is on probation (one block
  at a time, last choice, never left holding the first missing block) until
  it delivers.  ``STRIKE_DECAY`` blocks delivered forgive one strike;
  ``MAX_STRIKES`` make the caller disconnect it.  Slowness is not provable
  misbehaviour: there are no misbehaviour points and no ban.
* The first block still missing (head of line) is always requested at once,
  beyond the window if need be, and taken from a peer on probation or that
  has sat on it for its timeout and given to the best other peer.
* Preference: peers off probation first, then the earliest expected
  delivery, ``(in flight + 1) × per-block time`` (peers that never delivered
  count as twice the slowest known).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = [
    "BlockDownloader",
    "PeerDownload",
    "Stall",
    "WINDOW",
    "MIN_STALL_TIMEOUT",
    "MAX_STALL_TIMEOUT",
    "STALL_FACTOR",
    "MAX_STRIKES",
    "NO_PROGRESS_SECONDS",
]

WINDOW = 64
"""Most blocks in flight from one peer."""
MIN_STALL_TIMEOUT = 2.0
MAX_STALL_TIMEOUT = 64.0
STALL_FACTOR = 8.0
"""k in timeout = max(base, k × the peer's per-block delivery time)."""
BASE_DECAY = 0.85
EWMA_WEIGHT = 0.25
"""Weight of the newest sample in a peer's per-block delivery time."""
MAX_STRIKES = 3
STRIKE_DECAY = WINDOW
"""Blocks delivered that forgive one strike."""
NO_PROGRESS_SECONDS = 20.0
"""A peer that delivers nothing for this long loses its requests even when no
other peer has the blocks (it is then disconnected, so that another is dialed)."""
UNKNOWN_RATE = 0.05
"""Per-block time assumed for ranking while no peer has delivered anything."""


@dataclass
class PeerDownload:
    """What one peer owes us and how well it has served us."""

    inflight: dict[bytes, float] = field(default_factory=dict)
    """block hash → when we asked for it."""
    window: int = WINDOW
    per_block: float | None = None
    """Recent seconds per delivered block (EWMA); None until the first one."""
    last_delivery: float = 0.0
    delivered: int = 0
    strikes: int = 0
    delivered_since_strike: int = 0
    cooldown_until: float = 0.0

    @property
    def probation(self) -> bool:
        """Stalled and has not delivered since."""
        return self.strikes > 0 and self.delivered_since_strike == 0


@dataclass(frozen=True)
class Stall:
    """A peer found stalling: its requests were released."""

    peer_id: int
    released: tuple[bytes, ...]
    strikes: int
    disconnect: bool


class BlockDownloader:
    """Block requests in flight, per peer, and the peers' delivery records."""

    def __init__(self) -> None:
        self.peers: dict[int, PeerDownload] = {}
        self.owner: dict[bytes, int] = {}
        """block hash → the peer it is requested from."""
        self.base = MIN_STALL_TIMEOUT
        self.resumed_at = 0.0

    # ------------------------------------------------------------- peers
    def add_peer(self, peer_id: int, *, strikes: int = 0, now: float = 0.0) -> PeerDownload:
        """Start tracking a peer (``strikes`` carried over from an earlier connection)."""
        state = self.peers.get(peer_id)
        if state is None:
            state = self.peers[peer_id] = PeerDownload()
            if strikes:
                state.strikes = strikes
                state.window = 1
                state.cooldown_until = now + self.base * 2 ** min(strikes, 5)
        return state

    def remove_peer(self, peer_id: int) -> tuple[bytes, ...]:
        """Stop tracking a peer; returns the blocks it still owed us."""
        state = self.peers.pop(peer_id, None)
        if state is None:
            return ()
        released = tuple(state.inflight)
        for block_hash in released:
            if self.owner.get(block_hash) == peer_id:
                del self.owner[block_hash]
        state.inflight.clear()
        return released

    def in_flight(self) -> int:
        """Blocks requested and not yet delivered, over all peers."""
        return len(self.owner)

    def timeout(self, peer_id: int) -> float:
        """How long the peer may owe us blocks without delivering one."""
        state = self.peers[peer_id]
        own = STALL_FACTOR * state.per_block if state.per_block is not None else 0.0
        return min(MAX_STALL_TIMEOUT, max(self.base, own))

    def slots(self, peer_id: int, now: float) -> int:
        """How many more blocks the peer may be asked for right now."""
        state = self.peers.get(peer_id)
        if state is None or now < state.cooldown_until:
            return 0
        window = 1 if state.probation else state.window
        return max(0, window - len(state.inflight))

    def choose(self, candidates: Iterable[int], now: float, *, force: bool = False
               ) -> int | None:
        """The preferred candidate with a free slot (``force``: window ignored,
        but never a peer cooling down)."""
        known = [s.per_block for s in self.peers.values() if s.per_block is not None]
        unknown = 2 * max(known) if known else UNKNOWN_RATE
        best: tuple[bool, float, int] | None = None
        chosen = None
        for peer_id in candidates:
            state = self.peers.get(peer_id)
            if state is None or now < state.cooldown_until:
                continue
            if not force and self.slots(peer_id, now) <= 0:
                continue
            rate = state.per_block if state.per_block is not None else unknown
            key = (state.probation, (len(state.inflight) + 1) * rate, peer_id)
            if best is None or key < best:
                best, chosen = key, peer_id
        return chosen

    # ---------------------------------------------------------- requests
    def assign(self, peer_id: int, block_hash: bytes, now: float) -> None:
        """Record that we asked ``peer_id`` for ``block_hash``."""
        previous = self.owner.get(block_hash)
        if previous is not None and previous != peer_id:
            self.peers[previous].inflight.pop(block_hash, None)
        self.owner[block_hash] = peer_id
        self.peers[peer_id].inflight[block_hash] = now

    def release(self, block_hash: bytes) -> None:
        """Forget a request (the block is no longer wanted)."""
        peer_id = self.owner.pop(block_hash, None)
        if peer_id is not None:
            self.peers[peer_id].inflight.pop(block_hash, None)

    def delivered(self, peer_id: int, block_hash: bytes, now: float) -> bool:
        """A block arrived from ``peer_id``; True if we had asked it for that block."""
        owner = self.owner.pop(block_hash, None)
        if owner is not None and owner != peer_id and owner in self.peers:
            # Reassigned (or announced by another peer): the block is here now.
            self.peers[owner].inflight.pop(block_hash, None)
        state = self.peers.get(peer_id)
        asked = state.inflight.pop(block_hash, None) if state is not None else None
        if state is None or asked is None:
            return False
        sample = max(0.0, now - max(asked, state.last_delivery))
        state.per_block = sample if state.per_block is None else (
            (1 - EWMA_WEIGHT) * state.per_block + EWMA_WEIGHT * sample)
        state.last_delivery = now
        state.delivered += 1
        state.window = min(WINDOW, state.window + 1)
        if state.strikes:
            state.delivered_since_strike += 1
            if state.delivered_since_strike >= STRIKE_DECAY:
                state.strikes -= 1
                state.delivered_since_strike = 1 if state.strikes else 0
        self.base = max(MIN_STALL_TIMEOUT, self.base * BASE_DECAY)
        return True

    def not_found(self, peer_id: int, block_hash: bytes) -> bool:
        """The peer does not have the block; True if it had been asked for it."""
        state = self.peers.get(peer_id)
        if state is None or state.inflight.pop(block_hash, None) is None:
            return False
        if self.owner.get(block_hash) == peer_id:
            del self.owner[block_hash]
        return True

    # ------------------------------------------------------------ stalls
    def note_lag(self, now: float) -> None:
        """We were busy (the event loop did not run): restart every idle clock,
        so that our own slowness is not blamed on the peers."""
        self.resumed_at = now

    def idle(self, peer_id: int, now: float) -> float:
        """Seconds the peer has owed us blocks without delivering one (0 if none owed)."""
        state = self.peers[peer_id]
        if not state.inflight:
            return 0.0
        since = max(min(state.inflight.values()), state.last_delivery, self.resumed_at)
        return max(0.0, now - since)

    def find_stalls(self, now: float, has_alternative: Callable[[int], bool]) -> list[Stall]:
        """Strike every stalling peer: release its requests, cool it down."""
        stalls = []
        for peer_id, state in self.peers.items():
            idle = self.idle(peer_id, now)
            if idle <= self.timeout(peer_id):
                continue
            if idle <= NO_PROGRESS_SECONDS and not has_alternative(peer_id):
                continue
            released = tuple(state.inflight)
            for block_hash in released:
                if self.owner.get(block_hash) == peer_id:
                    del self.owner[block_hash]
            state.inflight.clear()
            state.strikes += 1
            state.delivered_since_strike = 0
            state.window = 1
            state.cooldown_until = now + self.base * 2 ** min(state.strikes, 5)
            self.base = min(MAX_STALL_TIMEOUT, self.base * 2)
            disconnect = state.strikes >= MAX_STRIKES or idle > NO_PROGRESS_SECONDS
            stalls.append(Stall(peer_id, released, state.strikes, disconnect))
        return stalls

    def head_overdue(self, block_hash: bytes, now: float) -> bool:
        """True if the first missing block should be asked of someone else: it
        is not requested, or its peer is on probation or sat on it too long."""
        peer_id = self.owner.get(block_hash)
        if peer_id is None:
            return True
        state = self.peers[peer_id]
        if state.probation:
            return True
        asked = max(state.inflight[block_hash], self.resumed_at)
        return now - asked > self.timeout(peer_id)

    def reassign_head(self, block_hash: bytes, candidates: Iterable[int], now: float
                      ) -> int | None:
        """Ask the best candidate (other than its current peer, and not one on
        probation if it was requested already) for the head of line block, even
        beyond its window; the peer that held it has its window halved.
        Returns the new peer, or None if there is none."""
        previous = self.owner.get(block_hash)
        # Taken away, it never goes to a peer on probation (which would lose it
        # again at once: requests would bounce).
        chosen = self.choose(
            (p for p in candidates if p != previous and (
                previous is None or p not in self.peers or not self.peers[p].probation)),
            now, force=True)
        if chosen is None:
            return None
        if previous is not None:
            held = self.peers[previous]
            held.window = max(1, held.window // 2)
        self.assign(chosen, block_hash, now)
        return chosen

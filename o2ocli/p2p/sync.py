"""Header-first block download.

Headers are validated as they arrive (links, PoA seal, schedule, difficulty,
timestamps: :func:`o2ocli.consensus.poa.validate_header` against snapshots
computed from the headers themselves), before any body is requested.  Bodies
are then fetched in parallel from the peers that have shown they have them
(they sent us the block's header or a descendant's, or announced the block),
and connected strictly in header order.  Which peer is asked for what, and
what happens to a peer that sits on its requests, is decided by
:class:`o2ocli.p2p.download.BlockDownloader` (per-peer windows, adaptive stall
timeouts, probation; see there).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import OrderedDict, deque
from functools import partial
from typing import TYPE_CHECKING

from o2ocli.consensus.errors import BlockInvalid
from o2ocli.consensus.poa import Snapshot, validate_header
from o2ocli.core.block import Block, BlockHeader
from o2ocli.storage.chainstate import STATUS_INVALID, ChainStateError

from .download import WINDOW, BlockDownloader
from .headertree import Branches, block_locator
from .interface import ChainView
from .messages import MAX_HEADERS, GetData, GetHeaders

if TYPE_CHECKING:  # pragma: no cover
    from .manager import PeerManager
    from .peer import Peer

__all__ = ["BlockSync", "WINDOW"]

log = logging.getLogger("o2ocli.p2p.sync")

HEADERS_TIMEOUT = 30.0
UNAVAILABLE_SECONDS = 10.0
"""A queued block that no connected peer can serve for this long is given up
(with the headers queued after it); headers are then asked for afresh."""
MAX_PENDING = 200_000
CONNECT_SCAN = 256
MAX_AHEAD = 256
"""Most blocks held received but not yet connectable (waiting for a parent):
no more are requested until the queue moves, which bounds memory when a peer
withholds the next block."""
LOOP_LAG = 1.0
"""A gap this long between two stall checks means we were busy (connecting a
big block): the peers' idle clocks restart rather than blaming them."""
STRIKE_MEMORY = 1024
STRIKE_SECONDS = 3600.0
"""Stall strikes of a peer that disconnects are remembered for its address
(at most STRIKE_MEMORY addresses, for STRIKE_SECONDS): reconnecting does not
clear them."""


class BlockSync:
    """Tracks validated headers whose blocks are still to be fetched and connected."""

    def __init__(self, manager: PeerManager) -> None:
        self.manager = manager
        self.pending: dict[bytes, tuple[BlockHeader, Snapshot, int]] = {}
        """hash → (header, snapshot after it, total difficulty)."""
        self.queue: deque[bytes] = deque()
        self.received: dict[bytes, tuple[Block, Peer]] = {}
        self.downloads = BlockDownloader()
        self.shown: dict[int, bytes] = {}
        """peer id → the best pending header it sent us (it has that block and
        its ancestors)."""
        self.branches = Branches()
        """Which pending headers form one chain."""
        self.strike_record: OrderedDict[tuple[str, int], tuple[int, float]] = OrderedDict()
        self.last_check = time.monotonic()
        self.headers_from: dict[int, float] = {}
        """peer id → when we asked it for headers (an outstanding request)."""
        self.best_header_height = 0
        self.connected_count = 0
        self.unavailable: dict[bytes, set[int]] = {}
        """block hash → ids of peers that answered notfound for it."""
        self.waiting_since: dict[bytes, float] = {}
        """block hash → when we first found nobody to ask for it."""

    @property
    def chain(self) -> ChainView:
        """The node's chain (through :class:`~o2ocli.p2p.interface.NodeLink`)."""
        return self.manager.node.chain

    # ---------------------------------------------------------------- status
    def syncing(self) -> bool:
        """True while validated headers wait for their blocks.

        Only headers that passed the PoA checks count (a peer cannot fake them
        without a validator key), so no peer can keep a validator from sealing
        by announcing work it does not have; a block nobody can serve is given
        up after UNAVAILABLE_SECONDS."""
        return bool(self.queue)

    def headers_pending(self, peer_id: int) -> bool:
        """True if a header request to this peer is still unanswered."""
        asked = self.headers_from.get(peer_id)
        return asked is not None and time.monotonic() - asked < HEADERS_TIMEOUT

    def target_height(self) -> int:
        """Highest header height known (ours or validated from peers)."""
        return max(self.chain.height, self.best_header_height)

    # -------------------------------------------------------------- headers
    def locator(self, start: bytes | None = None) -> tuple[bytes, ...]:
        """Block locator: recent hashes densely, older ones exponentially sparser."""
        return block_locator(self.pending, self.chain, start)

    def request_headers(self, peer: Peer, start: bytes | None = None) -> None:
        """Ask ``peer`` for the headers after our best (pending) block."""
        self.headers_from[peer.id] = time.monotonic()
        peer.send(GetHeaders(self.locator(start)))

    def on_peer_ready(self, peer: Peer) -> None:
        """A new peer: fetch its headers if it claims at least as much work as we
        have.  Equal work matters too: two validators that sealed competing
        blocks of the same difficulty while apart must see each other's block,
        or the EIP-3436 tie-break never runs and, with each unable to seal on its
        own tip (the recency rule), the chain stalls.  When the tips are the
        same the answer is simply empty."""
        now = time.monotonic()
        strikes = 0
        record = self.strike_record.pop(self._record_key(peer), None)
        if record is not None and now - record[1] < STRIKE_SECONDS:
            strikes = record[0]
        peer.inflight = self.downloads.add_peer(peer.id, strikes=strikes, now=now).inflight
        if peer.best_td >= self.chain.tip.total_difficulty:
            self.request_headers(peer)

    @staticmethod
    def _record_key(peer: Peer) -> tuple[str, int]:
        return peer.listen_address or (peer.host, peer.port)

    # ------------------------------------------------------ what peers have
    def _add_pending(self, header: BlockHeader, snap: Snapshot, td: int) -> None:
        self.branches.add(header)
        self.pending[header.hash] = (header, snap, td)
        self.queue.append(header.hash)

    def _descends(self, tip: bytes, block_hash: bytes) -> bool:
        """True if pending ``block_hash`` is ``tip`` or one of its ancestors."""
        return self.branches.descends(tip, block_hash, lambda h: self.pending[h][0].height)

    def has_block(self, peer: Peer, block_hash: bytes) -> bool:
        """True if the peer has shown it has this pending block (announced it,
        or sent us its header or a descendant's).  The height a peer claims in
        its version message is not enough."""
        if block_hash in peer.known_blocks:
            return True
        tip = self.shown.get(peer.id)
        return tip is not None and self._descends(tip, block_hash)

    def _note_shown(self, peer: Peer, block_hash: bytes) -> None:
        if block_hash not in self.pending:
            return
        old = self.shown.get(peer.id)
        if old is None or old not in self.pending or (
                self.pending[block_hash][2] >= self.pending[old][2]):
            self.shown[peer.id] = block_hash

    def _parent_info(self, prev: bytes) -> tuple[BlockHeader, Snapshot, int] | None:
        if prev in self.pending:
            return self.pending[prev]
        entry = self.chain.state.get_index(prev)
        if entry is None or entry.status == STATUS_INVALID:
            return None
        return entry.header, self.chain.snapshot(prev), entry.total_difficulty

    def on_headers(self, peer: Peer, headers: tuple[BlockHeader, ...]) -> None:
        """Validate a batch of headers and queue their blocks for download."""
        self.headers_from.pop(peer.id, None)
        if not headers:
            return
        manager = self.manager
        parent = self._parent_info(headers[0].prev_hash)
        if parent is None:
            if self.chain.state.get_index(headers[0].prev_hash) is not None:
                manager.misbehaving(peer, 100, "headers build on an invalid block")
                return
            # They do not connect to anything we know: ask with a full locator.
            self.request_headers(peer)
            return
        state = self.chain.state
        now = int(self.chain.clock())
        first_parent = parent[0]
        if (
            first_parent.height < self.chain.finalized_height
            and state.get_block_hash(first_parent.height + 1) != headers[0].hash
        ):  # our finalized height, not the sender's fault: ignored, not punished
            log.info("headers from %s fork below our finalized height; ignored", peer.address)
            return
        header_parent, snap, td = parent
        last = None
        for index, header in enumerate(headers):
            if header.prev_hash != header_parent.hash:
                manager.misbehaving(peer, 100, "headers are not a chain")
                return
            known = self.pending.get(header.hash)
            entry = state.get_index(header.hash) if known is None else None
            if entry is not None and entry.status == STATUS_INVALID:
                manager.misbehaving(peer, 100, "header of a block known to be invalid")
                return
            if entry is None and known is None and header.hash in manager.refused_blocks:
                return  # refused by our view before: not queued again (nor punished)
            if known is not None:
                header_parent, snap, td = known
            elif entry is not None:
                header_parent, snap, td = entry.header, self.chain.snapshot(entry.hash), (
                    entry.total_difficulty
                )
            else:
                try:
                    snap = validate_header(header, header_parent, snap, self.chain.poa, now)
                except BlockInvalid as exc:
                    rest = headers[index:]
                    manager.block_refused(peer, exc, f"header {header.height} {header.hash.hex()}",
                                          header.hash, time_of=header.time,
                                          retry=partial(self.on_headers, peer, rest))
                    return
                peer.note_block_time(header.time, self.chain.clock())
                td += header.difficulty
                if len(self.pending) >= MAX_PENDING:
                    break
                self._add_pending(header, snap, td)
                header_parent = header
            peer.known_blocks.add(header.hash)
            last = header
        if last is not None:
            self._note_shown(peer, last.hash)
            peer.best_height = max(peer.best_height, last.height)
            peer.best_td = max(peer.best_td, td)
            self.best_header_height = max(self.best_header_height, last.height)
        if len(headers) == MAX_HEADERS and last is not None:
            self.request_headers(peer, last.hash)
        self.schedule()

    # --------------------------------------------------------------- bodies
    def schedule(self) -> None:
        """Hand out block requests to peers with free slots."""
        if not self.queue:
            return
        downloads = self.downloads
        now = time.monotonic()
        # At the cap, only the first missing block may still be asked for: it is
        # what lets the queue move.
        at_cap = len(self.received) + downloads.in_flight() >= MAX_AHEAD
        by_id = {p.id: p for p in self.manager.ready_peers()}
        free = {pid for pid in by_id if downloads.slots(pid, now) > 0}
        if not free:
            return
        wanted: dict[int, list[bytes]] = {pid: [] for pid in free}
        scanned = 0
        limit = 4 * WINDOW * len(free) + 64
        for block_hash in self.queue:
            scanned += 1
            if scanned > limit or not free:
                break
            if block_hash in downloads.owner or block_hash in self.received:
                if at_cap:
                    break  # the first missing block is already on its way
                continue
            refused = self.unavailable.get(block_hash, ())
            pid = downloads.choose(
                (pid for pid in free
                 if pid not in refused and self.has_block(by_id[pid], block_hash)), now)
            if pid is None:
                continue
            wanted[pid].append(block_hash)
            downloads.assign(pid, block_hash, now)
            if downloads.slots(pid, now) <= 0:
                free.discard(pid)
            if at_cap:
                break
        kind = self.manager.compact.request_kind
        for pid, hashes in wanted.items():
            if hashes:
                peer = by_id[pid]
                peer.send(GetData(tuple((kind(peer, h, self.pending[h][0].height), h)
                                        for h in hashes)))

    def on_block(self, peer: Peer, block: Block) -> None:
        """A block arrived (requested, or announced by its sealer)."""
        block_hash = block.hash
        self.downloads.delivered(peer.id, block_hash, time.monotonic())
        peer.known_blocks.add(block_hash)
        if block_hash in self.pending:
            self.received[block_hash] = (block, peer)
            self.on_block_read(block)
            self._connect_ready()
        else:
            state = self.chain.state
            if state.get_index(block_hash) is not None:
                return
            if state.get_index(block.header.prev_hash) is None:
                self.request_headers(peer)
                return
            self._submit(peer, block)
        self.schedule()

    def on_block_read(self, block: Block) -> None:
        """A block we asked for was read (handled now or after the messages
        before it): if blocks before it are still to connect, its signatures
        are verified meanwhile, on the signature workers."""
        block_hash = block.hash
        if block_hash in self.pending and self.queue and self.queue[0] != block_hash:
            self.manager.node.prefetch_block(block)

    def on_notfound(self, peer: Peer, hashes: list[bytes]) -> None:
        """The peer does not have blocks we asked for: ask someone else."""
        for block_hash in hashes:
            self.downloads.not_found(peer.id, block_hash)
            if block_hash in self.pending:
                self.unavailable.setdefault(block_hash, set()).add(peer.id)
        self.schedule()

    def _submit(self, peer: Peer, block: Block) -> bool:
        try:
            change = self.manager.node.submit_block(block, source=peer)
        except BlockInvalid as exc:
            self.manager.block_refused(peer, exc, f"block {block.height} {block.hash.hex()}",
                                       block.hash, time_of=block.header.time,
                                       retry=partial(self.on_block, peer, block))
            return False
        except ChainStateError as exc:
            log.info("block %d from %s not connected: %s", block.height, peer.address, exc)
            return False
        self.connected_count += 1
        if change:
            peer.last_block = time.monotonic()
        return True

    def _forget(self, block_hash: bytes) -> None:
        self.pending.pop(block_hash, None)
        self.received.pop(block_hash, None)
        self.unavailable.pop(block_hash, None)
        self.waiting_since.pop(block_hash, None)
        self.downloads.release(block_hash)
        self.branches.forget(block_hash)
        if not self.pending:
            self._clear_branches()

    def _clear_branches(self) -> None:
        self.branches.clear()
        self.shown.clear()

    def _connect_ready(self) -> None:
        """Connect every received block whose parent is stored, in header order.

        Blocks of one branch wait for their parent; blocks of another branch
        (or after a gap) do not wait for unrelated ones.
        """
        state = self.chain.state
        progress = True
        while progress and self.queue:
            progress = False
            for block_hash in itertools.islice(self.queue, CONNECT_SCAN):
                if block_hash not in self.pending:
                    self.queue.remove(block_hash)
                    self._forget(block_hash)
                    progress = True
                    break
                arrived = self.received.get(block_hash)
                if arrived is None:
                    continue  # (cheap: no database read for blocks still on the way)
                if state.get_index(block_hash) is not None:  # stored meanwhile
                    self.queue.remove(block_hash)
                    self._forget(block_hash)
                    progress = True
                    break
                block, peer = arrived
                if state.get_index(block.header.prev_hash) is None:
                    continue  # its parent comes first
                self.queue.remove(block_hash)
                self._forget(block_hash)
                if not self._submit(peer, block):
                    self._drop_pending()
                    return
                progress = True
                break

    def _drop_pending(self) -> None:
        """Forget queued headers (after an invalid block, or a block nobody can
        serve): start over with the headers of the remaining peers."""
        self.pending.clear()
        self.queue.clear()
        self.received.clear()
        self.unavailable.clear()
        self.waiting_since.clear()
        self._clear_branches()
        for block_hash in list(self.downloads.owner):
            self.downloads.release(block_hash)
        for peer in self.manager.ready_peers():
            if peer.best_td > self.chain.tip.total_difficulty:
                self.request_headers(peer)

    # -------------------------------------------------------------- upkeep
    def on_peer_gone(self, peer: Peer) -> None:
        """Re-queue what the peer still owed us; remember its stall strikes."""
        self.headers_from.pop(peer.id, None)
        self.shown.pop(peer.id, None)
        state = self.downloads.peers.get(peer.id)
        if state is not None and state.strikes:
            self.strike_record[self._record_key(peer)] = (state.strikes, time.monotonic())
            while len(self.strike_record) > STRIKE_MEMORY:
                self.strike_record.popitem(last=False)
        self.downloads.remove_peer(peer.id)
        self.schedule()

    def check_stalls(self) -> None:
        """Take blocks away from peers that sit on them (see BlockDownloader);
        make sure the first missing block is on its way from a good peer."""
        now = time.monotonic()
        downloads = self.downloads
        if now - self.last_check > LOOP_LAG:
            downloads.note_lag(now)
        self.last_check = now
        by_id = {p.id: p for p in self.manager.ready_peers()}

        def has_alternative(pid: int) -> bool:
            state = downloads.peers[pid]
            oldest = min(state.inflight, key=state.inflight.__getitem__)
            return any(
                other != pid and self.has_block(peer, oldest)
                and downloads.peers.get(other) is not None
                and now >= downloads.peers[other].cooldown_until
                for other, peer in by_id.items())

        for stall in downloads.find_stalls(now, has_alternative):
            peer = by_id.get(stall.peer_id)
            if peer is None:
                continue
            log.info("peer %s stalled block download (%d blocks taken back, strike %d)",
                     peer.address, len(stall.released), stall.strikes)
            if stall.disconnect:
                # Slowness is not provably bad behaviour: no points, no ban.
                peer.close(f"stalled block download ({stall.strikes} strikes)")
        self._unblock_head(now, by_id)
        for pid, asked in list(self.headers_from.items()):
            if now - asked > HEADERS_TIMEOUT:
                del self.headers_from[pid]
        self._give_up_unavailable(now)

    def _unblock_head(self, now: float, by_id: dict[int, Peer]) -> None:
        """The first missing block is asked for at once (beyond the window if
        need be), and asked of another peer when its peer is on probation or
        has sat on it for its timeout."""
        head = next((h for h in self.queue if h not in self.received), None)
        if head is None or head not in self.pending:
            return
        downloads = self.downloads
        if not downloads.head_overdue(head, now):
            return
        refused = self.unavailable.get(head, ())
        candidates = [pid for pid, peer in by_id.items()
                      if pid not in refused and self.has_block(peer, head)]
        previous = downloads.owner.get(head)
        chosen = downloads.reassign_head(head, candidates, now)
        if chosen is None:
            return
        if previous is not None:
            log.info("block %d: asked of peer %s instead of %s", self.pending[head][0].height,
                     by_id[chosen].address,
                     by_id[previous].address if previous in by_id else previous)
        peer = by_id[chosen]
        kind = self.manager.compact.request_kind(peer, head, self.pending[head][0].height)
        peer.send(GetData(((kind, head),)))

    def _give_up_unavailable(self, now: float) -> None:
        """Drop the queue when its first missing block has had no possible
        source for UNAVAILABLE_SECONDS (its announcer left, others lack it)."""
        head = next((h for h in self.queue if h not in self.received), None)
        if head is None or head in self.downloads.owner or head not in self.pending:
            if head is not None:
                self.waiting_since.pop(head, None)
            return
        height = self.pending[head][0].height
        refused = self.unavailable.get(head, set())
        holders = [
            p for p in self.manager.ready_peers()
            if p.id not in refused and self.has_block(p, head)
        ]
        if holders:
            self.waiting_since.pop(head, None)
            return
        since = self.waiting_since.setdefault(head, now)
        if now - since >= UNAVAILABLE_SECONDS:
            log.info("no peer can serve block %s at height %d; dropping %d queued headers",
                     head.hex()[:16], height, len(self.queue))
            self._drop_pending()

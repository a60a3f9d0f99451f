"""Compact block relay (in the spirit of Bitcoin Core's BIP 152, simplified).

Near the tip (a block at most COMPACT_AHEAD above our tip) a block is asked of a
peer that speaks protocol 2 with a ``getdata`` item of kind
:data:`~.compactmsg.INV_CMPCT_BLOCK`.  The answer (``cmpctblock``) is rebuilt
from its prefilled transactions and our mempool; the missing ones are asked
for with one ``getblocktxn``.  Once complete, the rebuilt block's merkle root
is checked against the header (whose hash is the one we asked for): on a
mismatch (e.g. a mempool copy with other witnesses, which an honest peer can
cause) the full block is asked of the same peer, with no penalty.  A structural
violation (an answer that does not fit the question: wrong number of
transactions, a transaction other than the one asked for, an index out of
range) costs the connection.  The rebuilt block goes to
:meth:`~.sync.BlockSync.on_block` like a full one, so a peer that never
completes is handled by the download's stall logic, and any block whose compact
form was asked for once is asked for in full after that.

Serving: the compact form of the last CACHE_BLOCKS blocks is kept (built from
the connected Block, or decoded once from the database), so a block is not
decoded again for each peer.  Only blocks of our main chain at most
SERVE_DEPTH below the tip are ever decoded for this: any other stored block is
sent in full, as raw bytes, so that a peer cannot make us decode a deep block
(a third of a second for a full one) with each 40-byte request.  Only
connected blocks are cached: a rebuilt block is not served before it passed
validation.

State of the receiving side (requests and partial blocks) lives only as long as
the block is still wanted from that peer: it is dropped once the block arrived
by any path, the block was taken back from the peer (stall, ``notfound``), the
peer left, or PARTIAL_SECONDS passed.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from o2ocli.core.block import Block
from o2ocli.core.encoding import DecodeError
from o2ocli.core.tx import Tx
from o2ocli.storage.schema import block_key

from .compactmsg import (
    INV_CMPCT_BLOCK,
    MAX_BLOCKTXN,
    BlockTxn,
    CmpctBlock,
    GetBlockTxn,
    compact_block,
)
from .messages import COMPACT_PROTOCOL, INV_BLOCK, MAX_PAYLOAD, BlockMsg, GetData, RawBlock
from .misbehaviour import DISCONNECT_SCORE
from .peer import KnownSet

if TYPE_CHECKING:  # pragma: no cover
    from .manager import PeerManager
    from .peer import Peer

__all__ = ["CompactRelay", "COMPACT_AHEAD", "CACHE_BLOCKS", "SERVE_DEPTH"]

log = logging.getLogger("o2ocli.p2p.compact")

COMPACT_AHEAD = 3
"""Blocks at most this far above our tip are asked for in compact form."""
CACHE_BLOCKS = 8
SERVE_DEPTH = 5
"""A block more than this far below our tip (or off our main chain) is served in
full, never decoded to be served in compact form.  SERVE_DEPTH + 1 < CACHE_BLOCKS,
so cycling requests over the servable blocks cannot thrash the cache."""
MAX_PARTIAL = 16
"""Compact blocks asked for or being rebuilt at once, over all peers: beyond it
blocks are asked for in full (a block is asked for in compact form once, only
near the tip, so few are)."""
MAX_PEER_PARTIAL = COMPACT_AHEAD + 1
"""The same for one peer (one branch near the tip has COMPACT_AHEAD such blocks;
more means forks, which are asked for in full)."""
PARTIAL_SECONDS = 120.0


@dataclass
class Partial:
    """A block being rebuilt from a ``cmpctblock``."""

    msg: CmpctBlock
    txs: list[Tx | None]
    missing: tuple[int, ...]
    since: float


class CompactRelay:
    """Both ends of compact block relay for one node."""

    def __init__(self, manager: PeerManager) -> None:
        self.manager = manager
        self.enabled = True
        """False: every block is asked for in full (benchmarks, tests)."""
        self.tried = KnownSet(10_000)
        """Blocks asked for in compact form once (asked for in full after that)."""
        self.asked: dict[tuple[int, bytes], float] = {}
        """(peer id, block hash) → when we asked it for the compact block."""
        self.partial: OrderedDict[tuple[int, bytes], Partial] = OrderedDict()
        self.cache: OrderedDict[bytes, tuple[Block, CmpctBlock | None]] = OrderedDict()
        self.stats = {"compact_received": 0, "rebuilt": 0, "blocktxn_asked": 0,
                      "txs_asked": 0, "fallback_full": 0, "bytes_saved": 0}

    # -------------------------------------------------------------- asking
    def request_kind(self, peer: Peer, block_hash: bytes, height: int) -> int:
        """The getdata kind to ask ``peer`` for this pending block with."""
        version = peer.version
        if (not self.enabled or version is None or version.protocol < COMPACT_PROTOCOL
                or height > self.manager.node.chain.height + COMPACT_AHEAD
                or block_hash in self.tried or self._busy(peer.id)):
            return INV_BLOCK
        self.tried.add(block_hash)
        self.asked[(peer.id, block_hash)] = time.monotonic()
        return INV_CMPCT_BLOCK

    def _busy(self, peer_id: int) -> bool:
        """True if no more compact blocks may be in the works (for this peer,
        or at all): see MAX_PEER_PARTIAL and MAX_PARTIAL.  So a partial block is
        never dropped to make room, which would leave its (honest) peer's
        answer unused and the peer blamed for a stall."""
        if len(self.asked) + len(self.partial) >= MAX_PARTIAL:
            return True
        mine = sum(1 for pid, _ in self.asked if pid == peer_id)
        mine += sum(1 for pid, _ in self.partial if pid == peer_id)
        return mine >= MAX_PEER_PARTIAL

    def on_message(self, peer: Peer, msg: CmpctBlock | BlockTxn) -> None:
        """A ``cmpctblock`` or ``blocktxn``."""
        if isinstance(msg, CmpctBlock):
            self.on_cmpctblock(peer, msg)
        else:
            self.on_blocktxn(peer, msg)

    def on_cmpctblock(self, peer: Peer, msg: CmpctBlock) -> None:
        """Rebuild a compact block we asked for (unasked ones are ignored)."""
        block_hash = msg.header.hash
        if self.asked.pop((peer.id, block_hash), None) is None:
            log.debug("unrequested cmpctblock from %s ignored", peer.address)
            return
        if not self._wanted(block_hash, peer.id):
            log.debug("cmpctblock from %s for a block we have meanwhile ignored", peer.address)
            return
        self.stats["compact_received"] += 1
        txs: list[Tx | None] = [None] * msg.tx_count
        for index, tx in msg.prefilled:
            txs[index] = tx
        mempool = self.manager.node.mempool
        missing = []
        ids = iter(msg.txids)
        for index in range(len(txs)):
            if txs[index] is not None:
                continue
            entry = mempool.get_entry(next(ids))
            if entry is None:
                missing.append(index)
            else:
                txs[index] = entry.tx
        if len(missing) > MAX_BLOCKTXN:
            self._fallback(peer, block_hash, f"{len(missing)} txs missing")
            return
        if not missing:
            self._complete(peer, msg, txs)
            return
        key = (peer.id, block_hash)
        self.partial[key] = Partial(msg, txs, tuple(missing), time.monotonic())
        self.stats["blocktxn_asked"] += 1
        self.stats["txs_asked"] += len(missing)
        peer.send(GetBlockTxn(block_hash, tuple(missing)))

    def on_blocktxn(self, peer: Peer, msg: BlockTxn) -> None:
        """The transactions we asked for: complete the block."""
        part = self.partial.pop((peer.id, msg.block_hash), None)
        if part is None or not self._wanted(msg.block_hash, peer.id):
            return  # given up on, or arrived another way, meanwhile (not the peer's fault)
        if len(msg.txs) != len(part.missing):
            self.manager.misbehaving(peer, DISCONNECT_SCORE,
                                     f"blocktxn with {len(msg.txs)} txs for "
                                     f"{len(part.missing)} asked")
            return
        expected = self._missing_txids(part)
        for index, tx, txid in zip(part.missing, msg.txs, expected, strict=True):
            if tx.txid != txid:
                self.manager.misbehaving(peer, DISCONNECT_SCORE,
                                         f"blocktxn tx {index} is not the one asked for")
                return
            part.txs[index] = tx
        self._complete(peer, part.msg, part.txs, len(msg.txs), sum(tx.size for tx in msg.txs))

    @staticmethod
    def _missing_txids(part: Partial) -> list[bytes]:
        prefilled = {i for i, _ in part.msg.prefilled}
        by_index = {}
        ids = iter(part.msg.txids)
        for index in range(part.msg.tx_count):
            if index not in prefilled:
                by_index[index] = next(ids)
        return [by_index[i] for i in part.missing]

    def _complete(self, peer: Peer, msg: CmpctBlock, txs: list[Tx | None],
                  fetched: int = 0, fetched_bytes: int = 0) -> None:
        body = tuple(tx for tx in txs if tx is not None)
        try:
            block = Block(msg.header, body, msg.votes, msg.evidence)
            ok = len(body) == len(txs) and block.compute_merkle_root() == msg.header.merkle_root
            size = block.size
        except (ValueError, DecodeError):
            ok = False
        if not ok:
            self._fallback(peer, msg.header.hash, "rebuilt block does not match its header")
            return
        self.stats["rebuilt"] += 1
        wire = len(msg.to_bytes()) + fetched_bytes
        self.stats["bytes_saved"] += max(0, size - wire)
        log.info("block %d rebuilt from its compact form: %d bytes received instead of %d "
                 "(%d of %d txs fetched)", block.height, wire, size,
                 fetched, len(txs))
        # Not cached for serving here: only once connected (announce_blocks), so
        # an invalid block is never served.
        self.manager.sync.on_block(peer, block)

    def _fallback(self, peer: Peer, block_hash: bytes, why: str) -> None:
        """Ask the same peer for the full block (no penalty: an honest peer
        can cause this)."""
        self.stats["fallback_full"] += 1
        log.info("compact block %s from %s: %s; asking for the full block",
                 block_hash.hex()[:16], peer.address, why)
        peer.send(GetData(((INV_BLOCK, block_hash),)))

    def _wanted(self, block_hash: bytes, peer_id: int) -> bool:
        """True while the block is queued for download, has not arrived, and
        is still asked of this peer (not taken back after a stall or a
        ``notfound``)."""
        sync = self.manager.sync
        return (block_hash in sync.pending and block_hash not in sync.received
                and sync.downloads.owner.get(block_hash) == peer_id)

    def upkeep(self) -> None:
        """Forget requests and partial blocks of gone peers, of blocks that
        arrived (by any path) or were given up, and old ones."""
        now = time.monotonic()
        live = self.manager.peers
        for key, since in list(self.asked.items()):
            if (key[0] not in live or now - since > PARTIAL_SECONDS
                    or not self._wanted(key[1], key[0])):
                del self.asked[key]
        for key, part in list(self.partial.items()):
            if (key[0] not in live or now - part.since > PARTIAL_SECONDS
                    or not self._wanted(key[1], key[0])):
                del self.partial[key]

    # ------------------------------------------------------------- serving
    def remember(self, block: Block) -> None:
        """Keep a recent block for serving (its compact form built on demand)."""
        if block.hash in self.cache:
            self.cache.move_to_end(block.hash)
            return
        self.cache[block.hash] = (block, None)
        while len(self.cache) > CACHE_BLOCKS:
            self.cache.popitem(last=False)

    def _block(self, block_hash: bytes) -> Block | None:
        """A cached block, or a main-chain block at most SERVE_DEPTH below the
        tip (decoded once and cached); None for any other."""
        cached = self.cache.get(block_hash)
        if cached is not None:
            self.cache.move_to_end(block_hash)
            return cached[0]
        chain = self.manager.node.chain
        entry = chain.state.get_index(block_hash)
        if (entry is None or entry.height + SERVE_DEPTH < chain.height
                or not chain.state.is_main_chain(entry)):
            return None
        raw = self.manager.node.db.get(block_key(block_hash))
        if raw is None:
            return None
        block = Block.from_bytes(raw)
        self.remember(block)
        return block

    def compact(self, block_hash: bytes) -> CmpctBlock | None:
        """The compact form of a recent block (None if we lack it or it is not
        recent: see :meth:`_block`; the caller then sends it in full)."""
        block = self._block(block_hash)
        if block is None:
            return None
        _, msg = self.cache.get(block_hash, (block, None))
        if msg is None:
            msg = compact_block(block)
            if block_hash in self.cache:
                self.cache[block_hash] = (block, msg)
        return msg

    def serve_blocktxn(self, peer: Peer, msg: GetBlockTxn) -> None:
        """Answer a getblocktxn (the full block if the answer would not fit a frame)."""
        block = self._block(msg.block_hash)
        if block is None:
            raw = self.manager.node.db.get(block_key(msg.block_hash))
            if raw is not None:  # deep or off our main chain: in full, not decoded
                peer.send(BlockMsg(RawBlock(raw)))
                peer.known_blocks.add(msg.block_hash)
            return  # not ours (any more): the asker's stall logic moves on
        if msg.indexes and msg.indexes[-1] >= len(block.txs):
            self.manager.misbehaving(peer, DISCONNECT_SCORE,
                                     "getblocktxn index out of range")
            return
        txs = tuple(block.txs[i] for i in msg.indexes)
        if sum(tx.size for tx in txs) + 64 > MAX_PAYLOAD:
            peer.send(BlockMsg(block))
            return
        peer.send(BlockTxn(msg.block_hash, txs))

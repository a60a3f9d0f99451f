"""Transaction relay: batches of relayed txs into the mempool, orphans, announcements.

Relayed txs are queued for a moment and handed to the node as one batch (one
mempool call, one signature verifier call).  A tx whose parents we lack is kept
as an orphan (a few, small ones, for a while) and retried when a parent is
accepted.  A tx refused by a consensus rule scores its sender; any refused tx
is remembered so its announcements are not fetched again.  Accepted txs are
announced to the other peers in batches (see :meth:`TxRelay.flush_announcements`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from o2ocli.core.tx import Tx

from .messages import INV_TX, GetData, Inv
from .peer import Peer

if TYPE_CHECKING:  # pragma: no cover
    from .manager import PeerManager

__all__ = ["TxRelay", "TX_BATCH_MAX", "TX_BATCH_SECONDS", "MAX_ORPHANS", "MAX_ORPHAN_TX_BYTES"]

log = logging.getLogger("o2ocli.p2p")

TX_BATCH_MAX = 2000
"""Relayed txs checked together at most (a full batch is checked at once)."""
TX_BATCH_SECONDS = 0.02
"""How long a relayed tx may wait for others to join its batch."""
MAX_ORPHANS = 100
MAX_ORPHAN_TX_BYTES = 100_000
"""Larger orphans are not kept (a chain spec may allow 4 MB transactions, whose
decoded form takes several times that: 100 of them would be gigabytes)."""
ORPHAN_SECONDS = 600
MAX_REJECTED = 50_000
INV_CHUNK = 5000


class TxRelay:
    """The relayed transactions of one peer manager."""

    def __init__(self, manager: PeerManager) -> None:
        self.manager = manager
        self.inbox: list[tuple[Peer, Tx]] = []
        """Relayed txs waiting for their batch."""
        self.flush_handle: asyncio.TimerHandle | None = None
        self.orphans: dict[bytes, tuple[Tx, int, float]] = {}
        """txid → (tx, id of the peer that sent it, when it came)."""
        self.rejected: dict[bytes, float] = {}
        """txid → when it was refused (not fetched again)."""
        self._announce: list[tuple[bytes, int | None]] = []

    def wanted(self, txid: bytes) -> bool:
        """True if an announced tx is worth fetching."""
        node = self.manager.node
        return (txid not in node.mempool and txid not in self.rejected
                and txid not in self.orphans and not node.chain.state.has_tx(txid))

    # ---------------------------------------------------------------- accept
    def queue(self, peer: Peer, tx: Tx) -> None:
        """Keep a relayed tx for the next batch: a batch is checked in one
        mempool call (one signature verifier call) instead of one per tx."""
        self.inbox.append((peer, tx))
        if len(self.inbox) >= TX_BATCH_MAX:
            self.flush()
        elif self.flush_handle is None:
            self.flush_handle = asyncio.get_running_loop().call_later(TX_BATCH_SECONDS,
                                                                      self.flush)

    def flush(self) -> None:
        """Accept the queued relayed txs as one batch."""
        if self.flush_handle is not None:
            self.flush_handle.cancel()
            self.flush_handle = None
        inbox, self.inbox = self.inbox, []
        self.accept([(peer, tx) for peer, tx in inbox if not peer.closed])

    def accept(self, batch: list[tuple[Peer | None, Tx]]) -> None:
        """Transactions from peers, in the order received: accept and relay
        them, keep the ones whose parents we lack as orphans, and score the
        peers that sent consensus-invalid ones."""
        node = self.manager.node
        fresh: list[tuple[Peer | None, Tx]] = []
        seen: set[bytes] = set()
        for peer, tx in batch:
            txid = tx.txid
            if peer is not None:
                peer.known_txs.add(txid)
            if txid in node.mempool or txid in self.orphans or txid in seen:
                continue
            seen.add(txid)
            fresh.append((peer, tx))
        if not fresh:
            return
        results = node.submit_txs([tx for _, tx in fresh], [peer for peer, _ in fresh])
        accepted: list[bytes] = []
        now = time.monotonic()
        for (peer, tx), result in zip(fresh, results, strict=True):
            if not isinstance(result, Exception):  # refusals are TxRejection exceptions
                if peer is not None:
                    peer.last_tx = now
                accepted.append(tx.txid)
            elif result.reason == "bad-txns-inputs-missingorspent" and peer is not None:
                self._add_orphan(tx, peer)
            else:
                self.rejected[tx.txid] = now
                if len(self.rejected) > MAX_REJECTED:
                    self.rejected.clear()
                if result.consensus and peer is not None:
                    self.manager.misbehaving(peer, 10, f"invalid transaction: {result.reason}")
        if accepted and self.orphans:
            self._retry_orphans(set(accepted))

    def _add_orphan(self, tx: Tx, peer: Peer) -> None:
        if tx.size > MAX_ORPHAN_TX_BYTES:
            log.debug("orphan tx %s from %s not kept: %d bytes", tx.txid.hex(), peer.address,
                      tx.size)
            return
        if len(self.orphans) >= MAX_ORPHANS:
            oldest = min(self.orphans, key=lambda t: self.orphans[t][2])
            del self.orphans[oldest]
        self.orphans[tx.txid] = (tx, peer.id, time.monotonic())
        mempool = self.manager.node.mempool
        missing = [(INV_TX, txin.prevout.txid) for txin in tx.inputs
                   if txin.prevout.txid not in mempool]
        if missing:
            peer.send(GetData(tuple(missing[:1000])))

    def _retry_orphans(self, parents: set[bytes]) -> None:
        waiting = [t for t, (tx, _, _) in self.orphans.items()
                   if any(i.prevout.txid in parents for i in tx.inputs)]
        if waiting:
            retry = [self.orphans.pop(txid) for txid in waiting]
            peers = self.manager.peers
            self.accept([(peers.get(peer_id), tx) for tx, peer_id, _ in retry])

    def expire_orphans(self) -> None:
        """Drop orphans older than ORPHAN_SECONDS."""
        now = time.monotonic()
        for txid in [t for t, (_, _, at) in self.orphans.items() if now - at > ORPHAN_SECONDS]:
            del self.orphans[txid]

    # -------------------------------------------------------------- announce
    def announce(self, txid: bytes, source: Peer | None = None) -> None:
        """Queue a transaction announcement (sent by :meth:`flush_announcements`)."""
        self._announce.append((txid, source.id if source is not None else None))

    def flush_announcements(self) -> None:
        """Announce the queued txs to every ready peer that does not know them."""
        if not self._announce:
            return
        pending, self._announce = self._announce, []
        for peer in self.manager.ready_peers():
            items = []
            for txid, source in pending:
                if source == peer.id or txid in peer.known_txs:
                    continue
                peer.known_txs.add(txid)
                items.append((INV_TX, txid))
            for start in range(0, len(items), INV_CHUNK):
                peer.send(Inv(tuple(items[start : start + INV_CHUNK])))

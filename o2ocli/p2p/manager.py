"""The peer manager: listening, dialing, message dispatch, block relay.

One :class:`PeerManager` per node.  It accepts inbound connections (up to
``max_inbound``), keeps every ``--connect``/``addpeer`` peer dialed, and
``target_outbound`` outbound connections in all, filled from the bucketed
address manager (:mod:`.addrman`: the spec's bootstrap peers and addresses
learned by gossip), preferring tried addresses and distinct network groups,
reconnecting with exponential backoff.  With ``discover`` off it
dials only ``--connect``/``addpeer`` addresses and learns none (test networks
whose links must go through a proxy).  Peers that break the
rules collect (decaying) misbehaviour points; at 100 that one connection is
closed and, for a public address, the host is discouraged (see
:mod:`o2ocli.p2p.misbehaviour`).  Only the operator bans (``ban``, persisted
for ``ban_seconds`` by default, so a restart keeps the ban).  When inbound
slots are full, a newcomer may evict an inbound peer.

Its parts live beside it: the address book (:mod:`.addrbook`), outbound
dialing (:mod:`.dialer`), bans and discouragement (:mod:`.bans`), inbound
admission (:mod:`.inbound`), transaction relay (:mod:`.txrelay`), serving
requests (:mod:`.serve`) and block download (:mod:`.sync`); each peer pings
itself (:meth:`~o2ocli.p2p.peer.Peer.keepalive`).  The node is reached only
through :class:`~o2ocli.p2p.interface.NodeLink`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from o2ocli import __version__
from o2ocli.asyncutil import cancel_and_wait
from o2ocli.consensus.errors import BlockInvalid
from o2ocli.core.tx import Tx

from .addrbook import AddressBook, FixedPeer
from .addrlimit import ADDR_BURST
from .addrman import AddrMan
from .bans import BanList
from .compact import CompactRelay
from .compactmsg import BlockTxn, CmpctBlock, GetBlockTxn
from .dialer import Dialer
from .inbound import InboundPolicy
from .interface import NodeLink
from .messages import (
    INV_BLOCK,
    INV_TX,
    MAX_ADDR,
    MAX_EVIDENCE,
    MAX_HEADERS,
    MAX_VOTES,
    PROTOCOL_VERSION,
    Addr,
    BlockMsg,
    EvidenceMsg,
    GetAddr,
    GetData,
    GetHeaders,
    Headers,
    Inv,
    Message,
    NotFound,
    Ping,
    Pong,
    TxMsg,
    Verack,
    Version,
    Votes,
)
from .misbehaviour import (
    DISCONNECT_SCORE,
    Discouraged,
    FuturePool,
    is_local,
    punishable,
)
from .peer import KnownSet, Peer
from .serve import queue_request
from .sync import BlockSync
from .txrelay import TxRelay

__all__ = ["PeerManager", "BAN_THRESHOLD", "FixedPeer"]

log = logging.getLogger("o2ocli.p2p")

BAN_THRESHOLD = DISCONNECT_SCORE
"""(Old name.)  Misbehaviour points at which a connection is closed."""
MAX_RECENT_DISCONNECTS = 50
PING_SECONDS = 30.0


class PeerManager:
    """All peers of one node."""

    def __init__(
        self,
        node: NodeLink,
        *,
        listen: tuple[str, int] | None,
        connect: list[tuple[str, int]] | tuple[tuple[str, int], ...] = (),
        bootstrap: list[tuple[str, int]] | tuple[tuple[str, int], ...] = (),
        target_outbound: int = 8,
        max_inbound: int = 32,
        ban_seconds: int = 24 * 3600,
        discover: bool = True,
    ) -> None:
        self.node = node
        spec = node.spec
        self.magic = spec.network_magic
        self.chain_id = spec.chain_id
        self.genesis_hash = node.chain.genesis.hash
        self.listen = listen
        self.listen_port = 0
        self.target_outbound = target_outbound
        self.max_inbound = max_inbound
        self.ban_seconds = ban_seconds
        self.discover = discover
        """False: dial only manual (``--connect``/``addpeer``) addresses and learn none."""
        self.peers: dict[int, Peer] = {}
        self.own_nonces: set[int] = set()
        self.book = AddressBook(node.db, int(time.time()))
        self.banlist = BanList(node.db, ban_seconds, time.time())
        self.future = FuturePool()
        """Headers and blocks early by our clock, retried when their time comes."""
        self.recent_disconnects: deque[dict[str, Any]] = deque(maxlen=MAX_RECENT_DISCONNECTS)
        self.refused_blocks = KnownSet(10_000)
        """Blocks refused by our view (not punished): their headers are not
        queued again, so a peer cannot make us download them in a loop."""
        self.inbound = InboundPolicy(self)
        self.network_active = True
        self.sync = BlockSync(self)
        self.compact = CompactRelay(self)
        self._server: asyncio.base_events.Server | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self.dialer = Dialer(self)
        self.txs = TxRelay(self)
        self.decode_pool = ThreadPoolExecutor(1, thread_name_prefix="p2p-decode")
        for host, port in connect:
            self.add_address(host, port, manual=True)
        for host, port in bootstrap:
            self.add_address(host, port)

    # ------------------------------------------------------------ addresses
    @property
    def addrman(self) -> AddrMan:
        """The address manager (of :attr:`book`)."""
        return self.book.addrman

    @property
    def fixed(self) -> dict[tuple[str, int], FixedPeer]:
        """Manual and bootstrap-name peers (of :attr:`book`)."""
        return self.book.fixed

    def add_address(self, host: str, port: int, *, manual: bool = False,
                    seen: int | None = None, source: str | None = None) -> bool:
        """Remember a listening address (see :meth:`AddressBook.add`)."""
        return self.book.add(host, port, int(time.time()), manual=manual, seen=seen,
                             source=source)

    def forget_address(self, key: tuple[str, int]) -> None:
        """Drop an address from the book (e.g. it turned out to be ourselves)."""
        self.book.forget(key)

    def addrman_info(self) -> dict[str, Any]:
        """Address manager sizes and counters (for ``getaddrmaninfo``)."""
        return self.book.info()

    # --------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Listen (if configured) and start the dial and upkeep loops."""
        if self.listen is not None:
            host, port = self.listen
            self._server = await asyncio.start_server(self._accept, host, port,
                                                      limit=2**16)
            self.listen_port = self._server.sockets[0].getsockname()[1]
            log.info("p2p listening on %s:%d", host, self.listen_port)
        self._tasks.append(asyncio.create_task(self.dialer.loop(), name="p2p-dial"))
        self._tasks.append(asyncio.create_task(self._upkeep_loop(), name="p2p-upkeep"))

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        await cancel_and_wait(self._tasks)
        if self._server is not None:
            self._server.close()
        for peer in list(self.peers.values()):
            peer.close("node shutting down")
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        self.decode_pool.shutdown(wait=False, cancel_futures=True)

    def our_version(self) -> Version:
        """The version message we open every connection with."""
        nonce = secrets.randbits(64)
        self.own_nonces.add(nonce)
        tip = self.node.chain.tip
        return Version(PROTOCOL_VERSION, self.chain_id, self.genesis_hash, tip.height,
                       tip.total_difficulty, self.listen_port, nonce, f"o2ocli/{__version__}")

    # ------------------------------------------------ bans and misbehaviour
    @property
    def bans(self) -> dict[str, int]:
        """Operator bans: host → until (unix time) (of :attr:`banlist`)."""
        return self.banlist.bans

    @property
    def discouraged(self) -> Discouraged:
        """Hosts discouraged after misbehaving (of :attr:`banlist`)."""
        return self.banlist.discouraged

    def banned(self, host: str) -> bool:
        """True if ``host`` is banned right now."""
        return self.banlist.banned(host, time.time())

    def ban(self, host: str, seconds: int | None = None) -> None:
        """Operator ban: refuse ``host`` and drop its connections (persisted).
        Misbehaviour never bans; see :meth:`misbehaving`."""
        self.banlist.ban(host, seconds, time.time())
        for peer in list(self.peers.values()):
            if peer.host == host:
                peer.close("banned")

    def unban(self, host: str) -> bool:
        """Lift a ban; returns False if there was none."""
        return self.banlist.unban(host)

    def banned_list(self) -> list[dict[str, Any]]:
        """Current (operator) bans."""
        return self.banlist.banned_list(time.time())

    def discouraged_list(self) -> list[dict[str, Any]]:
        """Public hosts discouraged after misbehaving."""
        return self.banlist.discouraged_list(time.time())

    def misbehaving(self, peer: Peer, points: int, reason: str) -> None:
        """Add (decaying) misbehaviour points; at the threshold this connection
        is closed and a public host discouraged.  No other connection is
        touched and nothing is banned: many honest nodes may share a host."""
        score = peer.misbehaviour.add(points, time.monotonic())
        log.warning("peer %s misbehaving (+%d = %d): %s", peer.address, points, score, reason)
        if score < DISCONNECT_SCORE:
            return
        if is_local(peer.host, (peer.local_host,)):
            peer.close(f"misbehaving (local host, not discouraged): {reason}")
        else:
            self.discouraged.add(peer.host, time.time())
            peer.close(f"misbehaving (host discouraged): {reason}")

    def block_refused(self, peer: Peer, exc: BlockInvalid, what: str, block_hash: bytes, *,
                      time_of: int | None = None,
                      retry: Callable[[], None] | None = None) -> None:
        """A header or block from ``peer`` broke a rule.  Only context-free
        invalidity is misbehaviour; a rule that depends on our clock or view
        just refuses it, and one that is early by our clock (``time_of`` is its
        timestamp) is kept and ``retry`` is called when its time comes."""
        if punishable(exc.reason):
            self.misbehaving(peer, DISCONNECT_SCORE, f"invalid {what}: {exc}")
            return
        if exc.reason != "bad-poa-time-future" or time_of is None:
            self.refused_blocks.add(block_hash)
            log.info("%s from %s not accepted (our view, not the sender's fault): %s",
                     what, peer.address, exc)
            return
        now = self.node.chain.clock()
        peer.note_block_time(time_of, now)
        due = time_of - self.node.chain.poa.max_future
        kept = retry is not None and self.future.add(due, peer.id, retry, now)
        log.warning(
            "%s from %s is %.0f s ahead of our clock (allowed: %d s): %s; check the "
            "clocks (NTP) of this node and of the sealer", what, peer.address,
            time_of - now, self.node.chain.poa.max_future,
            f"kept, retried in {max(0.0, due - now):.0f} s" if kept else "dropped")

    def _retry_future(self) -> None:
        for peer_id, retry in self.future.take_due(self.node.chain.clock()):
            peer = self.peers.get(peer_id)
            if peer is not None and peer.ready:
                retry()

    # ------------------------------------------------------------- connections
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host = (writer.get_extra_info("peername") or ("?",))[0]
        discouraged = self.discouraged.contains(host, time.time())
        refuse = self.inbound.refusal(host, discouraged)
        if refuse is not None:
            log.debug("inbound connection from %s refused: %s", host, refuse)
            writer.close()
            return
        peer = Peer(self, reader, writer, inbound=True)
        peer.discouraged = discouraged
        await self._run_peer(peer)

    async def connect(self, host: str, port: int) -> bool:
        """Dial ``host:port`` once; True if a connection was made."""
        return await self.dialer.connect(host, port)

    async def _run_peer(self, peer: Peer) -> None:
        self.peers[peer.id] = peer
        await peer.run()

    def run_peer_task(self, peer: Peer) -> None:
        """Run a dialed peer's connection as a task of this manager."""
        task = asyncio.create_task(self._run_peer(peer), name=f"peer-{peer.id}")
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    def ready_peers(self) -> list[Peer]:
        """Peers that finished the handshake."""
        return [p for p in self.peers.values() if p.ready]

    def on_ready(self, peer: Peer) -> None:
        """Handshake done: exchange addresses, start syncing if they are ahead."""
        log.info("peer %s connected (%s, height %d, %s)", peer.address,
                 "inbound" if peer.inbound else "outbound", peer.best_height,
                 peer.version.user_agent if peer.version else "?")
        if self.discover or peer.dialed is not None:
            self._addr_on_ready(peer)
        if not peer.inbound and self.discover:
            peer.addr_limiter.grant(ADDR_BURST)  # the answer to our getaddr
            peer.send(GetAddr())
        self.sync.on_peer_ready(peer)
        # Votes above our finalized block, so a peer that was away catches up
        # on finality without waiting for them to be carried in blocks.
        pool = [vote for vote, _ in self.node.chain.finality.pool.ordered()
                if vote.target_height > self.node.chain.finalized_height]
        if pool:
            peer.send(Votes(tuple(pool[-MAX_VOTES:])))

    def _addr_on_ready(self, peer: Peer) -> None:
        """Book-keeping for a completed handshake (see :meth:`AddressBook.connected`)."""
        listen = peer.listen_address
        if listen is None:
            return
        self.dialer.retry_at.pop(listen, None)
        self.book.connected(listen, peer.host, peer.inbound, int(time.time()))

    def on_disconnect(self, peer: Peer) -> None:
        """Forget a closed peer and re-queue its work."""
        self.peers.pop(peer.id, None)
        self.own_nonces.discard(peer.sent_nonce)
        self.recent_disconnects.append({
            "address": peer.address, "inbound": peer.inbound,
            "reason": peer.close_reason or "connection closed", "time": int(time.time()),
        })
        self.sync.on_peer_gone(peer)
        if peer.dialed is not None:
            self.dialer.disconnected(peer.dialed)

    def is_self(self, key: tuple[str, int]) -> bool:
        """True if ``key`` is our own listening address."""
        if self.listen is None:
            return False
        host, _ = self.listen
        return key[1] == self.listen_port and key[0] in (host, "127.0.0.1", "localhost")

    async def _upkeep_loop(self) -> None:
        last_ping = time.monotonic()
        while True:
            await asyncio.sleep(0.1)
            self.txs.flush_announcements()
            now = time.monotonic()
            if now - last_ping >= PING_SECONDS:
                last_ping = now
                for peer in self.ready_peers():
                    peer.keepalive(now)
                self.txs.expire_orphans()
            self._retry_future()
            self.sync.check_stalls()
            self.sync.schedule()
            self.compact.upkeep()

    # ---------------------------------------------------------------- handling
    async def handle(self, peer: Peer, msg: Message) -> None:
        """Dispatch one message from a ready peer."""
        if isinstance(msg, TxMsg):
            self.txs.queue(peer, msg.tx)
            return
        if self.txs.inbox:
            self.txs.flush()  # txs first, in the order they came (a block may spend them)
        if isinstance(msg, Ping):
            if isinstance(msg, Pong):
                peer.on_pong(msg.nonce, time.monotonic())
                return
            peer.send(Pong(msg.nonce))
        elif isinstance(msg, Headers):
            self.sync.on_headers(peer, msg.headers)
        elif isinstance(msg, BlockMsg):
            self.sync.on_block(peer, msg.block)
        elif isinstance(msg, Inv):
            self._on_inv(peer, msg)
        elif isinstance(msg, (CmpctBlock, BlockTxn)):
            self.compact.on_message(peer, msg)
        elif isinstance(msg, (GetHeaders, GetData, GetBlockTxn)):
            queue_request(self.node, peer, msg)
        elif isinstance(msg, NotFound):
            self.sync.on_notfound(peer, [h for kind, h in msg.items if kind != INV_TX])
        elif isinstance(msg, GetAddr):
            if not peer.served_addr:  # once per connection
                peer.served_addr = True
                self._serve_addr(peer)
        elif isinstance(msg, Addr):
            if self.discover:
                self._on_addr(peer, msg)
        elif isinstance(msg, Votes):
            self.node.on_votes(list(msg.votes), peer)
        elif isinstance(msg, EvidenceMsg):
            self.node.on_evidence(list(msg.evidence), peer)
        elif isinstance(msg, (Version, Verack)):
            self.misbehaving(peer, 20, "handshake message after the handshake")

    def _on_addr(self, peer: Peer, msg: Addr) -> None:
        """Feed gossiped addresses to the address book, at most as many as
        the peer's token bucket allows (the rest are dropped and counted)."""
        dropped = self.book.rate_limited
        self.book.learn(peer, msg.addresses, MAX_ADDR, time.time(),
                        lambda host, port: not self.banned(host)
                        and not self.is_self((host, port)))
        if self.book.rate_limited > dropped:
            log.debug("peer %s: %d of %d addresses dropped (rate limit)", peer.address,
                      self.book.rate_limited - dropped, len(msg.addresses))

    def _serve_addr(self, peer: Peer) -> None:
        now = int(time.time())
        good = [(e.host, e.port, e.last_seen) for e in self.addrman.get_addr(now, MAX_ADDR)
                if not self.banned(e.host)]
        if self.listen_port and self.listen is not None:
            good.insert(0, (self.listen[0], self.listen_port, now))
        peer.send(Addr(tuple(good[:MAX_ADDR])))

    def _on_inv(self, peer: Peer, msg: Inv) -> None:
        state = self.node.chain.state
        want_txs = []
        unknown_block = False
        for kind, item in msg.items:
            if kind == INV_BLOCK:
                peer.known_blocks.add(item)
                if state.get_index(item) is None and item not in self.sync.pending:
                    unknown_block = True
            else:
                peer.known_txs.add(item)
                if self.txs.wanted(item):
                    want_txs.append((INV_TX, item))
        if unknown_block and not self.sync.headers_pending(peer.id):
            self.sync.request_headers(peer)  # one request per message at most
        if want_txs:
            peer.send(GetData(tuple(want_txs[:1000])))

    # -------------------------------------------------------------------- txs
    def flush_txs(self) -> None:
        """Accept the queued relayed txs as one batch."""
        self.txs.flush()

    def on_tx(self, peer: Peer | None, tx: Tx) -> None:
        """A transaction from a peer: accept, relay, or keep as an orphan."""
        self.txs.accept([(peer, tx)])

    # ------------------------------------------------------------------ relay
    def announce_blocks(self, blocks: list[Any], source: Peer | None = None) -> None:
        """Tell every peer that does not know them about new main-chain blocks."""
        headers = tuple(b.header for b in blocks)[-MAX_HEADERS:]
        self.compact.remember(blocks[-1])  # served in compact form without a decode
        for peer in self.ready_peers():
            if peer is source or all(h.hash in peer.known_blocks for h in headers):
                continue
            for header in headers:
                peer.known_blocks.add(header.hash)
            peer.send(Headers(headers))  # always the whole run: headers must form a chain

    def relay_votes(self, votes: list[Any], source: Peer | None = None) -> None:
        """Send finality votes to every ready peer but ``source``."""
        self._broadcast([Votes(tuple(votes[start:start + MAX_VOTES]))
                         for start in range(0, len(votes), MAX_VOTES)], source)

    def relay_evidence(self, evidence: list[Any], source: Peer | None = None) -> None:
        """Send equivocation evidence to every ready peer but ``source``."""
        self._broadcast([EvidenceMsg(tuple(evidence[start:start + MAX_EVIDENCE]))
                         for start in range(0, len(evidence), MAX_EVIDENCE)], source)

    def _broadcast(self, msgs: list[Message], source: Peer | None) -> None:
        for msg in msgs:
            for peer in self.ready_peers():
                if peer is not source:
                    peer.send(msg)

    def announce_tx(self, txid: bytes, source: Peer | None = None) -> None:
        """Queue a transaction announcement (sent in batches every 100 ms)."""
        self.txs.announce(txid, source)

    # ------------------------------------------------------------------- info
    def set_active(self, active: bool) -> None:
        """Turn networking off (drop every peer, accept none) or back on."""
        self.network_active = active
        if not active:
            for peer in list(self.peers.values()):
                peer.close("network disabled")

"""The peer manager: listening, dialing, relay, address book, bans.

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
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from o2ocli import __version__
from o2ocli.asyncutil import cancel_and_wait
from o2ocli.consensus.errors import BlockInvalid
from o2ocli.core.tx import Tx

from .addrman import ADDR_BURST, AddrMan, AddrStore, backoff, host_group, parse_ip
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
    RawBlock,
    TxMsg,
    Verack,
    Version,
    Votes,
)
from .misbehaviour import (
    DISCONNECT_SCORE,
    Discouraged,
    EvictionCandidate,
    FuturePool,
    is_local,
    netgroup,
    punishable,
    select_eviction,
)
from .peer import MAX_QUEUED_REQUESTS, SEND_PAUSE_BYTES, KnownSet, Peer
from .sync import BlockSync

if TYPE_CHECKING:  # pragma: no cover
    from o2ocli.node.runtime import Node

__all__ = ["PeerManager", "BAN_THRESHOLD"]

log = logging.getLogger("o2ocli.p2p")

BAN_THRESHOLD = DISCONNECT_SCORE
"""(Old name.)  Misbehaviour points at which a connection is closed."""
MAX_RECENT_DISCONNECTS = 50
PING_SECONDS = 30.0
PING_TIMEOUT = 60.0
CONNECT_TIMEOUT = 5.0
MAX_BACKOFF = 60.0
TX_BATCH_MAX = 2000
"""Relayed txs checked together at most (a full batch is checked at once)."""
TX_BATCH_SECONDS = 0.02
"""How long a relayed tx may wait for others to join its batch."""
MAX_ORPHANS = 100
MAX_ORPHAN_TX_BYTES = 100_000
"""Larger orphans are not kept (a chain spec may allow 4 MB transactions, whose
decoded form takes several times that: 100 of them would be gigabytes)."""
MAX_INBOUND_PER_HOST = 8
ORPHAN_SECONDS = 600
ADDR_PREFIX = b"n"
BAN_PREFIX = b"x"


@dataclass
class FixedPeer:
    """A ``--connect``/``addpeer`` address (``always`` dialed, whatever the
    outbound target) or a bootstrap peer given by host name (dialed when
    the address manager has nothing better)."""

    always: bool
    failures: int = 0
    next_try: float = 0.0


class PeerManager:
    """All peers of one node."""

    def __init__(
        self,
        node: Node,
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
        self.addr_store = AddrStore(node.db, ADDR_PREFIX)
        self.addrman: AddrMan = self.addr_store.load(int(time.time()))
        self.fixed: dict[tuple[str, int], FixedPeer] = {}
        self._retry_at: dict[tuple[str, int], float] = {}
        self.addr_rate_limited = 0
        self.bans: dict[str, int] = {}
        """Operator bans: host → until (unix time)."""
        self.discouraged = Discouraged()
        self.future = FuturePool()
        """Headers and blocks early by our clock, retried when their time comes."""
        self.recent_disconnects: deque[dict[str, Any]] = deque(maxlen=MAX_RECENT_DISCONNECTS)
        self.refused_blocks = KnownSet(10_000)
        """Blocks refused by our view (not punished): their headers are not
        queued again, so a peer cannot make us download them in a loop."""
        self._evict_salt = secrets.token_bytes(16)
        self.network_active = True
        self.sync = BlockSync(self)
        self._server: asyncio.base_events.Server | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._dialing: set[tuple[str, int]] = set()
        self._tx_announce: list[tuple[bytes, int | None]] = []
        self._tx_inbox: list[tuple[Peer, Tx]] = []
        self._tx_flush: asyncio.TimerHandle | None = None
        self._orphans: dict[bytes, tuple[Tx, int, float]] = {}
        self.decode_pool = ThreadPoolExecutor(1, thread_name_prefix="p2p-decode")
        self._rejected: dict[bytes, float] = {}
        self._load()
        for host, port in connect:
            self.add_address(host, port, manual=True)
        for host, port in bootstrap:
            self.add_address(host, port)

    # ------------------------------------------------------------ persistence
    def _load(self) -> None:
        db = self.node.db
        now = int(time.time())
        for key, value in db.iterate(BAN_PREFIX):
            until = int.from_bytes(value, "big")
            if until > now:
                self.bans[key[1:].decode()] = until

    def _save_addrs(self) -> None:
        self.addr_store.save(self.addrman)

    def add_address(self, host: str, port: int, *, manual: bool = False,
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
        now = int(time.time())
        if source is None and parse_ip(host) is None:
            self.fixed.setdefault(key, FixedPeer(always=False))
            return True
        added = self.addrman.add(host, port, source if source is not None else host,
                                 now if seen is None else seen, now)
        self._save_addrs()
        return added or self.addrman.get(host, port) is not None

    # --------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Listen (if configured) and start the dial and upkeep loops."""
        if self.listen is not None:
            host, port = self.listen
            self._server = await asyncio.start_server(self._accept, host, port,
                                                      limit=2**16)
            self.listen_port = self._server.sockets[0].getsockname()[1]
            log.info("p2p listening on %s:%d", host, self.listen_port)
        self._tasks.append(asyncio.create_task(self._dial_loop(), name="p2p-dial"))
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

    # ------------------------------------------------------------- connections
    def banned(self, host: str) -> bool:
        """True if ``host`` is banned right now."""
        until = self.bans.get(host)
        if until is None:
            return False
        if until <= time.time():
            self.unban(host)
            return False
        return True

    def ban(self, host: str, seconds: int | None = None) -> None:
        """Operator ban: refuse ``host`` and drop its connections (persisted).
        Misbehaviour never bans; see :meth:`misbehaving`."""
        until = int(time.time()) + (seconds if seconds is not None else self.ban_seconds)
        self.bans[host] = until
        with self.node.db.write_batch() as batch:
            batch.put(BAN_PREFIX + host.encode(), until.to_bytes(8, "big"))
        for peer in list(self.peers.values()):
            if peer.host == host:
                peer.close("banned")

    def unban(self, host: str) -> bool:
        """Lift a ban; returns False if there was none."""
        existed = self.bans.pop(host, None) is not None
        with self.node.db.write_batch() as batch:
            batch.delete(BAN_PREFIX + host.encode())
        return existed

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

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host = (writer.get_extra_info("peername") or ("?",))[0]
        inbound = [p for p in self.peers.values() if p.inbound and not p.closed]
        same_host = sum(1 for p in inbound if p.host == host)
        discouraged = self.discouraged.contains(host, time.time())
        refuse = None
        if not self.network_active or self.banned(host):
            refuse = "networking disabled" if not self.network_active else "banned"
        elif same_host >= MAX_INBOUND_PER_HOST:
            refuse = f"already {same_host} connections from this host"
        elif discouraged and len(inbound) + 1 >= self.max_inbound:
            refuse = "discouraged, and inbound slots are (nearly) full"
        elif len(inbound) >= self.max_inbound and not self._evict_inbound(inbound):
            refuse = "inbound slots full (no peer to evict)"
        if refuse is not None:
            log.debug("inbound connection from %s refused: %s", host, refuse)
            writer.close()
            return
        peer = Peer(self, reader, writer, inbound=True)
        peer.discouraged = discouraged
        await self._run_peer(peer)

    def _evict_inbound(self, inbound: list[Peer]) -> bool:
        """Close one inbound peer to make room (see :func:`select_eviction`)."""
        candidates = [
            EvictionCandidate(p.id, p.connected_mono, netgroup(p.host), p.min_ping,
                              p.last_block, p.last_tx, p.discouraged)
            for p in inbound
        ]
        victim = select_eviction(candidates, self.max_inbound, self._evict_salt)
        if victim is None:
            return False
        self.peers[victim].close("evicted: inbound slots full, room made for a newcomer")
        return True

    async def connect(self, host: str, port: int) -> bool:
        """Dial ``host:port`` once; True if a connection was made."""
        key = (host, port)
        if key in self._dialing or self._connected_to(key) or self.banned(host):
            return False
        self._dialing.add(key)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, limit=2**16), CONNECT_TIMEOUT
            )
        except (TimeoutError, OSError) as exc:
            self._dial_failed(key)
            log.debug("cannot connect to %s:%d: %s", host, port, exc)
            return False
        finally:
            self._dialing.discard(key)
        peer = Peer(self, reader, writer, inbound=False, dialed=key)
        task = asyncio.create_task(self._run_peer(peer), name=f"peer-{peer.id}")
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)
        return True

    async def _run_peer(self, peer: Peer) -> None:
        self.peers[peer.id] = peer
        await peer.run()

    def _connected_to(self, key: tuple[str, int]) -> bool:
        return any(p.listen_address == key and not p.closed for p in self.peers.values())

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
        """Book-keeping for a completed handshake: an outbound peer's address
        moves to the tried table; an inbound one's listening address (on its
        own IP) is learned as a new address."""
        listen = peer.listen_address
        if listen is None:
            return
        now = int(time.time())
        fixed = self.fixed.get(listen)
        if fixed is not None:
            fixed.failures = 0
        self._retry_at.pop(listen, None)
        if peer.inbound:
            self.addrman.add(listen[0], listen[1], peer.host, now, now)
        elif parse_ip(listen[0]) is not None:
            if self.addrman.get(*listen) is None:
                self.addrman.add(listen[0], listen[1], listen[0], now, now)
            self.addrman.good(listen[0], listen[1], now)
        self._save_addrs()

    def forget_address(self, key: tuple[str, int]) -> None:
        """Drop an address from the book (e.g. it turned out to be ourselves)."""
        self.fixed.pop(key, None)
        if self.addrman.remove(*key):
            self._save_addrs()

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
            fixed = self.fixed.get(peer.dialed)
            failures = fixed.failures if fixed is not None else 0
            self._retry_at[peer.dialed] = time.monotonic() + backoff(failures, MAX_BACKOFF)

    def _dial_failed(self, key: tuple[str, int]) -> None:
        """A dial of ``key`` failed: back off (exponentially) before the next."""
        fixed = self.fixed.get(key)
        if fixed is not None:
            fixed.failures += 1
            fixed.next_try = time.monotonic() + backoff(fixed.failures, MAX_BACKOFF)
        self.addrman.attempt(key[0], key[1], int(time.time()))
        entry = self.addrman.get(*key)
        attempts = entry.attempts if entry is not None else 1
        self._retry_at[key] = time.monotonic() + backoff(attempts, MAX_BACKOFF)
        self._save_addrs()

    def _may_dial(self, key: tuple[str, int], connected: set[tuple[str, int]]) -> bool:
        return (key not in connected and key not in self._dialing
                and self._retry_at.get(key, 0.0) <= time.monotonic()
                and not self.banned(key[0]) and not self._is_self(key))

    def _pick_outbound(self, connected: set[tuple[str, int]]) -> tuple[str, int] | None:
        """The next address to fill an outbound slot: from the address
        manager, in a network group none of our outbound peers is in if
        possible; else a bootstrap host name that is due."""
        if len(self._retry_at) > 4096:
            now = time.monotonic()
            self._retry_at = {k: t for k, t in self._retry_at.items() if t > now}
        groups = {host_group(p.dialed[0]) for p in self.peers.values()
                  if p.dialed is not None and not p.closed}
        groups.update(host_group(host) for host, _ in self._dialing)
        entry = self.addrman.select(
            int(time.time()),
            lambda e: e.key not in self.fixed and self._may_dial(e.key, connected), groups)
        if entry is not None:
            return entry.key
        now = time.monotonic()
        for key, fixed in self.fixed.items():
            if not fixed.always and fixed.next_try <= now and self._may_dial(key, connected):
                return key
        return None

    async def _dial_loop(self) -> None:
        while True:
            if self.network_active:
                await self._dial_round()
            await asyncio.sleep(0.5)

    async def _dial_round(self) -> None:
        """Dial every due manual peer, then fill the free outbound slots."""
        now = time.monotonic()
        connected = {p.listen_address for p in self.peers.values() if not p.closed}
        for key, fixed in list(self.fixed.items()):
            if fixed.always and fixed.next_try <= now and self._may_dial(key, connected):
                fixed.next_try = now + 1.0
                await self.connect(*key)
        if not self.discover:
            return  # only the --connect/addpeer peers above
        outbound = sum(1 for p in self.peers.values() if not p.inbound and not p.closed)
        for _ in range(max(0, self.target_outbound - outbound)):
            connected = {p.listen_address for p in self.peers.values() if not p.closed}
            key = self._pick_outbound(connected)
            if key is None:
                break
            self._retry_at[key] = time.monotonic() + 1.0
            fixed = self.fixed.get(key)
            if fixed is not None:
                fixed.next_try = time.monotonic() + 1.0
            await self.connect(*key)

    def _is_self(self, key: tuple[str, int]) -> bool:
        if self.listen is None:
            return False
        host, _ = self.listen
        return key[1] == self.listen_port and key[0] in (host, "127.0.0.1", "localhost")

    async def _upkeep_loop(self) -> None:
        last_ping = time.monotonic()
        while True:
            await asyncio.sleep(0.1)
            self._flush_tx_announcements()
            now = time.monotonic()
            if now - last_ping >= PING_SECONDS:
                last_ping = now
                for peer in self.ready_peers():
                    if peer.ping_nonce is not None and now - peer.ping_sent > PING_TIMEOUT:
                        peer.close("ping timeout")
                        continue
                    if peer.ping_nonce is None:
                        peer.ping_nonce = secrets.randbits(64)
                        peer.ping_sent = now
                        peer.send(Ping(peer.ping_nonce))
                self._expire_orphans()
            self._retry_future()
            self.sync.check_stalls()
            self.sync.schedule()

    # ---------------------------------------------------------------- handling
    async def handle(self, peer: Peer, msg: Message) -> None:
        """Dispatch one message from a ready peer."""
        if isinstance(msg, TxMsg):
            self._queue_tx(peer, msg.tx)
            return
        if self._tx_inbox:
            self.flush_txs()  # txs first, in the order they came (a block may spend them)
        if isinstance(msg, Ping):
            if isinstance(msg, Pong):
                if msg.nonce == peer.ping_nonce:
                    peer.latency = time.monotonic() - peer.ping_sent
                    if peer.min_ping is None or peer.latency < peer.min_ping:
                        peer.min_ping = peer.latency
                    peer.ping_nonce = None
                return
            peer.send(Pong(msg.nonce))
        elif isinstance(msg, Headers):
            self.sync.on_headers(peer, msg.headers)
        elif isinstance(msg, BlockMsg):
            self.sync.on_block(peer, msg.block)
        elif isinstance(msg, Inv):
            self._on_inv(peer, msg)
        elif isinstance(msg, (GetHeaders, GetData)):
            self._queue_request(peer, msg)
        elif isinstance(msg, NotFound):
            self.sync.on_notfound(peer, [h for kind, h in msg.items if kind == INV_BLOCK])
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

    def _serve_headers(self, peer: Peer, msg: GetHeaders) -> None:
        state = self.node.chain.state
        start = 1
        for block_hash in msg.locator:
            entry = state.get_index(block_hash)
            if entry is not None and state.is_main_chain(entry):
                start = entry.height + 1
                break
        headers = []
        for height in range(start, min(self.node.chain.height, start + MAX_HEADERS - 1) + 1):
            block_hash = state.get_block_hash(height)
            entry = state.get_index(block_hash) if block_hash else None
            if entry is None:
                break
            headers.append(entry.header)
            if block_hash == msg.stop:
                break
        for header in headers:
            peer.known_blocks.add(header.hash)
        peer.send(Headers(tuple(headers)))

    def _queue_request(self, peer: Peer, msg: GetHeaders | GetData) -> None:
        """Serve a request now, or after what the peer has not read yet."""
        items = msg.items if isinstance(msg, GetData) else (msg,)
        if len(peer.requests) + len(items) > MAX_QUEUED_REQUESTS:
            peer.close("not reading its data (too many requests waiting)")
            return
        peer.requests.extend(items)
        self._serve_requests(peer)

    def _serve_requests(self, peer: Peer) -> None:
        """Serve queued requests in order until the peer's unsent data passes
        SEND_PAUSE_BYTES; then resume once it has read it."""
        if peer.serving is not None:
            return
        missing: list[tuple[int, bytes]] = []
        while peer.requests and not peer.closed:
            if peer.unsent > SEND_PAUSE_BYTES:
                peer.serving = asyncio.create_task(self._serve_when_read(peer),
                                                   name=f"peer-{peer.id}-serve")
                break
            request = peer.requests.popleft()
            if isinstance(request, GetHeaders):
                self._serve_headers(peer, request)
            elif not self._serve_item(peer, *request):
                missing.append(request)
        if missing and not peer.closed:
            peer.send(NotFound(tuple(missing)))

    async def _serve_when_read(self, peer: Peer) -> None:
        try:
            await peer.wait_sent()
        except (ConnectionError, RuntimeError):
            return
        finally:
            peer.serving = None
        self._serve_requests(peer)

    def _serve_item(self, peer: Peer, kind: int, item: bytes) -> bool:
        """Send one requested block or mempool transaction; False if we lack it."""
        if kind == INV_BLOCK:
            raw = self.node.db.get(b"b" + item)
            if raw is None:
                return False
            peer.send(BlockMsg(RawBlock(raw)))
            peer.known_blocks.add(item)
            return True
        # Only mempool transactions are served (as in Bitcoin Core): a
        # confirmed one would cost a block decode per request.
        entry = self.node.mempool.get_entry(item)
        if entry is None:
            return False
        peer.send(TxMsg(entry.tx))
        peer.known_txs.add(item)
        return True

    def _on_addr(self, peer: Peer, msg: Addr) -> None:
        """Feed gossiped addresses to the address manager, at most as many as
        the peer's token bucket allows (the rest are dropped and counted)."""
        now = time.time()
        allowed = peer.addr_limiter.take(len(msg.addresses), now)
        if allowed < len(msg.addresses):
            self.addr_rate_limited += len(msg.addresses) - allowed
            log.debug("peer %s: %d of %d addresses dropped (rate limit)", peer.address,
                      len(msg.addresses) - allowed, len(msg.addresses))
        for host, port, seen in msg.addresses[:min(allowed, MAX_ADDR)]:
            if not self.banned(host) and not self._is_self((host, port)):
                self.addrman.add(host, port, peer.host, seen, int(now))
        self._save_addrs()

    def _serve_addr(self, peer: Peer) -> None:
        now = int(time.time())
        good = [(e.host, e.port, e.last_seen) for e in self.addrman.get_addr(now, MAX_ADDR)
                if not self.banned(e.host)]
        if self.listen_port and self.listen is not None:
            good.insert(0, (self.listen[0], self.listen_port, now))
        peer.send(Addr(tuple(good[:MAX_ADDR])))

    def addrman_info(self) -> dict[str, Any]:
        """Address manager sizes and counters (for ``getaddrmaninfo``)."""
        stats = self.addrman.stats
        return {**self.addrman.counts(),
                "added": stats["added"], "evicted": stats["evicted"],
                "rejected_invalid": stats["invalid"], "rejected_source_cap": stats["source_cap"],
                "rejected_collision": stats["collision_dropped"],
                "rate_limited": self.addr_rate_limited,
                "fixed": sorted(f"{h}:{p}" for (h, p), f in self.fixed.items() if f.always)}

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
                if (item not in self.node.mempool and item not in self._rejected
                        and item not in self._orphans and not state.has_tx(item)):
                    want_txs.append((INV_TX, item))
        if unknown_block and not self.sync.headers_pending(peer.id):
            self.sync.request_headers(peer)  # one request per message at most
        if want_txs:
            peer.send(GetData(tuple(want_txs[:1000])))

    # -------------------------------------------------------------------- txs
    def _queue_tx(self, peer: Peer, tx: Tx) -> None:
        """Keep a relayed tx for the next batch: a batch is checked in one
        mempool call (one signature verifier call) instead of one per tx."""
        self._tx_inbox.append((peer, tx))
        if len(self._tx_inbox) >= TX_BATCH_MAX:
            self.flush_txs()
        elif self._tx_flush is None:
            self._tx_flush = asyncio.get_running_loop().call_later(TX_BATCH_SECONDS,
                                                                   self.flush_txs)

    def flush_txs(self) -> None:
        """Accept the queued relayed txs as one batch."""
        if self._tx_flush is not None:
            self._tx_flush.cancel()
            self._tx_flush = None
        inbox, self._tx_inbox = self._tx_inbox, []
        self.on_txs([(peer, tx) for peer, tx in inbox if not peer.closed])

    def on_tx(self, peer: Peer | None, tx: Tx) -> None:
        """A transaction from a peer: accept, relay, or keep as an orphan."""
        self.on_txs([(peer, tx)])

    def on_txs(self, batch: list[tuple[Peer | None, Tx]]) -> None:
        """Transactions from peers, in the order received: accept and relay
        them, keep the ones whose parents we lack as orphans, and score the
        peers that sent consensus-invalid ones."""
        from o2ocli.node.mempool import MempoolError

        fresh: list[tuple[Peer | None, Tx]] = []
        seen: set[bytes] = set()
        for peer, tx in batch:
            txid = tx.txid
            if peer is not None:
                peer.known_txs.add(txid)
            if txid in self.node.mempool or txid in self._orphans or txid in seen:
                continue
            seen.add(txid)
            fresh.append((peer, tx))
        if not fresh:
            return
        results = self.node.submit_txs([tx for _, tx in fresh], [peer for peer, _ in fresh])
        accepted: list[bytes] = []
        now = time.monotonic()
        for (peer, tx), result in zip(fresh, results, strict=True):
            if not isinstance(result, MempoolError):
                if peer is not None:
                    peer.last_tx = now
                accepted.append(tx.txid)
            elif result.reason == "bad-txns-inputs-missingorspent" and peer is not None:
                self._add_orphan(tx, peer)
            else:
                self._rejected[tx.txid] = now
                if len(self._rejected) > 50_000:
                    self._rejected.clear()
                if result.consensus and peer is not None:
                    self.misbehaving(peer, 10, f"invalid transaction: {result.reason}")
        if accepted and self._orphans:
            self._retry_orphans(set(accepted))

    def _add_orphan(self, tx: Tx, peer: Peer) -> None:
        if tx.size > MAX_ORPHAN_TX_BYTES:
            log.debug("orphan tx %s from %s not kept: %d bytes", tx.txid.hex(), peer.address,
                      tx.size)
            return
        if len(self._orphans) >= MAX_ORPHANS:
            oldest = min(self._orphans, key=lambda t: self._orphans[t][2])
            del self._orphans[oldest]
        self._orphans[tx.txid] = (tx, peer.id, time.monotonic())
        missing = [(INV_TX, txin.prevout.txid) for txin in tx.inputs
                   if txin.prevout.txid not in self.node.mempool]
        if missing:
            peer.send(GetData(tuple(missing[:1000])))

    def _retry_orphans(self, parents: set[bytes]) -> None:
        waiting = [t for t, (tx, _, _) in self._orphans.items()
                   if any(i.prevout.txid in parents for i in tx.inputs)]
        if waiting:
            retry = [self._orphans.pop(txid) for txid in waiting]
            self.on_txs([(self.peers.get(peer_id), tx) for tx, peer_id, _ in retry])

    def _expire_orphans(self) -> None:
        now = time.monotonic()
        for txid in [t for t, (_, _, at) in self._orphans.items() if now - at > ORPHAN_SECONDS]:
            del self._orphans[txid]

    # ------------------------------------------------------------------ relay
    def announce_blocks(self, blocks: list[Any], source: Peer | None = None) -> None:
        """Tell every peer that does not know them about new main-chain blocks."""
        headers = tuple(b.header for b in blocks)[-MAX_HEADERS:]
        for peer in self.ready_peers():
            if peer is source or all(h.hash in peer.known_blocks for h in headers):
                continue
            for header in headers:
                peer.known_blocks.add(header.hash)
            peer.send(Headers(headers))  # always the whole run: headers must form a chain

    def relay_votes(self, votes: list[Any], source: Peer | None = None) -> None:
        """Send finality votes to every ready peer but ``source``."""
        for start in range(0, len(votes), MAX_VOTES):
            msg = Votes(tuple(votes[start:start + MAX_VOTES]))
            for peer in self.ready_peers():
                if peer is not source:
                    peer.send(msg)

    def relay_evidence(self, evidence: list[Any], source: Peer | None = None) -> None:
        """Send equivocation evidence to every ready peer but ``source``."""
        for start in range(0, len(evidence), MAX_EVIDENCE):
            msg = EvidenceMsg(tuple(evidence[start:start + MAX_EVIDENCE]))
            for peer in self.ready_peers():
                if peer is not source:
                    peer.send(msg)

    def announce_tx(self, txid: bytes, source: Peer | None = None) -> None:
        """Queue a transaction announcement (sent in batches every 100 ms)."""
        self._tx_announce.append((txid, source.id if source is not None else None))

    def _flush_tx_announcements(self) -> None:
        if not self._tx_announce:
            return
        pending, self._tx_announce = self._tx_announce, []
        for peer in self.ready_peers():
            items = []
            for txid, source in pending:
                if source == peer.id or txid in peer.known_txs:
                    continue
                peer.known_txs.add(txid)
                items.append((INV_TX, txid))
            for start in range(0, len(items), 5000):
                peer.send(Inv(tuple(items[start : start + 5000])))

    # ------------------------------------------------------------------- info
    def set_active(self, active: bool) -> None:
        """Turn networking off (drop every peer, accept none) or back on."""
        self.network_active = active
        if not active:
            for peer in list(self.peers.values()):
                peer.close("network disabled")

    def banned_list(self) -> list[dict[str, Any]]:
        """Current (operator) bans."""
        now = time.time()
        return [{"host": h, "until": u} for h, u in sorted(self.bans.items()) if u > now]

    def discouraged_list(self) -> list[dict[str, Any]]:
        """Public hosts discouraged after misbehaving."""
        return self.discouraged.listing(time.time())

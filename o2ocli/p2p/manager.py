"""The peer manager: listening, dialing, relay, address book, bans.

One :class:`PeerManager` per node.  It accepts inbound connections (up to
``max_inbound``), keeps ``target_outbound`` outbound ones from the address
book (``--connect`` peers, the spec's bootstrap peers, and addresses learned
by gossip), reconnecting with exponential backoff.  With ``discover`` off it
dials only ``--connect``/``addpeer`` addresses and learns none (test networks
whose links must go through a proxy).  Peers that break the
rules collect misbehaviour points; at 100 they are disconnected and their
host is banned for ``ban_seconds`` (persisted, so a restart keeps the ban).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from o2ocli import __version__
from o2ocli.asyncutil import cancel_and_wait
from o2ocli.core.tx import Tx

from .messages import (
    INV_BLOCK,
    INV_TX,
    MAX_ADDR,
    MAX_HEADERS,
    PROTOCOL_VERSION,
    Addr,
    BlockMsg,
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
)
from .peer import Peer
from .sync import BlockSync

if TYPE_CHECKING:  # pragma: no cover
    from o2ocli.node.runtime import Node

__all__ = ["PeerManager", "BAN_THRESHOLD"]

log = logging.getLogger("o2ocli.p2p")

BAN_THRESHOLD = 100
PING_SECONDS = 30.0
PING_TIMEOUT = 60.0
CONNECT_TIMEOUT = 5.0
MAX_BACKOFF = 60.0
MAX_ADDRBOOK = 10_000
MAX_ORPHANS = 100
MAX_INBOUND_PER_HOST = 8
ORPHAN_SECONDS = 600
ADDR_PREFIX = b"n"
BAN_PREFIX = b"x"


@dataclass
class AddrInfo:
    """What the address book knows about one listening address."""

    last_seen: int = 0
    failures: int = 0
    next_try: float = 0.0
    manual: bool = False


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
        self.addrbook: dict[tuple[str, int], AddrInfo] = {}
        self.bans: dict[str, int] = {}
        self.network_active = True
        self.sync = BlockSync(self)
        self._server: asyncio.base_events.Server | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._dialing: set[tuple[str, int]] = set()
        self._tx_announce: list[tuple[bytes, int | None]] = []
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
        for key, value in db.iterate(ADDR_PREFIX):
            host, _, port = key[1:].decode().rpartition(":")
            try:
                info = json.loads(value)
                self.addrbook[(host, int(port))] = AddrInfo(last_seen=int(info.get("seen", 0)))
            except (ValueError, TypeError):
                continue

    def _save_addr(self, host: str, port: int) -> None:
        info = self.addrbook[(host, port)]
        with self.node.db.write_batch(sync=False) as batch:
            batch.put(ADDR_PREFIX + f"{host}:{port}".encode(),
                      json.dumps({"seen": info.last_seen}).encode())

    def add_address(self, host: str, port: int, *, manual: bool = False, seen: int = 0) -> bool:
        """Remember a listening address (manual ones are always kept dialed)."""
        key = (host, port)
        if not 0 < port < 65536 or not host:
            return False
        info = self.addrbook.get(key)
        new = info is None
        if info is None:
            if len(self.addrbook) >= MAX_ADDRBOOK and not manual:
                return False
            info = self.addrbook[key] = AddrInfo()
        info.manual = info.manual or manual
        fresher = seen > info.last_seen + 3600
        info.last_seen = max(info.last_seen, seen)
        if manual:
            info.next_try = 0.0
        if new or fresher:
            self._save_addr(host, port)
        return True

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
        """Ban ``host`` and drop its connections."""
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
        """Add misbehaviour points; at the threshold the peer's host is banned."""
        peer.score += points
        log.warning("peer %s misbehaving (+%d = %d): %s", peer.address, points, peer.score,
                    reason)
        if peer.score >= BAN_THRESHOLD:
            self.ban(peer.host)
            peer.close(f"banned: {reason}")

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host = (writer.get_extra_info("peername") or ("?",))[0]
        inbound = sum(1 for p in self.peers.values() if p.inbound)
        same_host = sum(1 for p in self.peers.values() if p.inbound and p.host == host)
        if (not self.network_active or self.banned(host) or inbound >= self.max_inbound
                or same_host >= MAX_INBOUND_PER_HOST):
            writer.close()
            return
        await self._run_peer(Peer(self, reader, writer, inbound=True))

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
            info = self.addrbook.get(key)
            if info is not None:
                info.failures += 1
                info.next_try = time.monotonic() + min(MAX_BACKOFF, 2.0 ** info.failures)
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
        listen = peer.listen_address
        if listen is not None and (self.discover or peer.dialed is not None):
            self.add_address(*listen, seen=int(time.time()))
            info = self.addrbook.get(listen)  # absent if the book is full
            if info is not None:
                info.failures = 0
        if not peer.inbound and self.discover:
            peer.send(GetAddr())
        self.sync.on_peer_ready(peer)

    def forget_address(self, key: tuple[str, int]) -> None:
        """Drop an address from the book (e.g. it turned out to be ourselves)."""
        if self.addrbook.pop(key, None) is not None:
            with self.node.db.write_batch(sync=False) as batch:
                batch.delete(ADDR_PREFIX + f"{key[0]}:{key[1]}".encode())

    def on_disconnect(self, peer: Peer) -> None:
        """Forget a closed peer and re-queue its work."""
        self.peers.pop(peer.id, None)
        self.own_nonces.discard(peer.sent_nonce)
        self.sync.on_peer_gone(peer)
        if peer.dialed is not None:
            info = self.addrbook.get(peer.dialed)
            if info is not None:
                info.next_try = time.monotonic() + min(MAX_BACKOFF, 2.0 ** max(info.failures, 1))

    async def _dial_loop(self) -> None:
        while True:
            if self.network_active:
                outbound = sum(1 for p in self.peers.values() if not p.inbound and not p.closed)
                now = time.monotonic()
                due = [
                    key for key, info in self.addrbook.items()
                    if info.next_try <= now and not self._connected_to(key)
                    and key not in self._dialing and not self.banned(key[0])
                    and not self._is_self(key)
                    and (self.discover or info.manual)
                ]
                due.sort(key=lambda k: (not self.addrbook[k].manual, -self.addrbook[k].last_seen))
                for key in due:
                    if outbound >= self.target_outbound and not self.addrbook[key].manual:
                        continue
                    self.addrbook[key].next_try = now + 1.0
                    if await self.connect(*key):
                        outbound += 1
            await asyncio.sleep(0.5)

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
            self.sync.check_stalls()
            self.sync.schedule()

    # ---------------------------------------------------------------- handling
    async def handle(self, peer: Peer, msg: Message) -> None:
        """Dispatch one message from a ready peer."""
        if isinstance(msg, Ping):
            if isinstance(msg, Pong):
                if msg.nonce == peer.ping_nonce:
                    peer.latency = time.monotonic() - peer.ping_sent
                    peer.ping_nonce = None
                return
            peer.send(Pong(msg.nonce))
        elif isinstance(msg, Headers):
            self.sync.on_headers(peer, msg.headers)
        elif isinstance(msg, BlockMsg):
            self.sync.on_block(peer, msg.block)
        elif isinstance(msg, TxMsg):
            self.on_tx(peer, msg.tx)
        elif isinstance(msg, Inv):
            self._on_inv(peer, msg)
        elif isinstance(msg, GetHeaders):
            self._serve_headers(peer, msg)
        elif isinstance(msg, GetData):
            self._serve_data(peer, msg)
        elif isinstance(msg, NotFound):
            self.sync.on_notfound(peer, [h for kind, h in msg.items if kind == INV_BLOCK])
        elif isinstance(msg, GetAddr):
            if not peer.served_addr:  # once per connection
                peer.served_addr = True
                self._serve_addr(peer)
        elif isinstance(msg, Addr):
            if not self.discover:
                return
            for host, port, seen in msg.addresses[:MAX_ADDR]:
                if not self.banned(host) and not self._is_self((host, port)):
                    self.add_address(host, port, seen=min(seen, int(time.time())))
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

    def _serve_data(self, peer: Peer, msg: GetData) -> None:
        missing = []
        for kind, item in msg.items:
            if kind == INV_BLOCK:
                raw = self.node.db.get(b"b" + item)
                if raw is None:
                    missing.append((kind, item))
                    continue
                peer.send(BlockMsg(RawBlock(raw)))
                peer.known_blocks.add(item)
            else:
                # Only mempool transactions are served (as in Bitcoin Core): a
                # confirmed one would cost a block decode per request.
                entry = self.node.mempool.get_entry(item)
                if entry is None:
                    missing.append((kind, item))
                    continue
                peer.send(TxMsg(entry.tx))
                peer.known_txs.add(item)
        if missing:
            peer.send(NotFound(tuple(missing)))

    def _serve_addr(self, peer: Peer) -> None:
        good = sorted(
            ((host, port, info.last_seen) for (host, port), info in self.addrbook.items()
             if info.last_seen and not self.banned(host)),
            key=lambda a: -a[2],
        )[:MAX_ADDR]
        if self.listen_port and self.listen is not None:
            good.insert(0, (self.listen[0], self.listen_port, int(time.time())))
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
                if (item not in self.node.mempool and item not in self._rejected
                        and item not in self._orphans and not state.has_tx(item)):
                    want_txs.append((INV_TX, item))
        if unknown_block and not self.sync.headers_pending(peer.id):
            self.sync.request_headers(peer)  # one request per message at most
        if want_txs:
            peer.send(GetData(tuple(want_txs[:1000])))

    # -------------------------------------------------------------------- txs
    def on_tx(self, peer: Peer | None, tx: Tx) -> None:
        """A transaction from a peer: accept, relay, or keep as an orphan."""
        from o2ocli.node.mempool import MempoolError

        txid = tx.txid
        if peer is not None:
            peer.known_txs.add(txid)
        if txid in self.node.mempool or txid in self._orphans:
            return
        try:
            self.node.submit_tx(tx, source=peer)
        except MempoolError as exc:
            if exc.reason == "bad-txns-inputs-missingorspent" and peer is not None:
                self._add_orphan(tx, peer)
            else:
                self._rejected[txid] = time.monotonic()
                if len(self._rejected) > 50_000:
                    self._rejected.clear()
                if getattr(exc, "consensus", False) and peer is not None:
                    self.misbehaving(peer, 10, f"invalid transaction: {exc.reason}")
            return
        self._retry_orphans(txid)

    def _add_orphan(self, tx: Tx, peer: Peer) -> None:
        if len(self._orphans) >= MAX_ORPHANS:
            oldest = min(self._orphans, key=lambda t: self._orphans[t][2])
            del self._orphans[oldest]
        self._orphans[tx.txid] = (tx, peer.id, time.monotonic())
        missing = [(INV_TX, txin.prevout.txid) for txin in tx.inputs
                   if txin.prevout.txid not in self.node.mempool]
        if missing:
            peer.send(GetData(tuple(missing[:1000])))

    def _retry_orphans(self, parent: bytes) -> None:
        waiting = [t for t, (tx, _, _) in self._orphans.items()
                   if any(i.prevout.txid == parent for i in tx.inputs)]
        for txid in waiting:
            tx, peer_id, _ = self._orphans.pop(txid)
            self.on_tx(self.peers.get(peer_id), tx)

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
        """Current bans."""
        now = time.time()
        return [{"host": h, "until": u} for h, u in sorted(self.bans.items()) if u > now]

"""One peer connection: framing, handshake, send buffer limits, misbehaviour."""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Any

from .addrlimit import AddrRateLimiter
from .messages import (
    FRAME_HEADER_SIZE,
    PROTOCOL_VERSION,
    BlockMsg,
    Message,
    Ping,
    ProtocolError,
    Verack,
    Version,
    decode_payload,
    encode_frame,
    parse_frame_header,
)
from .misbehaviour import DecayingScore

if TYPE_CHECKING:  # pragma: no cover
    from .manager import PeerManager

__all__ = [
    "Peer", "KnownSet", "HANDSHAKE_TIMEOUT", "MAX_SEND_BUFFER", "SEND_PAUSE_BYTES",
    "MAX_QUEUED_REQUESTS",
]

log = logging.getLogger("o2ocli.p2p")

HANDSHAKE_TIMEOUT = 10.0
PING_TIMEOUT = 60.0
"""A ping unanswered this long closes the connection."""
OFFLOAD_DECODE_BYTES = 64 * 1024
"""Payloads at least this big are decoded on the manager's decode thread."""
READ_AHEAD = 2
"""Messages read (and being decoded) ahead of the one being handled."""
MAX_SEND_BUFFER = 64 * 1024 * 1024
SEND_PAUSE_BYTES = 1024 * 1024
"""While more than this waits to be sent to a peer, its requests (``getdata``
items, ``getheaders``) wait in :attr:`Peer.requests` and are served as it
reads (like Bitcoin Core's ``fPauseSend``, but its other messages are still
handled, so two nodes serving each other never wait for each other): a peer
that asks for data without reading it holds about this much memory (plus one
block), not MAX_SEND_BUFFER."""
MAX_QUEUED_REQUESTS = 10_000
"""Requested items waiting for the peer to read; a peer asking for more is
dropped (it does not read its data)."""
_ids = itertools.count(1)


class KnownSet:
    """A bounded set of hashes (oldest forgotten first)."""

    def __init__(self, limit: int = 20_000) -> None:
        self.limit = limit
        self._items: OrderedDict[bytes, None] = OrderedDict()

    def add(self, item: bytes) -> None:
        self._items[item] = None
        self._items.move_to_end(item)
        if len(self._items) > self.limit:
            self._items.popitem(last=False)

    def __contains__(self, item: object) -> bool:
        return item in self._items


class HandshakeRefused(Exception):
    """The peer is on another chain, too old, or ourselves."""


class Peer:
    """A connected peer.  :meth:`run` handshakes, then hands each message to
    the manager until the connection ends."""

    def __init__(
        self,
        manager: PeerManager,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        inbound: bool,
        dialed: tuple[str, int] | None = None,
    ) -> None:
        self.manager = manager
        self.reader = reader
        self.writer = writer
        self.inbound = inbound
        peername = writer.get_extra_info("peername") or ("?", 0)
        self.host: str = peername[0]
        self.port: int = peername[1]
        self.local_host: str = (writer.get_extra_info("sockname") or ("?", 0))[0]
        """Our end's address (a peer on it is on this host)."""
        self.dialed = dialed
        self.id = next(_ids)
        self.version: Version | None = None
        self.best_height = 0
        self.best_td = 0
        self.known_blocks = KnownSet()
        self.known_txs = KnownSet()
        self.inflight: dict[bytes, float] = {}
        self.misbehaviour = DecayingScore()
        self.discouraged = False
        """Accepted although its host is discouraged: evicted first."""
        self.connected_at = time.time()
        self.connected_mono = time.monotonic()
        self.last_block = 0.0
        """Monotonic time of the last new valid block it sent (0: never)."""
        self.last_tx = 0.0
        """Monotonic time of the last new valid transaction it sent (0: never)."""
        self.min_ping: float | None = None
        self.clock_offset: float | None = None
        """Seconds its newest block timestamps run ahead of our clock (estimate)."""
        self.close_reason: str | None = None
        self.last_recv = time.monotonic()
        self.ping_nonce: int | None = None
        self.ping_sent = 0.0
        self.latency: float | None = None
        self.closed = False
        self.bytes_sent = 0
        self.bytes_recv = 0
        self._verack = False
        self.sent_nonce = 0
        self.served_addr = False
        self.addr_limiter = AddrRateLimiter(time.time())
        """Token bucket for the ``addr`` entries this peer may feed us."""
        self.requests: deque[Any] = deque()
        """Requests not served yet: ``(kind, hash)`` getdata items, GetHeaders,
        GetBlockTxn."""
        self.queued_indexes = 0
        """Transactions asked for by the GetBlockTxn in :attr:`requests`, plus
        the locator and stop hashes of its GetHeaders (see p2p/serve.py)."""
        self.serving: asyncio.Task[None] | None = None
        """Waits for the send buffer to drain, then serves :attr:`requests`."""
        if writer.transport is not None:
            writer.transport.set_write_buffer_limits(high=SEND_PAUSE_BYTES)

    # ------------------------------------------------------------ identity
    @property
    def address(self) -> str:
        """``host:port`` of the remote socket."""
        return f"{self.host}:{self.port}"

    @property
    def listen_address(self) -> tuple[str, int] | None:
        """Where this peer accepts connections (learned from its version)."""
        if self.dialed is not None:
            return self.dialed
        if self.version is not None and self.version.listen_port:
            return (self.host, self.version.listen_port)
        return None

    @property
    def ready(self) -> bool:
        """True once the handshake completed."""
        return self.version is not None and self._verack and not self.closed

    # -------------------------------------------------------------- sending
    def send(self, msg: Message) -> None:
        """Queue ``msg``; a peer that does not read its data is dropped."""
        if self.closed:
            return
        frame = encode_frame(self.manager.magic, msg)
        self.bytes_sent += len(frame)
        try:
            self.writer.write(frame)
        except (ConnectionError, RuntimeError):
            self.close("connection lost")
            return
        transport = self.writer.transport
        if transport is not None and transport.get_write_buffer_size() > MAX_SEND_BUFFER:
            self.close("not reading its data (send buffer full)")

    @property
    def unsent(self) -> int:
        """Bytes queued for the peer and not yet handed to the kernel."""
        transport = self.writer.transport
        return transport.get_write_buffer_size() if transport is not None else 0

    async def wait_sent(self) -> None:
        """Wait while more than SEND_PAUSE_BYTES wait to be sent to the peer
        (ConnectionError if the connection is lost meanwhile)."""
        if not self.closed:
            await self.writer.drain()

    def close(self, reason: str) -> None:
        """Disconnect (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        self.requests.clear()
        log.info("peer %s disconnected: %s", self.address, reason)
        try:
            self.writer.close()
        except Exception:  # noqa: BLE001 - already broken
            pass

    @property
    def score(self) -> int:
        """Misbehaviour points now (they decay)."""
        return round(self.misbehaviour.value(time.monotonic()))

    def note_block_time(self, block_time: int, now: float) -> None:
        """Estimate the peer's clock offset from a new block's timestamp
        (ignored for old blocks, as during initial sync)."""
        offset = block_time - now
        if abs(offset) <= 600:
            self.clock_offset = offset

    def keepalive(self, now: float) -> None:
        """Ping the peer (at the manager's pace); close it if the last ping
        went unanswered for PING_TIMEOUT."""
        if self.ping_nonce is not None and now - self.ping_sent > PING_TIMEOUT:
            self.close("ping timeout")
            return
        if self.ping_nonce is None:
            self.ping_nonce = secrets.randbits(64)
            self.ping_sent = now
            self.send(Ping(self.ping_nonce))

    def on_pong(self, nonce: int, now: float) -> None:
        """The answer to our ping: measure the latency."""
        if nonce == self.ping_nonce:
            self.latency = now - self.ping_sent
            if self.min_ping is None or self.latency < self.min_ping:
                self.min_ping = self.latency
            self.ping_nonce = None

    # ------------------------------------------------------------ receiving
    async def read_message(self) -> Message:
        """Read one frame; ProtocolError for anything malformed."""
        head = await self.reader.readexactly(FRAME_HEADER_SIZE)
        kind, length, checksum = parse_frame_header(self.manager.magic, head)
        payload = await self.reader.readexactly(length) if length else b""
        self.bytes_recv += FRAME_HEADER_SIZE + length
        self.last_recv = time.monotonic()
        return decode_payload(kind, payload, checksum)

    async def _read_frames(self, queue: asyncio.Queue[Any]) -> None:
        """Reader task: frames off the socket, big payloads decoded on a worker
        thread, so decoding block N+1 overlaps connecting block N (which spends
        much of its time in libsecp256k1 and LevelDB with the GIL released)."""
        loop = asyncio.get_running_loop()
        try:
            while not self.closed:
                head = await self.reader.readexactly(FRAME_HEADER_SIZE)
                kind, length, checksum = parse_frame_header(self.manager.magic, head)
                payload = await self.reader.readexactly(length) if length else b""
                self.bytes_recv += FRAME_HEADER_SIZE + length
                self.last_recv = time.monotonic()
                if length >= OFFLOAD_DECODE_BYTES:
                    pending = loop.run_in_executor(
                        self.manager.decode_pool, decode_payload, kind, payload, checksum
                    )
                    pending.add_done_callback(self._read_ahead)
                else:
                    pending = loop.create_future()
                    try:
                        pending.set_result(decode_payload(kind, payload, checksum))
                    except ProtocolError as exc:
                        pending.set_exception(exc)
                    else:
                        self._read_ahead(pending)
                await queue.put(pending)
        except Exception as exc:  # noqa: BLE001 - handed to the dispatcher, which raises it
            await queue.put(exc)

    def _read_ahead(self, decoded: asyncio.Future[Any]) -> None:
        """A message is decoded, to be handled after those before it: a block
        may have its signatures verified meanwhile (see BlockSync.on_block_read)."""
        if decoded.cancelled() or decoded.exception() is not None or self.closed:
            return
        msg = decoded.result()
        if isinstance(msg, BlockMsg):
            self.manager.sync.on_block_read(msg.block)

    async def _dispatch(self) -> None:
        """Hand messages to the manager in order, as the reader task decodes them."""
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=READ_AHEAD)
        reader = asyncio.create_task(self._read_frames(queue), name=f"peer-{self.id}-reader")
        try:
            while not self.closed:
                item = await queue.get()
                if isinstance(item, Exception):
                    raise item
                await self.manager.handle(self, await item)
        finally:
            reader.cancel()

    async def handshake(self) -> None:
        """Exchange version/verack; refuse other chains and self-connections."""
        version = self.manager.our_version()
        self.sent_nonce = version.nonce
        self.send(version)
        while not (self.version is not None and self._verack):
            msg = await self.read_message()
            if isinstance(msg, Version):
                if self.version is not None:
                    raise ProtocolError("second version message")
                self._check_version(msg)
                self.version = msg
                self.best_height = msg.height
                self.best_td = msg.total_difficulty
                self.send(Verack())
            elif isinstance(msg, Verack):
                if self.version is None:
                    raise ProtocolError("verack before version")
                self._verack = True
            else:
                raise ProtocolError(f"{type(msg).__name__} before the handshake finished")

    def _check_version(self, msg: Version) -> None:
        manager = self.manager
        if msg.nonce in manager.own_nonces:
            raise HandshakeRefused("connected to ourselves")
        if msg.genesis != manager.genesis_hash or msg.chain_id != manager.chain_id:
            raise HandshakeRefused(
                f"peer follows another chain ({msg.chain_id}, genesis {msg.genesis.hex()[:16]}…)"
            )
        if msg.protocol < 1:
            raise HandshakeRefused(f"unsupported protocol version {msg.protocol}")

    async def run(self) -> None:
        """Handshake, then dispatch messages until the connection ends."""
        manager = self.manager
        try:
            await asyncio.wait_for(self.handshake(), HANDSHAKE_TIMEOUT)
            manager.on_ready(self)
            await self._dispatch()
        except HandshakeRefused as exc:
            self.close(f"handshake refused: {exc}")
            if self.dialed is not None and "ourselves" in str(exc):
                manager.forget_address(self.dialed)
        except ProtocolError as exc:
            manager.misbehaving(self, 100, f"protocol violation: {exc}")
        except TimeoutError:
            self.close("handshake timed out")
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            self.close("connection closed")
        except asyncio.CancelledError:
            self.close("shutting down")
            raise
        except Exception as exc:  # noqa: BLE001 - never let one peer take the node down
            log.exception("peer %s: unexpected error", self.address)
            self.close(f"internal error: {type(exc).__name__}")
        finally:
            self.close("done")
            manager.on_disconnect(self)

    def info(self) -> dict[str, Any]:
        """JSON summary for ``getpeerinfo``."""
        listen = self.listen_address
        return {
            "id": self.id,
            "address": self.address,
            "listen": f"{listen[0]}:{listen[1]}" if listen else None,
            "inbound": self.inbound,
            "height": self.best_height,
            "total_difficulty": self.best_td,
            "user_agent": self.version.user_agent if self.version else None,
            "ready": self.ready,
            "score": self.score,
            "clock_offset": None if self.clock_offset is None else round(self.clock_offset, 1),
            "inflight": len(self.inflight),
            "latency_ms": None if self.latency is None else round(self.latency * 1000, 1),
            "bytes_sent": self.bytes_sent,
            "bytes_recv": self.bytes_recv,
            "addr_processed": self.addr_limiter.processed,
            "addr_rate_limited": self.addr_limiter.dropped,
            "connected_at": int(self.connected_at),
        }

    PROTOCOL = PROTOCOL_VERSION

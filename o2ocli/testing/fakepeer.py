"""A fake peer that stalls block download, for tests and benchmarks.

:class:`StallingPeer` listens on 127.0.0.1 (its own event loop, on a thread of
the test or benchmark process) and speaks the real wire protocol
(:mod:`o2ocli.p2p.messages`): it completes the handshake claiming the whole
chain (height and total difficulty), answers ``getheaders`` with the real
headers, so it has *shown* it has every block, and answers pings, but never
answers ``getdata``.  Nothing in the node knows about it.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
from collections.abc import Sequence

from o2ocli.core.block import BlockHeader
from o2ocli.p2p.messages import (
    FRAME_HEADER_SIZE,
    MAX_HEADERS,
    PROTOCOL_VERSION,
    GetData,
    GetHeaders,
    Headers,
    Message,
    Ping,
    Pong,
    Verack,
    Version,
    decode_payload,
    encode_frame,
    parse_frame_header,
)

__all__ = ["StallingPeer"]


class StallingPeer:
    """Serves headers and pongs, sits on every block request.

    ``headers`` is the chain from genesis (index = height).  ``connections``
    counts accepted connections, ``getdata_items`` the blocks asked for.
    """

    def __init__(self, magic: bytes, chain_id: str, headers: Sequence[BlockHeader],
                 total_difficulty: int) -> None:
        self.magic = magic
        self.chain_id = chain_id
        self.headers = list(headers)
        self.height_of = {header.hash: header.height for header in self.headers}
        self.total_difficulty = total_difficulty
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port: int = sock.getsockname()[1]
        self.connections = 0
        self.getdata_items = 0
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stalling-peer", daemon=True)
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, for ``--connect``."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> StallingPeer:
        """Start listening (returns once the port is open)."""
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("stalling peer did not start")
        return self

    def stop(self) -> None:
        """Close every connection and stop the thread."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._shutdown)
            self._thread.join(10)

    def _shutdown(self) -> None:
        for writer in list(self._writers):
            writer.close()
        self._loop.call_later(0.1, self._loop.stop)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self.port))
        self._started.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            self._loop.close()

    def _answer(self, msg: Message) -> Message | None:
        if isinstance(msg, Version):
            return Verack()
        if isinstance(msg, Pong):
            return None
        if isinstance(msg, Ping):
            return Pong(msg.nonce)
        if isinstance(msg, GetHeaders):
            start = next((self.height_of[h] for h in msg.locator if h in self.height_of), 0)
            return Headers(tuple(self.headers[start + 1:start + 1 + MAX_HEADERS]))
        if isinstance(msg, GetData):
            self.getdata_items += len(msg.items)  # ... and never answered
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        tip = self.headers[-1]
        writer.write(encode_frame(self.magic, Version(
            PROTOCOL_VERSION, self.chain_id, self.headers[0].hash, tip.height,
            self.total_difficulty, 0, secrets.randbits(64), "stalling-test-peer")))
        try:
            while True:
                head = await reader.readexactly(FRAME_HEADER_SIZE)
                kind, length, checksum = parse_frame_header(self.magic, head)
                payload = await reader.readexactly(length) if length else b""
                answer = self._answer(decode_payload(kind, payload, checksum))
                if answer is not None:
                    writer.write(encode_frame(self.magic, answer))
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

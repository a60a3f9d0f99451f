"""Peer connections over real 127.0.0.1 sockets: handshake rules, misbehaviour, timeouts.

The only stand-in is :class:`FakeManager`, the collaborator a :class:`Peer`
calls back; it records the calls and answers with real values (magic bytes,
a real :class:`Version`, …).  Peers are driven against each other, or against
a raw client that writes frames by hand.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time

import pytest

from o2ocli.crypto.hashes import sha256d
from o2ocli.p2p import peer as peer_mod
from o2ocli.p2p.messages import (
    FRAME_HEADER_SIZE,
    PROTOCOL_VERSION,
    GetAddr,
    Ping,
    Pong,
    Verack,
    Version,
    decode_payload,
    encode_frame,
    parse_frame_header,
)
from o2ocli.p2p.peer import KnownSet, Peer

MAGIC = bytes.fromhex("f0d2a1c3")
CHAIN_ID = "o2o-test"
GENESIS = sha256d(b"genesis")
TIMEOUT = 5.0


class FakeManager:
    """What a Peer needs from its PeerManager, recording every callback."""

    def __init__(self, *, chain_id: str = CHAIN_ID, genesis: bytes = GENESIS,
                 height: int = 7, protocol: int = PROTOCOL_VERSION) -> None:
        self.magic = MAGIC
        self.chain_id = chain_id
        self.genesis_hash = genesis
        self.height = height
        self.protocol = protocol
        self.listen_port = 18444
        self.own_nonces: set[int] = set()
        self.ready: list[Peer] = []
        self.handled: list[tuple[Peer, object]] = []
        self.misbehaved: list[tuple[Peer, int, str]] = []
        self.disconnected: list[Peer] = []
        self.ready_event = asyncio.Event()
        self.handled_event = asyncio.Event()

    def our_version(self) -> Version:
        nonce = secrets.randbits(64)
        self.own_nonces.add(nonce)
        return Version(self.protocol, self.chain_id, self.genesis_hash, self.height,
                       self.height * 2, self.listen_port, nonce, "test/1.0")

    def on_ready(self, peer: Peer) -> None:
        self.ready.append(peer)
        self.ready_event.set()

    async def handle(self, peer: Peer, msg: object) -> None:
        self.handled.append((peer, msg))
        self.handled_event.set()

    def misbehaving(self, peer: Peer, points: int, reason: str) -> None:
        peer.misbehaviour.add(points, time.monotonic())
        self.misbehaved.append((peer, points, reason))

    def on_disconnect(self, peer: Peer) -> None:
        self.disconnected.append(peer)


# --------------------------------------------------------------------- helpers
async def open_pair() -> tuple[asyncio.Server, tuple, tuple]:
    """A connected socket pair over 127.0.0.1: (server, client streams, server streams)."""
    accepted: asyncio.Queue = asyncio.Queue()

    async def on_accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put((reader, writer))

    server = await asyncio.start_server(on_accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = await asyncio.open_connection("127.0.0.1", port)
    remote = await asyncio.wait_for(accepted.get(), TIMEOUT)
    return server, client, remote


async def close_server(server: asyncio.Server) -> None:
    server.close()
    await server.wait_closed()


class RawClient:
    """The far end of a connection, speaking frames by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, msg: object) -> None:
        self.writer.write(encode_frame(MAGIC, msg))
        await self.writer.drain()

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self) -> object:
        head = await asyncio.wait_for(self.reader.readexactly(FRAME_HEADER_SIZE), TIMEOUT)
        kind, length, checksum = parse_frame_header(MAGIC, head)
        payload = await asyncio.wait_for(self.reader.readexactly(length), TIMEOUT)
        return decode_payload(kind, payload, checksum)

    async def recv_until_closed(self) -> list[object]:
        """Every message until the peer closes the connection."""
        out = []
        while True:
            try:
                out.append(await self.recv())
            except (asyncio.IncompleteReadError, ConnectionError):
                return out

    def close(self) -> None:
        self.writer.close()


async def peer_vs_raw(manager: FakeManager) -> tuple[asyncio.Server, Peer, RawClient]:
    """An inbound Peer of ``manager`` (not yet running) and a raw client connected to it."""
    server, (c_reader, c_writer), (s_reader, s_writer) = await open_pair()
    peer = Peer(manager, s_reader, s_writer, inbound=True)
    return server, peer, RawClient(c_reader, c_writer)


def remote_version(manager: FakeManager, **kw: object) -> Version:
    """A version the remote side would send (its own nonce, our chain unless overridden)."""
    fields = dict(protocol=PROTOCOL_VERSION, chain_id=manager.chain_id,
                  genesis=manager.genesis_hash, height=42, total_difficulty=84,
                  listen_port=9999, nonce=secrets.randbits(64), user_agent="raw/0.1")
    fields.update(kw)
    return Version(**fields)


async def run_bad_client(manager: FakeManager, *, send: list[bytes]) -> tuple[Peer, list]:
    """Run a peer against a client writing ``send`` (raw bytes); returns the peer and
    every message the client got before the peer hung up."""
    server, peer, client = await peer_vs_raw(manager)
    task = asyncio.create_task(peer.run())
    try:
        first = await client.recv()
        assert isinstance(first, Version)
        await client.send_raw(b"".join(send))
        received = await asyncio.wait_for(client.recv_until_closed(), TIMEOUT)
        await asyncio.wait_for(task, TIMEOUT)
    finally:
        client.close()
        await close_server(server)
    return peer, [first, *received]


def frame(msg: object) -> bytes:
    return encode_frame(MAGIC, msg)


# ----------------------------------------------------------------- handshakes
def test_two_peers_handshake_both_ways():
    async def main() -> None:
        server, (c_reader, c_writer), (s_reader, s_writer) = await open_pair()
        ma, mb = FakeManager(height=3), FakeManager(height=9)
        a = Peer(ma, c_reader, c_writer, inbound=False, dialed=("127.0.0.1", 1))
        b = Peer(mb, s_reader, s_writer, inbound=True)
        ta, tb = asyncio.create_task(a.run()), asyncio.create_task(b.run())
        try:
            await asyncio.wait_for(
                asyncio.gather(ma.ready_event.wait(), mb.ready_event.wait()), TIMEOUT)
            assert a.ready and b.ready
            assert ma.ready == [a] and mb.ready == [b]
            assert a.best_height == 9 and a.best_td == 18
            assert b.best_height == 3 and b.best_td == 6
            assert a.version.user_agent == "test/1.0"
            assert b.listen_address == (b.host, 18444)
            assert a.listen_address == ("127.0.0.1", 1)
            assert a.info()["ready"] is True

            # After the handshake messages reach the manager.
            a.send(Ping(5))
            await asyncio.wait_for(mb.handled_event.wait(), TIMEOUT)
            assert [type(m) for _, m in mb.handled] == [Ping]
            assert mb.handled[0] == (b, Ping(5))
            assert not ma.misbehaved and not mb.misbehaved
        finally:
            a.close("test over")
            await asyncio.wait_for(asyncio.gather(ta, tb), TIMEOUT)
            await close_server(server)
        assert a.closed and b.closed and not a.ready and not b.ready
        assert ma.disconnected == [a] and mb.disconnected == [b]
        assert ma.ready == [a] and mb.ready == [b]  # on_ready exactly once each

    asyncio.run(asyncio.wait_for(main(), 3 * TIMEOUT))


def test_raw_client_handshake():
    async def main() -> None:
        manager = FakeManager()
        server, peer, client = await peer_vs_raw(manager)
        task = asyncio.create_task(peer.run())
        try:
            ours = await client.recv()
            assert isinstance(ours, Version)
            assert ours.nonce in manager.own_nonces
            assert (ours.chain_id, ours.genesis) == (CHAIN_ID, GENESIS)
            assert not peer.ready
            await client.send(remote_version(manager))
            assert isinstance(await client.recv(), Verack)
            assert not peer.ready and not manager.ready  # still waiting for our verack
            await client.send(Verack())
            await asyncio.wait_for(manager.ready_event.wait(), TIMEOUT)
            assert peer.ready and manager.ready == [peer]
            assert peer.best_height == 42 and peer.listen_address == (peer.host, 9999)
            await client.send(Pong(1))
            await asyncio.wait_for(manager.handled_event.wait(), TIMEOUT)
            assert manager.handled == [(peer, Pong(1))]
        finally:
            client.close()
            await asyncio.wait_for(task, TIMEOUT)
            await close_server(server)
        assert peer.closed and manager.disconnected == [peer] and not manager.misbehaved

    asyncio.run(asyncio.wait_for(main(), 3 * TIMEOUT))


def _refused_pair(ma: FakeManager, mb: FakeManager) -> tuple[Peer, Peer]:
    async def main() -> tuple[Peer, Peer]:
        server, (c_reader, c_writer), (s_reader, s_writer) = await open_pair()
        a = Peer(ma, c_reader, c_writer, inbound=False)
        b = Peer(mb, s_reader, s_writer, inbound=True)
        try:
            await asyncio.wait_for(asyncio.gather(a.run(), b.run()), TIMEOUT)
        finally:
            await close_server(server)
        return a, b

    return asyncio.run(asyncio.wait_for(main(), 2 * TIMEOUT))


@pytest.mark.parametrize(
    "other", [{"genesis": sha256d(b"another genesis")}, {"chain_id": "o2o-other"}])
def test_peers_on_different_chains_refuse_each_other(other, caplog):
    ma, mb = FakeManager(), FakeManager(**other)
    with caplog.at_level(logging.INFO, logger="o2ocli.p2p"):
        a, b = _refused_pair(ma, mb)
    assert a.closed and b.closed and not a.ready and not b.ready
    assert not ma.ready and not mb.ready
    assert ma.disconnected == [a] and mb.disconnected == [b]
    # Refusal is not misbehaviour, but both sides log why they hung up.
    assert not ma.misbehaved and not mb.misbehaved
    assert "another chain" in caplog.text
    assert "handshake refused" in caplog.text


@pytest.mark.parametrize(
    "override", [{"genesis": sha256d(b"another genesis")}, {"chain_id": "o2o-other"}])
def test_raw_client_on_another_chain_is_disconnected(override, caplog):
    async def main() -> tuple[Peer, list]:
        manager = FakeManager()
        return manager, await run_bad_client(
            manager, send=[frame(remote_version(manager, **override)), frame(Verack())])

    with caplog.at_level(logging.INFO, logger="o2ocli.p2p"):
        manager, (peer, received) = asyncio.run(asyncio.wait_for(main(), 2 * TIMEOUT))
    assert not any(isinstance(m, Verack) for m in received)  # never accepted
    assert peer.closed and not peer.ready and peer.version is None
    assert not manager.ready and not manager.misbehaved
    assert manager.disconnected == [peer]
    assert "handshake refused: peer follows another chain" in caplog.text


def test_unsupported_protocol_version_refused(caplog):
    async def main() -> tuple:
        manager = FakeManager()
        return manager, await run_bad_client(
            manager, send=[frame(remote_version(manager, protocol=0))])

    with caplog.at_level(logging.INFO, logger="o2ocli.p2p"):
        manager, (peer, _) = asyncio.run(asyncio.wait_for(main(), 2 * TIMEOUT))
    assert peer.closed and not manager.ready and not manager.misbehaved
    assert "unsupported protocol version 0" in caplog.text


def test_self_connection_refused(caplog):
    manager = FakeManager()
    with caplog.at_level(logging.INFO, logger="o2ocli.p2p"):
        a, b = _refused_pair(manager, manager)  # one node dialing its own listener
    assert a.closed and b.closed
    assert not manager.ready and not manager.misbehaved
    assert sorted(p.id for p in manager.disconnected) == sorted([a.id, b.id])
    assert "connected to ourselves" in caplog.text


def test_self_nonce_from_raw_client_refused(caplog):
    async def main() -> tuple:
        manager = FakeManager()
        server, peer, client = await peer_vs_raw(manager)
        task = asyncio.create_task(peer.run())
        try:
            ours = await client.recv()
            echoed = remote_version(manager, nonce=ours.nonce)  # our own version comes back
            await client.send(echoed)
            await client.send(Verack())
            received = await asyncio.wait_for(client.recv_until_closed(), TIMEOUT)
            await asyncio.wait_for(task, TIMEOUT)
        finally:
            client.close()
            await close_server(server)
        return manager, peer, received

    with caplog.at_level(logging.INFO, logger="o2ocli.p2p"):
        manager, peer, received = asyncio.run(asyncio.wait_for(main(), 2 * TIMEOUT))
    assert received == []
    assert peer.closed and not manager.ready and not manager.misbehaved
    assert "connected to ourselves" in caplog.text


# ------------------------------------------------------------------ misbehaviour
def _misbehaving_run(send: list[bytes]) -> tuple[FakeManager, Peer, list]:
    async def main() -> tuple:
        manager = FakeManager()
        peer, received = await run_bad_client(manager, send=send)
        return manager, peer, received

    return asyncio.run(asyncio.wait_for(main(), 2 * TIMEOUT))


@pytest.mark.parametrize(
    ("messages", "reason"),
    [
        ([Ping(1)], "Ping before the handshake finished"),
        ([GetAddr()], "GetAddr before the handshake finished"),
        ([Verack()], "verack before version"),
        (["version", "version"], "second version message"),
        (["version", Ping(1)], "Ping before the handshake finished"),
    ],
)
def test_protocol_violation_during_handshake(messages, reason):
    other = FakeManager()
    data = [frame(remote_version(other) if m == "version" else m) for m in messages]
    manager, peer, received = _misbehaving_run(data)
    assert len(manager.misbehaved) == 1
    who, points, why = manager.misbehaved[0]
    assert who is peer and points == 100
    assert reason in why and "protocol violation" in why
    assert peer.closed and not peer.ready
    assert not manager.ready and manager.disconnected == [peer]
    assert not manager.handled


@pytest.mark.parametrize(
    ("garbage", "reason"),
    [
        (bytes(range(64)), "wrong network magic"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "wrong network magic"),
        (MAGIC + b"\xee" + bytes(8), "unknown message type 238"),
        (MAGIC + bytes([Ping.TYPE]) + (2**32 - 1).to_bytes(4, "little") + bytes(4), "exceeds"),
        (MAGIC + bytes([Ping.TYPE]) + (8).to_bytes(4, "little") + b"xxxx" + bytes(8), "checksum"),
    ],
)
def test_garbage_bytes_are_misbehaviour(garbage, reason):
    manager, peer, _ = _misbehaving_run([garbage])
    assert [(p, pts) for p, pts, _ in manager.misbehaved] == [(peer, 100)]
    assert reason in manager.misbehaved[0][2]
    assert peer.closed and not manager.ready and manager.disconnected == [peer]


def test_malformed_payload_after_handshake_is_misbehaviour():
    async def main() -> tuple:
        manager = FakeManager()
        server, peer, client = await peer_vs_raw(manager)
        task = asyncio.create_task(peer.run())
        try:
            await client.recv()
            await client.send(remote_version(manager))
            await client.send(Verack())
            await asyncio.wait_for(manager.ready_event.wait(), TIMEOUT)
            payload = b"\x01\x02\x03"  # a Ping needs 8 bytes
            await client.send_raw(MAGIC + bytes([Ping.TYPE]) + len(payload).to_bytes(4, "little")
                                  + sha256d(payload)[:4] + payload)
            await asyncio.wait_for(task, TIMEOUT)
        finally:
            client.close()
            await close_server(server)
        return manager, peer

    manager, peer = asyncio.run(asyncio.wait_for(main(), 2 * TIMEOUT))
    assert manager.ready == [peer]
    assert [(p, pts) for p, pts, _ in manager.misbehaved] == [(peer, 100)]
    assert "malformed Ping" in manager.misbehaved[0][2]
    assert peer.closed and manager.disconnected == [peer]


# --------------------------------------------------------------------- timeouts
@pytest.mark.parametrize("send_version", [False, True])
def test_handshake_that_never_completes_times_out(monkeypatch, caplog, send_version):
    monkeypatch.setattr(peer_mod, "HANDSHAKE_TIMEOUT", 0.3)

    async def main() -> tuple:
        manager = FakeManager()
        server, peer, client = await peer_vs_raw(manager)
        started = time.monotonic()
        task = asyncio.create_task(peer.run())
        try:
            assert isinstance(await client.recv(), Version)
            if send_version:  # version but never a verack
                await client.send(remote_version(manager))
                assert isinstance(await client.recv(), Verack)
            received = await asyncio.wait_for(client.recv_until_closed(), TIMEOUT)
            await asyncio.wait_for(task, TIMEOUT)
        finally:
            client.close()
            await close_server(server)
        return manager, peer, received, time.monotonic() - started

    with caplog.at_level(logging.INFO, logger="o2ocli.p2p"):
        manager, peer, received, elapsed = asyncio.run(asyncio.wait_for(main(), 2 * TIMEOUT))
    assert received == []
    assert 0.25 <= elapsed < 3.0
    assert peer.closed and not peer.ready
    assert not manager.ready and not manager.misbehaved
    assert manager.disconnected == [peer]
    assert "handshake timed out" in caplog.text


# --------------------------------------------------------------- send / close
def test_send_on_closed_peer_is_a_noop():
    async def main() -> tuple:
        manager = FakeManager()
        server, peer, client = await peer_vs_raw(manager)
        try:
            peer.send(Ping(1))
            sent = peer.bytes_sent
            assert sent == len(frame(Ping(1)))
            peer.close("test")
            peer.close("again")  # idempotent
            peer.send(Ping(2))
            peer.send(Verack())
            assert peer.bytes_sent == sent
            received = await asyncio.wait_for(client.recv_until_closed(), TIMEOUT)
        finally:
            client.close()
            await close_server(server)
        return peer, received

    peer, received = asyncio.run(asyncio.wait_for(main(), 2 * TIMEOUT))
    assert peer.closed and not peer.ready
    assert received == [Ping(1)]


def test_close_before_run_ends_run_without_ready():
    async def main() -> tuple:
        manager = FakeManager()
        server, peer, client = await peer_vs_raw(manager)
        try:
            peer.close("early")
            await asyncio.wait_for(peer.run(), TIMEOUT)
        finally:
            client.close()
            await close_server(server)
        return manager, peer

    manager, peer = asyncio.run(asyncio.wait_for(main(), 2 * TIMEOUT))
    assert not manager.ready and manager.disconnected == [peer] and not manager.misbehaved


# ------------------------------------------------------------------- KnownSet
def test_knownset_forgets_oldest_beyond_limit():
    known = KnownSet(limit=3)
    for item in (b"a", b"b", b"c"):
        known.add(item)
    assert all(x in known for x in (b"a", b"b", b"c"))
    known.add(b"d")
    assert b"a" not in known
    assert all(x in known for x in (b"b", b"c", b"d"))
    known.add(b"e")
    assert b"b" not in known and b"e" in known


def test_knownset_readding_refreshes_age():
    known = KnownSet(limit=3)
    for item in (b"a", b"b", b"c"):
        known.add(item)
    known.add(b"a")  # now the newest
    known.add(b"d")
    assert b"a" in known and b"b" not in known
    assert b"c" in known and b"d" in known


def test_knownset_default_limit_and_duplicates():
    known = KnownSet()
    assert known.limit == 20_000
    for _ in range(5):
        known.add(b"x")
    assert b"x" in known and b"y" not in known
    for i in range(20_000):
        known.add(i.to_bytes(4, "big"))
    assert b"x" not in known  # the 20 001st item pushed out the oldest
    assert (0).to_bytes(4, "big") in known and (19_999).to_bytes(4, "big") in known

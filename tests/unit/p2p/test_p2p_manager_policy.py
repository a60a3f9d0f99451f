"""The peer manager applies the misbehaviour policy to real connections.

A real node (devnet spec, LevelDB in a temp dir, listening on 127.0.0.1) in
this process; clients connect over real sockets.  Every connection comes from
127.0.0.1, so to see the public-address path the test gives one accepted
peer the public address 8.8.8.8, as a connection from there would have.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import socket
import time
from pathlib import Path

from o2ocli.chainspec import load_spec
from o2ocli.core.locks import PayToAddress
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, SigPair, Tx, TxIn, TxOut
from o2ocli.crypto.keys import PrivateKey
from o2ocli.node.datadir import init_datadir
from o2ocli.node.runtime import Node, NodeConfig
from o2ocli.p2p.manager import PeerManager
from o2ocli.p2p.messages import (
    FRAME_HEADER_SIZE,
    INV_BLOCK,
    PROTOCOL_VERSION,
    BlockMsg,
    GetData,
    Ping,
    Pong,
    RawBlock,
    TxMsg,
    Verack,
    Version,
    decode_payload,
    encode_frame,
    parse_frame_header,
)
from o2ocli.p2p.peer import MAX_QUEUED_REQUESTS, SEND_PAUSE_BYTES, Peer
from o2ocli.p2p.txrelay import MAX_ORPHAN_TX_BYTES, MAX_ORPHANS, TX_BATCH_MAX

TIMEOUT = 10.0


async def _until(predicate, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


class Harness:
    def __init__(self, tmp_path: Path, max_inbound: int = 32, **limits: int) -> None:
        spec = dataclasses.replace(load_spec("devnet"), **limits)
        init_datadir(tmp_path, spec)
        self.node = Node(NodeConfig(datadir=tmp_path, spec=spec, rpc_port=0,
                                    p2p_listen=("127.0.0.1", 0), use_bootstrap=False,
                                    max_inbound=max_inbound))
        self.writers: list[asyncio.StreamWriter] = []

    @property
    def manager(self) -> PeerManager:
        assert self.node.p2p is not None
        return self.node.p2p

    async def connect(self) -> Peer | None:
        """Open a raw connection; the inbound Peer it became, or None if the node
        closed it at once (refused): an accepted peer is sent a version first."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.manager.listen_port)
        self.writers.append(writer)
        local_port = writer.get_extra_info("sockname")[1]
        first = await asyncio.wait_for(reader.read(1), TIMEOUT)
        if not first:
            return None
        return next(p for p in self.manager.peers.values() if p.port == local_port)

    async def close(self) -> None:
        for writer in self.writers:
            writer.close()
        await self.node.shutdown()


def run(tmp_path: Path, body, max_inbound: int = 32, **limits: int) -> None:
    async def main() -> None:
        h = Harness(tmp_path, max_inbound, **limits)
        await h.node.start()
        try:
            await body(h)
        finally:
            await h.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_misbehaviour_closes_one_connection_and_discourages_only_a_public_host(tmp_path):
    async def body(h: Harness) -> None:
        m = h.manager
        public, same_host, local = await h.connect(), await h.connect(), await h.connect()
        assert public and same_host and local
        public.host = same_host.host = "8.8.8.8"  # as if both came from there
        m.misbehaving(public, 60, "first offence")
        assert not public.closed and public.score == 60
        m.misbehaving(public, 60, "second offence")
        assert public.closed and not same_host.closed and not local.closed
        assert m.discouraged.contains("8.8.8.8", time.time())
        assert m.bans == {} and m.banned_list() == []
        await _until(lambda: m.recent_disconnects, "the disconnect to be recorded")
        record = m.recent_disconnects[-1]
        assert record["address"].startswith("8.8.8.8:")
        assert "second offence" in record["reason"] and "discouraged" in record["reason"]
        # A local host is disconnected but never discouraged.
        m.misbehaving(local, 100, "local offence")
        assert local.closed and not same_host.closed
        assert not m.discouraged.contains("127.0.0.1", time.time())
        assert m.discouraged_list() == [{"host": "8.8.8.8",
                                         "until": m.discouraged_list()[0]["until"]}]

    run(tmp_path, body)


def test_discouraged_host_gets_only_spare_slots_and_is_evicted_first(tmp_path):
    async def body(h: Harness) -> None:
        m = h.manager
        first = await h.connect()
        assert first is not None and not first.discouraged
        m.discouraged.add("127.0.0.1", time.time())  # the policy never does this to a local host
        second = await h.connect()  # 1 of 4 slots taken: spare room, accepted
        assert second is not None and second.discouraged
        third = await h.connect()  # 2 taken: accepted only with two slots free
        assert third is not None and third.discouraged
        assert await h.connect() is None  # 3 of 4 taken: refused
        assert len([p for p in m.peers.values() if not p.closed]) == 3
        m.banlist.discouraged = type(m.discouraged)()  # forgotten: a full house evicts instead
        fourth = await h.connect()
        assert fourth is not None and not fourth.discouraged
        newcomer = await h.connect()  # 4 of 4: someone must go, a discouraged one first
        assert newcomer is not None
        await _until(lambda: third.closed, "the youngest discouraged peer to be evicted")
        assert third.close_reason and third.close_reason.startswith("evicted")
        # ... although the youngest peer of all is the non-discouraged fourth.
        assert not first.closed and not second.closed and not fourth.closed

    run(tmp_path, body, max_inbound=4)


def _orphan(inputs: int, pairs: int = 1) -> Tx:
    """A transaction spending outputs nobody has (its signatures are not looked at)."""
    key = PrivateKey.generate()
    pair = SigPair(key.public_key.to_bytes(), bytes(64))
    return Tx(tuple(TxIn(Outpoint(secrets.token_bytes(32), 0), (pair,) * pairs)
                    for _ in range(inputs)),
              (TxOut(NATIVE_ASSET, 1000, PayToAddress(key.public_key.hash160())),))


def test_orphan_pool_is_bounded_in_count_and_transaction_size(tmp_path):
    """Found while writing the orphan-flood fuzz: orphans were bounded in
    number only, so on a chain whose spec allows big transactions (up to 4 MB)
    a flood of big orphans held gigabytes.  Now an orphan over
    MAX_ORPHAN_TX_BYTES is not kept."""
    async def body(h: Harness) -> None:
        m = h.manager
        peer = await h.connect()
        assert peer is not None
        big = _orphan(inputs=100, pairs=15)
        assert MAX_ORPHAN_TX_BYTES < big.size <= 1_000_000
        m.on_tx(peer, big)
        assert big.txid not in m.txs.orphans and len(h.node.mempool) == 0
        small = [_orphan(inputs=2) for _ in range(MAX_ORPHANS + 20)]
        for tx in small:
            m.on_tx(peer, tx)
        assert len(m.txs.orphans) == MAX_ORPHANS
        assert set(m.txs.orphans) == {tx.txid for tx in small[-MAX_ORPHANS:]}  # oldest dropped
        assert not peer.closed and peer.score == 0  # missing inputs: nobody's fault

    run(tmp_path, body, max_tx_size=1_000_000, max_block_size=2_000_000)


def test_relayed_txs_are_checked_in_batches_with_per_tx_outcomes(tmp_path):
    """Relayed txs are queued and checked together (one mempool call): each
    still gets its own outcome.  A tx whose parent is missing becomes an
    orphan, a repeated one is checked once, a consensus-invalid one is
    remembered as rejected and costs its sender 10 points; a full batch is
    checked at once, before the batch timer."""
    async def body(h: Harness) -> None:
        m = h.manager
        reader, writer, peer = await _raw_peer(h)
        orphan = _orphan(inputs=1)
        twice = Tx((orphan.inputs[0],) * 2, orphan.outputs)  # spends one coin twice
        for tx in (orphan, twice, orphan):
            writer.write(encode_frame(m.magic, TxMsg(tx)))
        await _until(lambda: peer.score == 10, "the invalid tx to be scored")
        assert twice.txid in m.txs.rejected and twice.txid not in m.txs.orphans
        assert list(m.txs.orphans) == [orphan.txid] and not m.txs.inbox
        # A full batch is not held back by the timer.
        m.txs.queue(peer, orphan)
        assert m.txs.flush_handle is not None and len(m.txs.inbox) == 1
        batch = [_orphan(inputs=1) for _ in range(TX_BATCH_MAX - 1)]
        for tx in batch:
            m.txs.queue(peer, tx)
        assert not m.txs.inbox and m.txs.flush_handle is None
        assert len(m.txs.orphans) == MAX_ORPHANS  # all looked at; the newest kept
        assert batch[-1].txid in m.txs.orphans and peer.score == 10

    run(tmp_path, body)


async def _raw_peer(h: Harness) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Peer]:
    """A handshaken connection whose receive buffer is tiny (so what the node
    sends it piles up in the node's send buffer unless it reads)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", h.manager.listen_port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=2**24)
    h.writers.append(writer)
    magic, node = h.manager.magic, h.node
    await _read_msg(reader, magic)  # its version
    writer.write(encode_frame(magic, Version(PROTOCOL_VERSION, node.spec.chain_id,
                                             node.chain.genesis.hash, 0, 0, 0, 7, "test")))
    writer.write(encode_frame(magic, Verack()))
    while not isinstance(await _read_msg(reader, magic), Verack):
        pass
    port = sock.getsockname()[1]
    await _until(lambda: any(p.port == port and p.ready for p in h.manager.peers.values()),
                 "the peer to be ready")
    return reader, writer, next(p for p in h.manager.peers.values() if p.port == port)


async def _read_msg(reader: asyncio.StreamReader, magic: bytes) -> object:
    head = await asyncio.wait_for(reader.readexactly(FRAME_HEADER_SIZE), TIMEOUT)
    kind, length, checksum = parse_frame_header(magic, head)
    return decode_payload(kind, await reader.readexactly(length), checksum)


def test_requests_of_a_peer_that_does_not_read_wait_and_are_served_as_it_reads(tmp_path):
    """Fuzz finding: a peer that sent getdata without reading the answers made
    the node queue up to 64 MiB for it (eight such peers: 200 MB more).  Now
    requests wait while over SEND_PAUSE_BYTES are unsent; the peer's other
    messages are still handled; everything is served, in order, once it reads;
    a peer with more than MAX_QUEUED_REQUESTS waiting is dropped."""
    async def body(h: Harness) -> None:
        m = h.manager
        genesis = h.node.chain.genesis.hash
        block_frame = len(encode_frame(m.magic, BlockMsg(RawBlock(h.node.db.get(b"b" + genesis)))))
        request = encode_frame(m.magic, GetData(((INV_BLOCK, genesis),) * 1000))
        reader, writer, peer = await _raw_peer(h)
        sent = 0
        while not peer.requests:
            assert sent < 200_000, "the node never paused serving"
            before = peer.bytes_sent
            writer.write(request)
            sent += 1000
            await _until(lambda b=before: peer.requests
                         or peer.bytes_sent >= b + 1000 * block_frame,
                         "the request to be served or to wait")
        assert peer.unsent <= SEND_PAUSE_BYTES + block_frame
        # Its other messages are still handled meanwhile.
        writer.write(encode_frame(m.magic, Verack()))  # after the handshake: +20 points
        await _until(lambda: peer.score == 20, "the verack to be handled")
        # It reads: every requested block comes (a ping sent meanwhile is
        # answered at once: its pong may come before the waiting blocks).
        writer.write(encode_frame(m.magic, Ping(99)))
        blocks, pong = 0, False
        while blocks < sent or not pong:
            msg = await _read_msg(reader, m.magic)
            pong = pong or isinstance(msg, Pong)
            blocks += isinstance(msg, BlockMsg)
        assert blocks == sent and not peer.requests and not peer.closed
        # A peer with too many requests waiting is dropped, not punished.
        reader2, writer2, greedy = await _raw_peer(h)
        for _ in range(MAX_QUEUED_REQUESTS // 1000 + 200):
            if greedy.closed:
                break
            writer2.write(request)
            await asyncio.sleep(0.01)
        await _until(lambda: greedy.closed, "the greedy peer to be dropped")
        assert greedy.close_reason == "not reading its data (too many requests waiting)"
        assert greedy.score == 0 and not peer.closed

    run(tmp_path, body)

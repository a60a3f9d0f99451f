"""A real node in this process and hand-driven peers over real sockets.

:func:`run_node` starts a :class:`~o2ocli.node.runtime.Node` (devnet spec,
LevelDB in a temp dir, listening on 127.0.0.1 port 0, no validator key so it
never seals) and runs an async test body against it.  :class:`Remote` is the
test's end of one connection: it speaks the real wire protocol
(:mod:`o2ocli.p2p.messages`) and nothing in the node knows about it.
:func:`make_chain` seals real blocks with the devnet validator key.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from o2ocli.chainspec import ChainSpec, load_spec
from o2ocli.consensus.poa import DIFF_IN_TURN, seal_header
from o2ocli.core.block import Block, BlockHeader, merkle_root
from o2ocli.crypto.address import decode_wif
from o2ocli.crypto.keys import PrivateKey
from o2ocli.node.datadir import init_datadir
from o2ocli.node.runtime import Node, NodeConfig
from o2ocli.p2p.messages import (
    FRAME_HEADER_SIZE,
    PROTOCOL_VERSION,
    Ping,
    Pong,
    Verack,
    Version,
    decode_payload,
    encode_frame,
    parse_frame_header,
)

SPEC: ChainSpec = load_spec("devnet")
TIMEOUT = 10.0


def validator_key() -> PrivateKey:
    secret, _ = decode_wif(SPEC.dev_keys["validator"], version=SPEC.wif_version)
    return PrivateKey(secret)


def make_chain(parent: BlockHeader, count: int, key: PrivateKey | None = None) -> list[Block]:
    """``count`` empty blocks on ``parent``, one period apart, sealed in turn by
    the devnet's only validator (or by ``key``)."""
    key = key or validator_key()
    blocks = []
    for _ in range(count):
        header = BlockHeader(parent.height + 1, parent.hash, merkle_root([]),
                             parent.time + SPEC.period, DIFF_IN_TURN)
        block = Block(seal_header(header, key, SPEC.chain_id), ())
        blocks.append(block)
        parent = block.header
    return blocks


async def until(predicate: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    """Poll ``predicate`` on the loop until it is truthy (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


class Remote:
    """The test's end of a connection to the node."""

    def __init__(self, node: Node, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.node = node
        self.magic = node.spec.network_magic
        self.reader = reader
        self.writer = writer
        self.port: int = writer.get_extra_info("sockname")[1]
        self.their_version: Version | None = None

    @classmethod
    async def connect(cls, node: Node) -> Remote:
        assert node.p2p is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", node.p2p.listen_port)
        return cls(node, reader, writer)

    def send(self, msg: Any) -> None:
        self.writer.write(encode_frame(self.magic, msg))

    async def read(self, timeout: float = TIMEOUT) -> Any:
        head = await asyncio.wait_for(self.reader.readexactly(FRAME_HEADER_SIZE), timeout)
        kind, length, checksum = parse_frame_header(self.magic, head)
        payload = await asyncio.wait_for(self.reader.readexactly(length), timeout)
        return decode_payload(kind, payload, checksum)

    async def expect(self, kind: type, timeout: float = TIMEOUT) -> Any:
        """The next message of type ``kind`` (pings are answered, others skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            msg = await self.read(max(0.01, deadline - time.monotonic()))
            if isinstance(msg, kind):
                return msg
            if isinstance(msg, Ping) and not isinstance(msg, Pong):
                self.send(Pong(msg.nonce))

    async def handshake(self, *, height: int = 0, total_difficulty: int = 0,
                        chain_id: str | None = None, genesis: bytes | None = None,
                        protocol: int = PROTOCOL_VERSION) -> Version:
        """Exchange version/verack; returns the node's version."""
        self.their_version = await self.expect(Version)
        self.send(Version(protocol, chain_id or self.node.spec.chain_id,
                          genesis or self.node.chain.genesis.hash, height, total_difficulty, 0,
                          secrets.randbits(64), "unit-test-peer"))
        self.send(Verack())
        if chain_id is None and genesis is None:
            await self.expect(Verack)
            await until(lambda: self.peer() is not None and self.peer().ready,
                        "the node to see the peer ready")
        return self.their_version

    def peer(self) -> Any:
        """The node's Peer object for this connection (None once it is gone)."""
        assert self.node.p2p is not None
        return next((p for p in self.node.p2p.peers.values() if p.port == self.port), None)

    async def closed_by_node(self, timeout: float = TIMEOUT) -> bool:
        """True once the node closes the connection (whatever it sent before)."""
        try:
            while await asyncio.wait_for(self.reader.read(65536), timeout):
                pass
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        return True

    def close(self) -> None:
        self.writer.close()


def run_node(tmp_path: Path, body: Callable[[Node], Awaitable[None]], **config: Any) -> None:
    """Start a node in ``tmp_path``, run ``body(node)``, always shut it down."""
    async def main() -> None:
        spec = dataclasses.replace(SPEC)
        init_datadir(tmp_path, spec)
        node = Node(NodeConfig(datadir=tmp_path, spec=spec, rpc_port=0,
                               p2p_listen=("127.0.0.1", 0), use_bootstrap=False, **config))
        await node.start()
        try:
            await body(node)
        finally:
            await node.shutdown()

    asyncio.run(asyncio.wait_for(main(), 60))


def disconnect_reasons(node: Node) -> list[str]:
    assert node.p2p is not None
    return [d["reason"] for d in node.p2p.recent_disconnects]

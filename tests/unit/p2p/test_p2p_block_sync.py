"""Header-first block download (o2ocli.p2p.sync) over real sockets.

A real node in this process (devnet, LevelDB in a temp dir, 127.0.0.1; see
``p2p_harness``) and a hand-driven peer that serves blocks sealed with the
devnet validator key.  Valid chains are fetched header first and connected in
order; headers and blocks that break a rule cost the sender its connection
and change nothing; what the node merely does not know yet is asked for.
"""

from __future__ import annotations

from p2p_harness import Remote, disconnect_reasons, make_chain, run_node, until

from o2ocli.core.block import Block, BlockHeader
from o2ocli.core.locks import PayToAddress
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, Tx, TxIn, TxOut
from o2ocli.crypto.keys import PrivateKey
from o2ocli.node.runtime import Node
from o2ocli.p2p.messages import INV_BLOCK, INV_CMPCT_BLOCK, BlockMsg, GetData, GetHeaders, Headers


def claim(blocks: list[Block]) -> dict[str, int]:
    """Version fields claiming ``blocks`` on top of genesis."""
    return {"height": blocks[-1].height, "total_difficulty": 10**6}


async def serve_headers(remote: Remote, node: Node, headers: list[BlockHeader]) -> GetHeaders:
    """Wait for the node's getheaders (its locator starts at its tip) and answer."""
    ask = await remote.expect(GetHeaders)
    assert ask.locator[0] == node.chain.tip.hash
    remote.send(Headers(tuple(headers)))
    return ask


async def requested(remote: Remote, count: int) -> list[bytes]:
    """The block hashes the node asks for, until ``count`` of them (full or, near
    the tip, compact: a full block answers either)."""
    hashes: list[bytes] = []
    while len(hashes) < count:
        msg = await remote.expect(GetData)
        hashes += [h for kind, h in msg.items if kind in (INV_BLOCK, INV_CMPCT_BLOCK)]
    return hashes


def test_longer_chain_is_fetched_header_first_and_connected_in_order(tmp_path):
    async def body(node: Node) -> None:
        genesis = node.chain.genesis
        blocks = make_chain(genesis.header, 6)
        remote = await Remote.connect(node)
        await remote.handshake(**claim(blocks))
        ask = await serve_headers(remote, node, [b.header for b in blocks])
        assert ask.locator[-1] == genesis.hash
        wanted = await requested(remote, len(blocks))
        assert wanted == [b.hash for b in blocks]  # only what the headers showed
        for block in reversed(blocks):  # out of order: the node waits for parents
            remote.send(BlockMsg(block))
        await until(lambda: node.chain.height == 6, "the chain to be connected")
        assert node.chain.tip.hash == blocks[-1].hash
        assert [node.chain.state.get_block_hash(h) for h in range(1, 7)] == [
            b.hash for b in blocks]
        assert remote.peer() is not None and remote.peer().score == 0
        assert not node.syncing()
        remote.close()

    run_node(tmp_path, body)


def test_headers_that_are_not_a_chain_cost_the_connection(tmp_path):
    async def body(node: Node) -> None:
        blocks = make_chain(node.chain.genesis.header, 3)
        remote = await Remote.connect(node)
        await remote.handshake(**claim(blocks))
        await serve_headers(remote, node, [blocks[0].header, blocks[2].header])
        assert await remote.closed_by_node()
        assert any("headers are not a chain" in r for r in disconnect_reasons(node))
        assert node.chain.height == 0

    run_node(tmp_path, body)


def test_header_sealed_by_a_non_validator_costs_the_connection(tmp_path):
    async def body(node: Node) -> None:
        forged = make_chain(node.chain.genesis.header, 2, key=PrivateKey.generate())
        remote = await Remote.connect(node)
        await remote.handshake(**claim(forged))
        await serve_headers(remote, node, [b.header for b in forged])
        assert await remote.closed_by_node()
        (reason,) = [r for r in disconnect_reasons(node) if "invalid header" in r]
        assert "bad-poa" in reason, reason
        assert node.chain.height == 0 and not node.syncing()

    run_node(tmp_path, body)


def test_block_whose_body_does_not_match_its_header_costs_the_connection(tmp_path):
    async def body(node: Node) -> None:
        blocks = make_chain(node.chain.genesis.header, 2)
        remote = await Remote.connect(node)
        await remote.handshake(**claim(blocks))
        await serve_headers(remote, node, [b.header for b in blocks])
        await requested(remote, 2)
        stray = Tx((TxIn(Outpoint(bytes(32), 0)),),
                   (TxOut(NATIVE_ASSET, 1, PayToAddress(bytes(20))),))
        remote.send(BlockMsg(Block(blocks[0].header, (stray,))))  # same header, other body
        assert await remote.closed_by_node()
        assert any(r.startswith("misbehaving") for r in disconnect_reasons(node)), \
            disconnect_reasons(node)
        assert node.chain.height == 0

    run_node(tmp_path, body)


def test_headers_that_do_not_connect_are_answered_with_a_locator_not_punished(tmp_path):
    async def body(node: Node) -> None:
        blocks = make_chain(node.chain.genesis.header, 4)
        remote = await Remote.connect(node)
        await remote.handshake(**claim(blocks))
        await serve_headers(remote, node, [b.header for b in blocks[2:]])  # parent unknown
        again = await remote.expect(GetHeaders)  # it asks where we part
        assert again.locator[0] == node.chain.tip.hash
        remote.send(Headers(tuple(b.header for b in blocks)))
        await requested(remote, 4)
        for block in blocks:
            remote.send(BlockMsg(block))
        await until(lambda: node.chain.height == 4, "the chain to be connected")
        assert remote.peer() is not None and remote.peer().score == 0
        remote.close()

    run_node(tmp_path, body)


def test_announced_block_on_the_tip_is_connected_without_a_request(tmp_path):
    async def body(node: Node) -> None:
        (block,) = make_chain(node.chain.genesis.header, 1)
        remote = await Remote.connect(node)
        await remote.handshake()  # claims nothing: no headers asked
        remote.send(BlockMsg(block))
        await until(lambda: node.chain.height == 1, "the block to be connected")
        assert node.chain.tip.hash == block.hash
        assert remote.peer().score == 0
        remote.close()

    run_node(tmp_path, body)

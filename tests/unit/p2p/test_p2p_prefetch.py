"""Verifying ahead while syncing (BlockSync.on_block_read): a block read off
the wire while an earlier one is still to connect has its signatures verified
on the signature workers meanwhile, and connecting it then takes them from
the signature cache.  Real in-process node, a hand-driven peer."""

from __future__ import annotations

import asyncio

import pytest
from p2p_harness import SPEC, Remote, run_node, until, validator_key
from test_p2p_compact import fan_out_and_payments

from o2ocli.consensus.poa import DIFF_IN_TURN, seal_header
from o2ocli.core.block import Block, BlockHeader, tx_merkle_root
from o2ocli.node.runtime import Node
from o2ocli.p2p.messages import BlockMsg, GetData, GetHeaders, Headers, ProtocolError
from o2ocli.p2p.peer import OFFLOAD_DECODE_BYTES


def two_blocks(node: Node, payments: int) -> tuple[Block, Block]:
    """Block 1 fans the devnet funds out into ``payments`` coins; block 2
    spends each in a payment."""
    fan, pays = fan_out_and_payments(node, payments)
    blocks = []
    parent = node.chain.genesis.header
    for txs in ([fan], pays):
        header = BlockHeader(parent.height + 1, parent.hash, tx_merkle_root(txs),
                             parent.time + SPEC.period, DIFF_IN_TURN)
        blocks.append(Block(seal_header(header, validator_key(), SPEC.chain_id), tuple(txs)))
        parent = blocks[-1].header
    return blocks[0], blocks[1]


@pytest.mark.parametrize("PAYMENTS", [100, 400])  # decoded on the event loop / a thread
def test_a_block_read_before_its_parent_is_verified_ahead(tmp_path, PAYMENTS):  # noqa: N803
    async def body(node: Node) -> None:
        first, second = two_blocks(node, PAYMENTS)
        assert (len(second.to_bytes()) >= OFFLOAD_DECODE_BYTES) == (PAYMENTS == 400)
        remote = await Remote.connect(node)
        await remote.handshake(protocol=1, height=2, total_difficulty=10**6)
        await remote.expect(GetHeaders)
        remote.send(Headers((first.header, second.header)))
        asked = await remote.expect(GetData)
        assert {h for _, h in asked.items} == {first.hash, second.hash}
        verifier = node.verifier
        hits = verifier.hits
        remote.send(BlockMsg(second))  # the child first: it must wait for its parent
        # Handed to the workers (their answers are read at the next connect).
        await until(lambda: len(verifier._inflight) + verifier.prefetched >= PAYMENTS,
                    "the waiting block's signatures to be sent ahead")
        assert node.chain.height == 0
        remote.send(BlockMsg(first))
        await until(lambda: node.chain.height == 2, "both blocks to be connected")
        assert verifier.prefetched >= PAYMENTS
        assert verifier.hits - hits >= PAYMENTS  # taken from the cache, not verified again
        assert verifier.inner.hashed_ahead >= 1  # its ids and merkle root too
        assert node.chain.tip.hash == second.hash
        remote.close()

    run_node(tmp_path, body)


def test_a_decoded_block_queued_behind_its_parent_is_verified_ahead(tmp_path):
    """The reader's hook (Peer._read_ahead), called as each message is decoded
    and before the messages ahead of it are handled: the child of a block
    still to connect is sent to the workers; a failed decode, or the block
    next to connect, is not."""
    async def body(node: Node) -> None:
        first, second = two_blocks(node, 100)
        remote = await Remote.connect(node)
        await remote.handshake(protocol=1, height=2, total_difficulty=10**6)
        await remote.expect(GetHeaders)
        remote.send(Headers((first.header, second.header)))
        await remote.expect(GetData)
        peer = remote.peer()
        verifier = node.verifier
        loop = asyncio.get_running_loop()

        def decoded(value: object) -> asyncio.Future:
            future = loop.create_future()
            if isinstance(value, Exception):
                future.set_exception(value)
            else:
                future.set_result(value)
            return future

        peer._read_ahead(decoded(ProtocolError("bad frame")))
        peer._read_ahead(decoded(BlockMsg(first)))  # next to connect: nothing to do ahead
        assert not verifier._inflight and verifier.prefetched == 0
        peer._read_ahead(decoded(BlockMsg(second)))  # behind its parent
        assert len(verifier._inflight) + verifier.prefetched >= 100
        remote.send(BlockMsg(first))
        remote.send(BlockMsg(second))
        await until(lambda: node.chain.height == 2, "both blocks to be connected")
        assert verifier.prefetched >= 100
        remote.close()

    run_node(tmp_path, body)

"""Compact block relay (o2ocli.p2p.compact) over real sockets.

A real node in this process (devnet, LevelDB in a temp dir; see ``p2p_harness``)
and hand-driven peers.  A block near the tip is asked of a protocol-2 peer in
compact form and rebuilt from the node's mempool (no full block crosses the
wire), missing transactions are fetched with getblocktxn, a compact block that
does not rebuild to its header falls back to the full block without a penalty,
a blocktxn that does not answer the question costs the connection, a peer that
never answers getblocktxn loses the block to another peer, and a protocol-1
peer is only ever asked for full blocks.  The node also serves compact blocks.
"""

from __future__ import annotations

import pytest
from p2p_harness import SPEC, Remote, disconnect_reasons, run_node, until, validator_key

from o2ocli.consensus.poa import DIFF_IN_TURN, seal_header
from o2ocli.core.block import Block, BlockHeader, tx_merkle_root
from o2ocli.core.encoding import Writer
from o2ocli.core.locks import PayToAddress
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, Tx, TxIn, TxOut
from o2ocli.crypto.address import decode_wif
from o2ocli.crypto.hashes import sha256d
from o2ocli.crypto.keys import PrivateKey
from o2ocli.node.runtime import Node
from o2ocli.p2p.compactmsg import INV_CMPCT_BLOCK, CmpctBlock, compact_block
from o2ocli.p2p.messages import (
    INV_BLOCK,
    BlockMsg,
    BlockTxn,
    GetBlockTxn,
    GetData,
    GetHeaders,
    Headers,
    Ping,
    Pong,
)
from o2ocli.testing.chaingen import sign_tx
from o2ocli.testing.load import payment_txs

COIN = 10**SPEC.native_decimals
CLAIM = {"height": 1, "total_difficulty": 10**6}


def block_with_payments(node: Node, n: int = 3) -> Block:
    """Block 1: a fan-out of the devnet funds into ``n`` coins, then one payment per coin."""
    fan, pays = fan_out_and_payments(node, n)
    txs = [fan, *pays]
    genesis = node.chain.genesis
    header = BlockHeader(1, genesis.hash, tx_merkle_root(txs), genesis.header.time + SPEC.period,
                         DIFF_IN_TURN)
    return Block(seal_header(header, validator_key(), SPEC.chain_id), tuple(txs))


def fan_out_and_payments(node: Node, n: int) -> tuple[Tx, list[Tx]]:
    """A tx fanning the devnet funds out into ``n`` coins, and a payment of each."""
    secret, _ = decode_wif(SPEC.dev_keys["funds"], version=SPEC.wif_version)
    key = PrivateKey(secret)
    lock = PayToAddress(key.public_key.hash160())
    genesis = node.chain.genesis
    alloc = genesis.txs[0]
    index = next(i for i, o in enumerate(alloc.outputs)
                 if o.asset == NATIVE_ASSET and o.lock == lock)
    value = alloc.outputs[index].amount
    outs = [TxOut(NATIVE_ASSET, COIN, lock) for _ in range(n)]
    outs.append(TxOut(NATIVE_ASSET, value - n * COIN - 100_000, lock))
    fan = sign_tx(Tx((TxIn(Outpoint(alloc.txid, index)),), tuple(outs)), [[key]], SPEC.chain_id)
    return fan, payment_txs(SPEC.chain_id, key, [(Outpoint(fan.txid, i), COIN) for i in range(n)])


def in_mempool(node: Node, txs: tuple[Tx, ...]) -> None:
    results = node.submit_txs(list(txs))
    assert all(r.txid == tx.txid for r, tx in zip(results, txs, strict=True)), results


async def announce(remote: Remote, block: Block) -> GetData:
    """Answer the node's getheaders with the block's header; its block request."""
    await remote.expect(GetHeaders)
    remote.send(Headers((block.header,)))
    return await remote.expect(GetData)


async def seen_until_pong(remote: Remote) -> list[object]:
    """Every message the node sends before answering a ping (sent now)."""
    remote.send(Ping(99))
    seen = []
    while True:
        msg = await remote.read()
        if isinstance(msg, Pong) and msg.nonce == 99:
            return seen
        seen.append(msg)


def stats(node: Node) -> dict[str, int]:
    assert node.p2p is not None
    return node.p2p.compact.stats


def test_block_with_every_tx_in_the_mempool_is_rebuilt_without_the_full_block(tmp_path):
    async def body(node: Node) -> None:
        block = block_with_payments(node)
        in_mempool(node, block.txs)
        remote = await Remote.connect(node)
        await remote.handshake(**CLAIM)
        ask = await announce(remote, block)
        assert ask.items == ((INV_CMPCT_BLOCK, block.hash),)
        remote.send(compact_block(block))
        await until(lambda: node.chain.height == 1, "the rebuilt block to be connected")
        assert node.chain.tip.hash == block.hash
        seen = await seen_until_pong(remote)
        assert not [m for m in seen if isinstance(m, (GetData, GetBlockTxn))], seen
        assert stats(node)["rebuilt"] == 1 and stats(node)["fallback_full"] == 0
        assert stats(node)["bytes_saved"] > 0
        assert remote.peer().score == 0
        remote.close()

    run_node(tmp_path, body)


def test_missing_txs_are_fetched_with_getblocktxn(tmp_path):
    async def body(node: Node) -> None:
        block = block_with_payments(node)
        in_mempool(node, block.txs[:2])  # the fan-out (prefilled anyway) and one payment
        remote = await Remote.connect(node)
        await remote.handshake(**CLAIM)
        assert (await announce(remote, block)).items == ((INV_CMPCT_BLOCK, block.hash),)
        remote.send(compact_block(block))
        ask = await remote.expect(GetBlockTxn)
        assert ask.block_hash == block.hash and ask.indexes == (2, 3)
        remote.send(BlockTxn(block.hash, block.txs[2:]))
        await until(lambda: node.chain.height == 1, "the completed block to be connected")
        assert node.chain.tip.hash == block.hash
        assert stats(node)["txs_asked"] == 2 and stats(node)["fallback_full"] == 0
        assert remote.peer().score == 0
        remote.close()

    run_node(tmp_path, body)


def test_compact_block_that_does_not_match_its_header_falls_back_to_the_full_block(tmp_path):
    async def body(node: Node) -> None:
        block = block_with_payments(node)
        in_mempool(node, block.txs)
        remote = await Remote.connect(node)
        await remote.handshake(**CLAIM)
        await announce(remote, block)
        honest = compact_block(block)
        swapped = CmpctBlock(block.header, honest.txids[::-1], honest.prefilled)
        remote.send(swapped)  # the right txs in the wrong order: merkle root differs
        again = await remote.expect(GetData)
        assert again.items == ((INV_BLOCK, block.hash),)
        remote.send(BlockMsg(block))
        await until(lambda: node.chain.height == 1, "the full block to be connected")
        assert stats(node)["fallback_full"] == 1
        assert remote.peer() is not None and remote.peer().score == 0  # no penalty
        remote.close()

    run_node(tmp_path, body)


def test_malformed_cmpctblock_costs_the_connection(tmp_path):
    async def body(node: Node) -> None:
        block = block_with_payments(node)
        remote = await Remote.connect(node)
        await remote.handshake(**CLAIM)
        await announce(remote, block)
        w = Writer()
        block.header.encode(w)
        w.varint(1)
        w.raw(block.txs[1].txid)
        w.varint(1)
        w.varint(2)  # a prefilled index beyond the block's 2 txs
        block.txs[0].encode(w)
        w.varint(0)
        w.varint(0)
        payload = w.getvalue()
        remote.writer.write(remote.magic + bytes([CmpctBlock.TYPE])
                            + len(payload).to_bytes(4, "little") + sha256d(payload)[:4] + payload)
        assert await remote.closed_by_node()
        assert any("malformed CmpctBlock" in r and "out of range" in r
                   for r in disconnect_reasons(node)), disconnect_reasons(node)
        assert node.chain.height == 0

    run_node(tmp_path, body)


@pytest.mark.parametrize(("answer", "reason"), [
    ((1, 2), "blocktxn with 2 txs for 3 asked"),  # one short
    ((1, 3, 2), "blocktxn tx 2 is not the one asked for"),  # out of order
])
def test_blocktxn_that_does_not_answer_the_question_costs_the_connection(tmp_path, answer,
                                                                         reason):
    async def body(node: Node) -> None:
        block = block_with_payments(node)
        remote = await Remote.connect(node)
        await remote.handshake(**CLAIM)
        await announce(remote, block)
        remote.send(compact_block(block))
        ask = await remote.expect(GetBlockTxn)
        assert ask.indexes == (1, 2, 3)
        remote.send(BlockTxn(block.hash, tuple(block.txs[i] for i in answer)))
        assert await remote.closed_by_node()
        assert any(reason in r for r in disconnect_reasons(node)), disconnect_reasons(node)
        assert node.chain.height == 0

    run_node(tmp_path, body)


def test_peer_that_never_answers_getblocktxn_loses_the_block_to_another_peer(tmp_path):
    async def body(node: Node) -> None:
        block = block_with_payments(node)
        silent = await Remote.connect(node)
        await silent.handshake(**CLAIM)
        await announce(silent, block)
        silent.send(compact_block(block))
        await silent.expect(GetBlockTxn)  # ... and never answered
        other = await Remote.connect(node)
        await other.handshake(**CLAIM)
        ask = await announce(other, block)  # taken back by the stall logic, asked in full
        assert ask.items == ((INV_BLOCK, block.hash),)
        other.send(BlockMsg(block))
        await until(lambda: node.chain.height == 1, "the block from the other peer")
        assert silent.peer() is not None and silent.peer().score == 0  # slow is not bad
        silent.close()
        other.close()

    run_node(tmp_path, body)


def test_protocol_1_peer_is_asked_for_full_blocks(tmp_path):
    async def body(node: Node) -> None:
        block = block_with_payments(node)
        in_mempool(node, block.txs)
        remote = await Remote.connect(node)
        theirs = await remote.handshake(protocol=1, **CLAIM)
        assert theirs.protocol == 2
        assert (await announce(remote, block)).items == ((INV_BLOCK, block.hash),)
        remote.send(BlockMsg(block))
        await until(lambda: node.chain.height == 1, "the full block to be connected")
        assert stats(node)["compact_received"] == 0
        remote.close()

    run_node(tmp_path, body)


def test_node_serves_compact_blocks_and_their_txs(tmp_path):
    async def body(node: Node) -> None:
        block = block_with_payments(node)
        feeder = await Remote.connect(node)
        await feeder.handshake()
        feeder.send(BlockMsg(block))
        await until(lambda: node.chain.height == 1, "the block to be connected")
        feeder.close()
        remote = await Remote.connect(node)
        await remote.handshake()
        remote.send(GetData(((INV_CMPCT_BLOCK, block.hash),)))
        got = await remote.expect(CmpctBlock)
        assert got.header.hash == block.hash
        assert [i for i, _ in got.prefilled] == [0]
        assert got.txids == tuple(tx.txid for tx in block.txs[1:])
        remote.send(GetBlockTxn(block.hash, (1, 3)))
        txn = await remote.expect(BlockTxn)
        assert [tx.wtxid for tx in txn.txs] == [block.txs[1].wtxid, block.txs[3].wtxid]
        remote.send(GetBlockTxn(block.hash, (9,)))  # the block has 4 txs
        assert await remote.closed_by_node()
        assert any("getblocktxn index out of range" in r for r in disconnect_reasons(node))

    run_node(tmp_path, body)

"""Wire format of compact block relay (o2ocli.p2p.compactmsg): round trips, caps,
index rules, hostile bytes.  (Truncation, trailing bytes and the mutation fuzz
of every message type, these included, are in test_p2p_messages.)"""

from __future__ import annotations

import random

import pytest

from o2ocli.core.block import Block
from o2ocli.core.encoding import Writer
from o2ocli.core.limits import MAX_BLOCK_TXS
from o2ocli.crypto.hashes import sha256d
from o2ocli.p2p.compactmsg import (
    INV_CMPCT_BLOCK,
    MAX_BLOCKTXN,
    MAX_PREFILLED,
    BlockTxn,
    CmpctBlock,
    GetBlockTxn,
    compact_block,
)
from o2ocli.p2p.messages import (
    FRAME_HEADER_SIZE,
    GetData,
    Inv,
    NotFound,
    ProtocolError,
    decode_payload,
    encode_frame,
    parse_frame_header,
)
from o2ocli.testing.chaingen import ChainGenerator

MAGIC = bytes.fromhex("f0d2a1c3")


def roundtrip(msg: object) -> object:
    frame = encode_frame(MAGIC, msg)
    kind, _, checksum = parse_frame_header(MAGIC, frame[:FRAME_HEADER_SIZE])
    return decode_payload(kind, frame[FRAME_HEADER_SIZE:], checksum)


def refused(kind: int, payload: bytes) -> str:
    with pytest.raises(ProtocolError) as info:
        decode_payload(kind, payload, sha256d(payload)[:4])
    return str(info.value)


@pytest.fixture(scope="module")
def block() -> Block:
    gen = ChainGenerator("o2o-test", n_keys=10, coins_per_key=4)
    gen.next_block(3)
    return gen.next_block(6)


def test_cmpctblock_roundtrip_and_rebuild(block):
    msg = compact_block(block, (0, 3))
    assert [i for i, _ in msg.prefilled] == [0, 3]
    assert msg.tx_count == len(block.txs)
    assert len(msg.txids) == len(block.txs) - 2
    out = roundtrip(msg)
    assert isinstance(out, CmpctBlock)
    assert out.header.hash == block.hash
    assert out.txids == msg.txids
    assert [(i, t.wtxid) for i, t in out.prefilled] == [(i, t.wtxid) for i, t in msg.prefilled]
    assert out.to_bytes() == msg.to_bytes()
    # The whole point: much smaller than the block.
    assert len(msg.to_bytes()) < block.size // 2


def test_compact_default_prefills_the_first_tx_only(block):
    msg = compact_block(block)
    assert [i for i, _ in msg.prefilled] == [0]
    assert msg.txids == tuple(t.txid for t in block.txs[1:])


def test_getblocktxn_and_blocktxn_roundtrip(block):
    ask = GetBlockTxn(block.hash, (0, 5, 199_999))
    assert roundtrip(ask) == ask
    answer = BlockTxn(block.hash, block.txs[1:3])
    out = roundtrip(answer)
    assert out.block_hash == block.hash
    assert [t.wtxid for t in out.txs] == [t.wtxid for t in block.txs[1:3]]


def test_compact_item_kind_only_in_getdata_and_notfound():
    item = ((INV_CMPCT_BLOCK, bytes(32)),)
    assert roundtrip(GetData(item)).items == item
    assert roundtrip(NotFound(item)).items == item
    w = Writer()
    Inv(item).encode(w)
    assert "unknown item kind 3" in refused(Inv.TYPE, w.getvalue())


def _cmpct_payload(block: Block, txids: list[bytes], prefilled: list[tuple[int, bytes]],
                   count: int | None = None) -> bytes:
    w = Writer()
    block.header.encode(w)
    w.varint(len(txids))
    for txid in txids:
        w.raw(txid)
    w.varint(len(prefilled) if count is None else count)
    for index, raw in prefilled:
        w.varint(index)
        w.raw(raw)
    w.varint(0)
    w.varint(0)
    return w.getvalue()


def test_prefilled_index_rules(block):
    tx = block.txs[0].to_bytes()
    ids = [t.txid for t in block.txs[1:3]]
    ok = _cmpct_payload(block, ids, [(0, tx), (2, tx)])
    assert decode_payload(CmpctBlock.TYPE, ok, sha256d(ok)[:4]).tx_count == 4
    out_of_range = _cmpct_payload(block, ids, [(3, tx)])  # 3 txs in all
    assert "out of range" in refused(CmpctBlock.TYPE, out_of_range)
    repeated = _cmpct_payload(block, ids, [(1, tx), (1, tx)])
    assert "not strictly increasing" in refused(CmpctBlock.TYPE, repeated)
    backwards = _cmpct_payload(block, ids, [(2, tx), (0, tx)])
    assert "not strictly increasing" in refused(CmpctBlock.TYPE, backwards)


def test_caps_are_checked_before_allocation(block):
    w = Writer()
    block.header.encode(w)
    w.varint(MAX_BLOCK_TXS + 1)
    assert str(MAX_BLOCK_TXS + 1) in refused(CmpctBlock.TYPE, w.getvalue())
    # Prefilled: at most MAX_PREFILLED, and never more than the block can hold.
    big = _cmpct_payload(block, [], [], count=MAX_PREFILLED + 1)
    assert str(MAX_PREFILLED + 1) in refused(CmpctBlock.TYPE, big)
    w = Writer()
    block.header.encode(w)
    w.varint(MAX_BLOCK_TXS - 1)
    w.raw(bytes(32) * (MAX_BLOCK_TXS - 1))
    w.varint(2)
    assert "too large" in refused(CmpctBlock.TYPE, w.getvalue())
    for cls in (GetBlockTxn, BlockTxn):
        w = Writer()
        w.raw(bytes(32))
        w.varint(MAX_BLOCKTXN + 1)
        assert str(MAX_BLOCKTXN + 1) in refused(cls.TYPE, w.getvalue())


def test_getblocktxn_index_rules():
    def payload(indexes: list[int]) -> bytes:
        w = Writer()
        w.raw(bytes(32))
        w.varint(len(indexes))
        for i in indexes:
            w.varint(i)
        return w.getvalue()

    assert "not strictly increasing" in refused(GetBlockTxn.TYPE, payload([4, 4]))
    assert "not strictly increasing" in refused(GetBlockTxn.TYPE, payload([5, 1]))
    assert "out of range" in refused(GetBlockTxn.TYPE, payload([MAX_BLOCK_TXS]))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_damage_is_a_protocol_error_or_a_message(block, seed):
    """Seeded byte damage to the three payloads: ProtocolError or a message, nothing else."""
    rng = random.Random(seed)
    samples = [compact_block(block, (0, 1)), GetBlockTxn(block.hash, (1, 2, 9)),
               BlockTxn(block.hash, block.txs[:2])]
    for _ in range(300):
        msg = rng.choice(samples)
        w = Writer()
        msg.encode(w)
        data = bytearray(w.getvalue())
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(data))
            data[i] = rng.randrange(256)
        if rng.random() < 0.3:
            del data[rng.randrange(len(data)):]
        try:
            out = decode_payload(msg.TYPE, bytes(data), sha256d(bytes(data))[:4])
        except ProtocolError as exc:
            assert str(exc), f"seed {seed}"
        else:
            assert type(out) is type(msg), f"seed {seed}"

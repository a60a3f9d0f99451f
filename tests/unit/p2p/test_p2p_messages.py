"""Wire format of the P2P protocol: frames, every message type, caps, hostile bytes.

Every malformed frame or payload must be refused with :class:`ProtocolError`
carrying a readable reason; nothing else may escape ``parse_frame_header`` or
``decode_payload`` (the peer turns ProtocolError into a ban, anything else
into an "internal error").
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from o2ocli.chainspec import builtin_spec_path, spec_from_dict
from o2ocli.core.block import VOTE_ADD, VOTE_REMOVE, Block, BlockHeader
from o2ocli.core.encoding import Writer
from o2ocli.core.finality import Evidence, FinalityVote, vote_digest
from o2ocli.core.tx import Tx
from o2ocli.crypto.hashes import sha256d
from o2ocli.crypto.keys import PrivateKey
from o2ocli.p2p.compactmsg import compact_block
from o2ocli.p2p.messages import (
    FRAME_HEADER_SIZE,
    INV_BLOCK,
    INV_TX,
    MAX_ADDR,
    MAX_GETDATA,
    MAX_HEADERS,
    MAX_INV,
    MAX_LOCATOR,
    MAX_PAYLOAD,
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    Addr,
    BlockMsg,
    BlockTxn,
    EvidenceMsg,
    GetAddr,
    GetBlockTxn,
    GetData,
    GetHeaders,
    Headers,
    Inv,
    NotFound,
    Ping,
    Pong,
    ProtocolError,
    RawBlock,
    TxMsg,
    Verack,
    Version,
    Votes,
    decode_payload,
    encode_frame,
    parse_frame_header,
)
from o2ocli.testing.chaingen import ChainGenerator

MAGIC = bytes.fromhex("f0d2a1c3")
OTHER_MAGIC = bytes.fromhex("0badf00d")
CHAIN_ID = "o2o-test"


# --------------------------------------------------------------------- helpers
def roundtrip(msg: object) -> object:
    """Frame ``msg``, parse the header, decode the payload; returns the decoded message."""
    frame = encode_frame(MAGIC, msg)
    kind, length, checksum = parse_frame_header(MAGIC, frame[:FRAME_HEADER_SIZE])
    payload = frame[FRAME_HEADER_SIZE:]
    assert kind == type(msg).TYPE
    assert length == len(payload)
    assert checksum == sha256d(payload)[:4]
    return decode_payload(kind, payload, checksum)


def payload_of(msg: object) -> bytes:
    w = Writer()
    msg.encode(w)
    return w.getvalue()


def decode_raw(kind: int, payload: bytes) -> object:
    """Decode ``payload`` with a correct checksum (so the decoder itself is exercised)."""
    return decode_payload(kind, payload, sha256d(payload)[:4])


def refused(kind: int, payload: bytes) -> str:
    """The readable reason ``payload`` is refused with (fails if it decodes)."""
    with pytest.raises(ProtocolError) as info:
        decode_raw(kind, payload)
    reason = str(info.value)
    assert reason.strip(), "ProtocolError without a reason"
    return reason


def header_bytes(kind: int, length: int, magic: bytes = MAGIC, checksum: bytes = bytes(4)) -> bytes:
    return magic + bytes([kind]) + length.to_bytes(4, "little") + checksum


def h(i: int) -> bytes:
    """A distinct 32-byte hash."""
    return sha256d(i.to_bytes(4, "little"))


# -------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def chain() -> tuple[ChainGenerator, list[Block]]:
    gen = ChainGenerator(CHAIN_ID, n_keys=10, coins_per_key=4)
    blocks = [gen.next_block(3) for _ in range(4)]
    return gen, blocks


@pytest.fixture(scope="module")
def block(chain) -> Block:
    return chain[1][-1]


@pytest.fixture(scope="module")
def tx(block) -> Tx:
    return next(t for t in block.txs if t.inputs)


@pytest.fixture(scope="module")
def headers(chain) -> tuple[BlockHeader, ...]:
    gen, blocks = chain
    plain = [gen.genesis.header] + [b.header for b in blocks]
    # Exercise every optional header field as well.
    voted = dataclasses.replace(plain[-1], vote_kind=VOTE_ADD, vote_address=b"\x11" * 20)
    removed = dataclasses.replace(plain[-1], vote_kind=VOTE_REMOVE, vote_address=b"\x22" * 20,
                                  checkpoint=(b"\x01" * 20, b"\x02" * 20, b"\x03" * 20),
                                  seal_pubkey=b"\x02" + b"\x05" * 32,
                                  seal_signature=b"\x07" * 64)
    return tuple(plain) + (voted, removed)


def version(**kw: object) -> Version:
    fields = dict(protocol=PROTOCOL_VERSION, chain_id=CHAIN_ID, genesis=h(0), height=1234,
                  total_difficulty=2**64 - 1, listen_port=18444, nonce=2**64 - 1,
                  user_agent="o2ocli/1.0 (tëst ✓)")
    fields.update(kw)
    return Version(**fields)


@pytest.fixture(scope="module")
def samples(headers, block, tx) -> list[object]:
    """One valid message of every type (used by truncation and fuzz tests)."""
    return [
        version(),
        Verack(),
        Ping(7),
        Pong(2**64 - 1),
        GetHeaders(tuple(h(i) for i in range(MAX_LOCATOR)), h(999)),
        Headers(headers[:3]),
        GetData(((INV_TX, h(1)), (INV_BLOCK, h(2)))),
        BlockMsg(block),
        TxMsg(tx),
        Inv(((INV_BLOCK, h(3)), (INV_TX, h(4)))),
        NotFound(((INV_TX, h(5)), (INV_BLOCK, h(6)))),
        GetAddr(),
        Addr((("127.0.0.1", 18444, 1_700_000_000), ("::1", 65535, 2**64 - 1))),
        Votes((_vote(1, 2), _vote(2, 3))),
        EvidenceMsg((Evidence.of(_vote(1, 2), _vote(1, 2, h(77))),)),
        compact_block(Block(block.header, block.txs, (_vote(1, 2),)), (0, 2)),
        GetBlockTxn(h(8), (1, 2, 300)),
        BlockTxn(h(9), tuple(t for t in block.txs if t.inputs)),
    ]


def _vote(source: int, target: int, target_hash: bytes | None = None) -> FinalityVote:
    """A vote signed by a fixed test key (chain id 'o2o-test')."""
    key = PrivateKey(bytes([7]) * 32)
    t_hash = target_hash or h(100 + target)
    digest = vote_digest("o2o-test", source, h(source), target, t_hash)
    return FinalityVote(key.public_key.to_bytes(), source, h(source), target, t_hash,
                        key.sign(digest))


# ------------------------------------------------------------------ round trips
def test_every_message_type_is_registered(samples):
    assert sorted(MESSAGE_TYPES) == list(range(1, 19))
    assert sorted(type(m).TYPE for m in samples) == list(range(1, 19))
    for kind, cls in MESSAGE_TYPES.items():
        assert cls.TYPE == kind


def test_frame_layout():
    frame = encode_frame(MAGIC, Ping(0x0102030405060708))
    assert frame[:4] == MAGIC
    assert frame[4] == Ping.TYPE
    assert int.from_bytes(frame[5:9], "little") == 8
    assert frame[9:13] == sha256d(frame[13:])[:4]
    assert frame[13:] == (0x0102030405060708).to_bytes(8, "little")


def test_version_roundtrip():
    msg = version()
    assert roundtrip(msg) == msg
    small = version(height=0, total_difficulty=0, listen_port=0, nonce=0, user_agent="")
    assert roundtrip(small) == small


def test_version_user_agent_is_capped_at_256_bytes():
    msg = roundtrip(version(user_agent="a" * 300))
    assert msg.user_agent == "a" * 256


@pytest.mark.parametrize("msg", [Verack(), GetAddr()])
def test_empty_messages_roundtrip(msg):
    assert encode_frame(MAGIC, msg)[FRAME_HEADER_SIZE:] == b""
    out = roundtrip(msg)
    assert type(out) is type(msg)


@pytest.mark.parametrize("cls", [Ping, Pong])
@pytest.mark.parametrize("nonce", [0, 1, 2**63, 2**64 - 1])
def test_ping_pong_roundtrip(cls, nonce):
    out = roundtrip(cls(nonce))
    assert type(out) is cls
    assert out.nonce == nonce


def test_getheaders_roundtrip_with_full_locator():
    msg = GetHeaders(tuple(h(i) for i in range(MAX_LOCATOR)), h(1000))
    assert roundtrip(msg) == msg
    default_stop = GetHeaders((h(1),))
    out = roundtrip(default_stop)
    assert out == default_stop and out.stop == bytes(32)
    assert roundtrip(GetHeaders(())) == GetHeaders(())


def test_headers_roundtrip_with_real_headers(headers):
    msg = Headers(headers)
    out = roundtrip(msg)
    assert out == msg
    assert [x.hash for x in out.headers] == [x.hash for x in headers]
    # Consecutive generated headers really chain.
    assert all(out.headers[i + 1].prev_hash == out.headers[i].hash for i in range(4))
    assert roundtrip(Headers(())) == Headers(())


@pytest.mark.parametrize("cls", [GetData, Inv, NotFound])
def test_item_lists_roundtrip_with_both_kinds(cls):
    msg = cls(((INV_TX, h(1)), (INV_BLOCK, h(2)), (INV_TX, h(3))))
    out = roundtrip(msg)
    assert type(out) is cls
    assert out == msg
    assert roundtrip(cls(())) == cls(())


def test_block_roundtrip(block):
    out = roundtrip(BlockMsg(block))
    assert isinstance(out.block, Block)
    assert out.block == block
    assert out.block.hash == block.hash
    assert out.block.to_bytes() == block.to_bytes()
    assert [t.txid for t in out.block.txs] == [t.txid for t in block.txs]


def test_raw_block_encodes_like_the_block(block):
    raw = encode_frame(MAGIC, BlockMsg(RawBlock(block.to_bytes())))
    assert raw == encode_frame(MAGIC, BlockMsg(block))
    out = roundtrip(BlockMsg(RawBlock(block.to_bytes())))
    assert out.block == block


def test_tx_roundtrip(tx):
    out = roundtrip(TxMsg(tx))
    assert out.tx == tx
    assert out.tx.txid == tx.txid
    assert out.tx.to_bytes() == tx.to_bytes()


def test_addr_roundtrip():
    msg = Addr((("10.0.0.1", 1, 0), ("2001:db8::1", 65535, 2**64 - 1), ("node.example", 80, 5)))
    assert roundtrip(msg) == msg
    assert roundtrip(Addr(())) == Addr(())


def test_encode_frame_refuses_oversized_payload():
    with pytest.raises(ValueError):
        encode_frame(MAGIC, BlockMsg(RawBlock(bytes(MAX_PAYLOAD + 1))))


def test_largest_block_a_chain_spec_allows_fits_in_a_frame():
    """A spec cannot allow blocks larger than one frame can carry, and the
    largest block it can allow crosses the wire (frame header accepted)."""
    from o2ocli.chainspec import MAX_BLOCK_SIZE_LIMIT, SpecError

    data = json.loads(builtin_spec_path("devnet").read_text(encoding="utf-8"))
    data["limits"]["max_block_size"] = MAX_BLOCK_SIZE_LIMIT + 1
    with pytest.raises(SpecError, match="limits.max_block_size"):
        spec_from_dict(data)
    data["limits"]["max_block_size"] = MAX_BLOCK_SIZE_LIMIT
    spec = spec_from_dict(data)
    assert spec.max_block_size + 1000 < MAX_PAYLOAD
    kind, length, _ = parse_frame_header(
        spec.network_magic, header_bytes(BlockMsg.TYPE, spec.max_block_size, spec.network_magic)
    )
    assert (kind, length) == (BlockMsg.TYPE, spec.max_block_size)


# -------------------------------------------------------------- frame headers
def test_wrong_magic():
    head = encode_frame(OTHER_MAGIC, Verack())
    with pytest.raises(ProtocolError, match="magic"):
        parse_frame_header(MAGIC, head)


@pytest.mark.parametrize("kind", [0, 19, 100, 255])
def test_unknown_message_type(kind):
    with pytest.raises(ProtocolError, match=f"unknown message type {kind}"):
        parse_frame_header(MAGIC, header_bytes(kind, 0))


@pytest.mark.parametrize("length", [MAX_PAYLOAD + 1, 2**31, 2**32 - 1])
def test_length_above_max_payload_refused_from_header_alone(length):
    # Only the 13 header bytes are given: the limit is checked before any payload is read.
    with pytest.raises(ProtocolError, match="exceeds"):
        parse_frame_header(MAGIC, header_bytes(BlockMsg.TYPE, length))


def test_length_at_max_payload_accepted():
    kind, length, checksum = parse_frame_header(
        MAGIC, header_bytes(BlockMsg.TYPE, MAX_PAYLOAD, checksum=b"abcd"))
    assert (kind, length, checksum) == (BlockMsg.TYPE, MAX_PAYLOAD, b"abcd")


def test_magic_is_checked_before_type_and_length():
    with pytest.raises(ProtocolError, match="magic"):
        parse_frame_header(MAGIC, header_bytes(255, 2**32 - 1, magic=OTHER_MAGIC))


def test_bad_checksum(samples):
    for msg in samples:
        frame = encode_frame(MAGIC, msg)
        kind, _, checksum = parse_frame_header(MAGIC, frame[:FRAME_HEADER_SIZE])
        payload = frame[FRAME_HEADER_SIZE:]
        bad = bytes([checksum[0] ^ 0x01]) + checksum[1:]
        with pytest.raises(ProtocolError, match="checksum"):
            decode_payload(kind, payload, bad)
        if payload:
            flipped = payload[:-1] + bytes([payload[-1] ^ 0x80])
            with pytest.raises(ProtocolError, match="checksum"):
                decode_payload(kind, flipped, checksum)


# ------------------------------------------------------------------- payloads
def test_truncated_payload_of_every_type(samples):
    for msg in samples:
        payload = payload_of(msg)
        name = type(msg).__name__
        for cut in range(len(payload)):
            reason = refused(msg.TYPE, payload[:cut])
            assert f"malformed {name}" in reason, reason


def test_trailing_bytes_of_every_type(samples):
    for msg in samples:
        payload = payload_of(msg)
        for extra in (b"\x00", b"\xff" * 7):
            reason = refused(msg.TYPE, payload + extra)
            assert "trailing" in reason, reason


def _count_payload(n: int, item: bytes, tail: bytes = b"") -> bytes:
    w = Writer()
    w.varint(n)
    for _ in range(n):
        w.raw(item)
    w.raw(tail)
    return w.getvalue()


def test_locator_cap():
    assert len(decode_raw(GetHeaders.TYPE, _count_payload(MAX_LOCATOR, h(1), h(2))).locator) == 64
    reason = refused(GetHeaders.TYPE, _count_payload(MAX_LOCATOR + 1, h(1), h(2)))
    assert "65" in reason and "64" in reason


def test_headers_cap(headers):
    one = headers[1].to_bytes()
    assert len(decode_raw(Headers.TYPE, _count_payload(MAX_HEADERS, one)).headers) == 2000
    reason = refused(Headers.TYPE, _count_payload(MAX_HEADERS + 1, one))
    assert "2001" in reason


@pytest.mark.parametrize(
    ("cls", "cap"), [(GetData, MAX_GETDATA), (NotFound, MAX_GETDATA), (Inv, MAX_INV)])
def test_item_list_caps(cls, cap):
    item = bytes([INV_TX]) + h(1)
    assert len(decode_raw(cls.TYPE, _count_payload(cap, item)).items) == cap
    reason = refused(cls.TYPE, _count_payload(cap + 1, item))
    assert str(cap + 1) in reason


def test_item_list_cap_checked_before_reading_items():
    # A huge count with no items behind it is refused for the count, not for truncation.
    w = Writer()
    w.varint(2**40)
    reason = refused(Inv.TYPE, w.getvalue())
    assert "too large" in reason


def test_addr_cap():
    w = Writer()
    w.var_bytes(b"127.0.0.1")
    w.u16(1)
    w.u64(2)
    entry = w.getvalue()
    assert len(decode_raw(Addr.TYPE, _count_payload(MAX_ADDR, entry)).addresses) == MAX_ADDR
    reason = refused(Addr.TYPE, _count_payload(MAX_ADDR + 1, entry))
    assert "1001" in reason


def test_addr_host_length_cap():
    w = Writer()
    w.varint(1)
    w.var_bytes(b"x" * 65)
    w.u16(1)
    w.u64(2)
    assert "malformed Addr" in refused(Addr.TYPE, w.getvalue())


def test_version_chain_id_length_cap():
    w = Writer()
    msg = version()
    w.u32(msg.protocol)
    w.var_bytes(b"c" * 65)
    tail = payload_of(msg)[4 + 1 + len(CHAIN_ID):]
    w.raw(tail)
    assert "chain id" in refused(Version.TYPE, w.getvalue())


@pytest.mark.parametrize(("cls", "kind"), [
    (GetData, 0), (GetData, 4), (GetData, 255), (NotFound, 0), (NotFound, 4),
    (Inv, 0), (Inv, 3), (Inv, 255)])
def test_unknown_inventory_kind(cls, kind):
    w = Writer()
    w.varint(2)
    w.u8(INV_TX)
    w.raw(h(1))
    w.u8(kind)
    w.raw(h(2))
    reason = refused(cls.TYPE, w.getvalue())
    assert f"unknown item kind {kind}" in reason


def test_malformed_block_inside_blockmsg(block):
    raw = block.to_bytes()
    header_len = len(block.header.to_bytes())
    # Unknown vote kind in the header (offset: version, height, prev, root, time, difficulty).
    vote_at = 4 + 4 + 32 + 32 + 8 + 4
    bad_vote = raw[:vote_at] + b"\x09" + raw[vote_at + 1:]
    assert "malformed BlockMsg" in refused(BlockMsg.TYPE, bad_vote)
    # More transactions announced than present.
    more_txs = raw[:header_len] + bytes([len(block.txs) + 1]) + raw[header_len + 1:]
    assert "malformed BlockMsg" in refused(BlockMsg.TYPE, more_txs)
    # A transaction with garbage in place of its body.
    garbage = raw[:header_len] + b"\x01" + b"\xff" * 40
    assert "malformed BlockMsg" in refused(BlockMsg.TYPE, garbage)
    # Only a header, no transaction count.
    assert "malformed BlockMsg" in refused(BlockMsg.TYPE, raw[:header_len])
    assert "malformed BlockMsg" in refused(BlockMsg.TYPE, b"")


def test_malformed_tx_inside_txmsg(tx):
    raw = tx.to_bytes()
    assert "malformed TxMsg" in refused(TxMsg.TYPE, b"")
    assert "malformed TxMsg" in refused(TxMsg.TYPE, raw[:4] + b"\xfd\x01\x00")  # non-canonical


def test_non_canonical_count_refused():
    # 0xfd + u16 for a count below 0xfd is not the shortest form.
    assert "non-canonical" in refused(Inv.TYPE, b"\xfd\x01\x00" + bytes([INV_TX]) + h(1))


# ---------------------------------------------------------------- hostile bytes
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

KINDS = sorted(MESSAGE_TYPES)


def process_frame(data: bytes) -> object | None:
    """Handle ``data`` as the peer would; ``None`` where the peer would wait for more bytes.

    Only ProtocolError may come out of the wire functions; anything else fails the test.
    """
    if len(data) < FRAME_HEADER_SIZE:
        return None
    try:
        kind, length, checksum = parse_frame_header(MAGIC, data[:FRAME_HEADER_SIZE])
    except ProtocolError as exc:
        assert str(exc)
        return exc
    assert kind in MESSAGE_TYPES and 0 <= length <= MAX_PAYLOAD and len(checksum) == 4
    payload = data[FRAME_HEADER_SIZE:FRAME_HEADER_SIZE + length]
    if len(payload) < length:
        return None
    try:
        return decode_payload(kind, payload, checksum)
    except ProtocolError as exc:
        assert str(exc)
        return exc


@FUZZ
@given(st.binary(min_size=FRAME_HEADER_SIZE, max_size=FRAME_HEADER_SIZE))
def test_fuzz_random_frame_headers(head):
    process_frame(head)


@FUZZ
@given(st.sampled_from(KINDS), st.binary(max_size=9), st.binary(max_size=200))
def test_fuzz_random_bytes_after_our_magic(kind, rest, payload):
    head = MAGIC + bytes([kind]) + len(payload).to_bytes(4, "little") + sha256d(payload)[:4]
    process_frame(head + payload)
    process_frame(MAGIC + rest.ljust(9, b"\x00") + payload)


@FUZZ
@given(st.sampled_from(KINDS), st.binary(max_size=600))
def test_fuzz_random_payloads_with_valid_checksum(kind, payload):
    try:
        msg = decode_raw(kind, payload)
    except ProtocolError as exc:
        assert str(exc)
        return
    assert type(msg).TYPE == kind


MUTATION = st.lists(
    st.tuples(st.sampled_from(["flip", "truncate", "insert", "delete"]),
              st.integers(min_value=0, max_value=2**20), st.integers(0, 255)),
    min_size=1, max_size=4,
)


def _mutate(data: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    buf = bytearray(data)
    for op, pos, value in ops:
        if not buf:
            break
        i = pos % len(buf)
        if op == "flip":
            buf[i] ^= 1 << (value % 8)
        elif op == "truncate":
            del buf[i:]
        elif op == "insert":
            buf.insert(i, value)
        else:
            del buf[i]
    return bytes(buf)


@FUZZ
@given(st.data())
def test_fuzz_mutated_frames(samples, data):
    msg = data.draw(st.sampled_from(samples))
    frame = encode_frame(MAGIC, msg)
    process_frame(_mutate(frame, data.draw(MUTATION)))


@FUZZ
@given(st.data())
def test_fuzz_mutated_payloads_with_fixed_checksum(samples, data):
    """Mutate the payload and recompute the checksum so the decoders see the damage."""
    msg = data.draw(st.sampled_from(samples))
    payload = _mutate(payload_of(msg), data.draw(MUTATION))
    try:
        out = decode_raw(msg.TYPE, payload)
    except ProtocolError as exc:
        assert str(exc)
        return
    assert type(out) is type(msg)

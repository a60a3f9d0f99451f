"""Hostile bytes: decoders raise :class:`DecodeError` (with a readable reason) and nothing else.

The fuzz tests catch ``DecodeError`` only; any other exception (``ValueError``
from a constructor, ``TypeError``, ``IndexError``, ``struct.error``,
``MemoryError`` …) propagates and fails the test.  When a mutated input does
decode, re-encoding a freshly built copy must give back exactly the same bytes:
that is the "no alternative encodings" rule.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from o2ocli.core.block import Block, BlockHeader
from o2ocli.core.encoding import DecodeError, Writer
from o2ocli.core.limits import (
    MAX_BLOCK_BYTES,
    MAX_CHECKPOINT_VALIDATORS,
    MAX_TX_BYTES,
    MAX_TX_INPUTS,
    MAX_TX_OUTPUTS,
    MAX_WITNESS_PAIRS,
)
from o2ocli.core.locks import Multisig, PayToAddress
from o2ocli.core.payloads import NO_PAYLOAD, Coinbase, GenesisAlloc
from o2ocli.core.tx import NATIVE_ASSET, Coin, Outpoint, SigPair, Tx, TxIn, TxOut

from . import strategies as S

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _rebuild(obj: object) -> bytes:
    """Encode a freshly constructed copy of ``obj`` (no cached bytes reused)."""
    if isinstance(obj, Tx):
        return Tx(obj.inputs, obj.outputs, obj.lock_height, obj.payload, obj.version).to_bytes()
    if isinstance(obj, BlockHeader):
        return dataclasses.replace(obj).to_bytes()
    if isinstance(obj, Block):
        w = Writer()
        w.raw(_rebuild(obj.header))
        w.varint(len(obj.txs))
        for tx in obj.txs:
            w.raw(_rebuild(tx))
        if obj.header.version >= 2:  # finality votes and evidence follow
            w.varint(len(obj.votes))
            for vote in obj.votes:
                w.raw(dataclasses.replace(vote).to_bytes())
            w.varint(len(obj.evidence))
            for ev in obj.evidence:
                w.raw(dataclasses.replace(ev.first).to_bytes()
                      + dataclasses.replace(ev.second).to_bytes())
        return w.getvalue()
    assert isinstance(obj, Coin)
    return Coin(obj.output, obj.height, obj.coinbase).to_bytes()


def decode_or_reject(decode: Callable[[bytes], object], data: bytes) -> object | None:
    """Decode ``data``; ``None`` on DecodeError.  Anything else escapes (test failure)."""
    try:
        obj = decode(data)
    except DecodeError as exc:
        assert str(exc), "DecodeError without a reason"
        return None
    assert _rebuild(obj) == data, "accepted a non-canonical encoding"
    return obj


DECODERS: dict[str, tuple[Callable[[bytes], object], st.SearchStrategy]] = {
    "tx": (Tx.from_bytes, S.txs().map(lambda t: t.to_bytes())),
    "block": (Block.from_bytes, S.blocks(2).map(lambda b: b.to_bytes())),
    "header": (BlockHeader.from_bytes, S.headers().map(lambda h: h.to_bytes())),
    "coin": (Coin.from_bytes, S.coins.map(lambda c: c.to_bytes())),
}


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[bytes]) -> bytes:
    """A valid encoding with 1..4 random edits."""
    data = bytearray(draw(valid))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete", "append"]))
        n = len(data)
        if op == "append" or n == 0:
            data += draw(st.binary(min_size=1, max_size=8))
        elif op == "flip":
            i = draw(st.integers(0, n - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            i = draw(st.integers(0, n - 1))
            data[i] = draw(st.sampled_from([0x00, 0x01, 0x02, 0x03, 0xFC, 0xFD, 0xFE, 0xFF]))
        elif op == "truncate":
            del data[draw(st.integers(0, n - 1)) :]
        elif op == "insert":
            i = draw(st.integers(0, n))
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        else:
            i = draw(st.integers(0, n - 1))
            del data[i : i + draw(st.integers(1, 8))]
    return bytes(data)


@pytest.mark.parametrize("kind", sorted(DECODERS))
@FUZZ
@given(data=st.data())
def test_random_bytes_only_decode_error(kind, data):
    decode, _ = DECODERS[kind]
    decode_or_reject(decode, data.draw(st.binary(max_size=400)))


@pytest.mark.parametrize("kind", sorted(DECODERS))
@FUZZ
@given(data=st.data())
def test_mutations_only_decode_error(kind, data):
    decode, valid = DECODERS[kind]
    decode_or_reject(decode, data.draw(mutated(valid)))


@pytest.mark.parametrize("kind", sorted(DECODERS))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_truncation_and_trailing_byte_rejected(kind, data):
    decode, valid = DECODERS[kind]
    encoded = data.draw(valid)
    decode(encoded)
    for cut in range(len(encoded)):
        with pytest.raises(DecodeError, match="truncated"):
            decode(encoded[:cut])
    with pytest.raises(DecodeError, match="trailing bytes"):
        decode(encoded + b"\x00")


@pytest.mark.parametrize("kind", sorted(DECODERS))
@FUZZ
@given(data=st.data())
def test_other_decoders_on_valid_encodings(kind, data):
    # A valid encoding of one type fed to every other decoder.
    _, valid = DECODERS[kind]
    encoded = data.draw(valid)
    for decode, _ in DECODERS.values():
        decode_or_reject(decode, encoded)


# -- explicit malformed inputs, each with its message ------------------------------------

P2A = PayToAddress(b"\x11" * 20)
H1, H2, H3 = b"\x01" * 20, b"\x02" * 20, b"\x03" * 20


def _tx_bytes(
    *,
    n_in: bytes = b"\x00",
    outputs: bytes = b"\x00",
    payload: bytes = b"\x00",
    lock_height: bytes = bytes(4),
    tail: bytes = b"",
) -> bytes:
    """A hand-assembled tx: version 1, given raw sections (no inputs by default)."""
    return (1).to_bytes(4, "little") + n_in + outputs + lock_height + payload + tail


def _out(asset: bytes, amount: int, lock: bytes) -> bytes:
    return asset + amount.to_bytes(8, "little") + lock


def _one_output(lock: bytes, asset: bytes = b"\x00") -> bytes:
    return b"\x01" + _out(asset, 5, lock)


def _multisig(m: int, n: int, hashes: list[bytes]) -> bytes:
    return bytes([0x02, m, n]) + b"".join(hashes)


SIGNED = Tx(
    (TxIn(Outpoint(b"\xab" * 32, 1), (SigPair(b"\x02" * 33, b"\x05" * 64),)),),
    (TxOut(NATIVE_ASSET, 10, P2A), TxOut(b"\x07" * 32, 20, Multisig.of(1, [H1, H2]))),
    lock_height=3,
)


def test_reference_hand_assembled_tx_is_valid():
    # The helper produces a valid encoding, so each case below differs from a
    # valid tx only in the one malformed field.
    tx = Tx.from_bytes(_tx_bytes(outputs=_one_output(b"\x01" + H1)))
    assert tx == Tx((), (TxOut(NATIVE_ASSET, 5, PayToAddress(H1)),))


def test_truncated_tx():
    data = SIGNED.to_bytes()
    with pytest.raises(DecodeError, match=r"^truncated signature: need 64 bytes, 63 left$"):
        Tx.from_bytes(data[:-1])
    with pytest.raises(DecodeError, match=r"^truncated tx version: need 4 bytes, 2 left$"):
        Tx.from_bytes(data[:2])
    with pytest.raises(DecodeError, match=r"^truncated witness pair count"):
        Tx.from_bytes(SIGNED.stripped_bytes())
    with pytest.raises(DecodeError, match=r"^truncated tx version"):
        Tx.from_bytes(b"")


def test_trailing_byte():
    with pytest.raises(DecodeError, match=r"^1 trailing bytes after transaction$"):
        Tx.from_bytes(SIGNED.to_bytes() + b"\x00")
    with pytest.raises(DecodeError, match=r"^1 trailing bytes after coin$"):
        Coin.from_bytes(Coin(SIGNED.outputs[0], 1).to_bytes() + b"\x00")
    header = BlockHeader(1, bytes(32), bytes(32), 5)
    with pytest.raises(DecodeError, match=r"^2 trailing bytes after header$"):
        BlockHeader.from_bytes(header.to_bytes() + b"\x00\x00")
    block = Block(header, (SIGNED,))
    with pytest.raises(DecodeError, match=r"^1 trailing bytes after block$"):
        Block.from_bytes(block.to_bytes() + b"\x00")


@pytest.mark.parametrize("tag", [0x00, 0x06, 0x7F, 0xFF])
def test_unknown_lock_tag(tag):
    with pytest.raises(DecodeError, match=rf"^unknown lock type 0x{tag:02x}$"):
        Tx.from_bytes(_tx_bytes(outputs=_one_output(bytes([tag]) + H1)))


@pytest.mark.parametrize("tag", [0x03, 0x16, 0x22, 0xFF])
def test_unknown_payload_tag(tag):
    with pytest.raises(DecodeError, match=rf"^unknown payload type 0x{tag:02x}$"):
        Tx.from_bytes(_tx_bytes(payload=bytes([tag])))


@pytest.mark.parametrize("flag", [0x02, 0x80, 0xFF])
def test_unknown_asset_flag(flag):
    with pytest.raises(DecodeError, match=rf"^unknown asset flag 0x{flag:02x}$"):
        Tx.from_bytes(_tx_bytes(outputs=_one_output(b"\x01" + H1, asset=bytes([flag]))))


def test_native_asset_with_flag_one():
    data = _tx_bytes(outputs=_one_output(b"\x01" + H1, asset=b"\x01" + bytes(32)))
    with pytest.raises(DecodeError, match=r"^native asset must be encoded as flag 0x00$"):
        Tx.from_bytes(data)
    # the same through the coin decoder
    coin = (1).to_bytes(4, "little") + b"\x00" + _out(b"\x01" + bytes(32), 5, b"\x01" + H1)
    with pytest.raises(DecodeError, match="native asset must be encoded as flag 0x00"):
        Coin.from_bytes(coin)


@pytest.mark.parametrize(
    ("lock", "message"),
    [
        (_multisig(0, 2, [H1, H2]), r"^multisig m out of range: 0 of 2$"),
        (_multisig(3, 2, [H1, H2]), r"^multisig m out of range: 3 of 2$"),
        (_multisig(1, 0, []), r"^multisig n out of range: 0$"),
        (
            _multisig(1, 16, [bytes([i]) * 20 for i in range(1, 17)]),
            r"^multisig n out of range: 16$",
        ),
        (_multisig(1, 2, [H2, H1]), r"^multisig key hashes must be strictly ascending$"),
        (_multisig(1, 3, [H1, H3, H2]), r"^multisig key hashes must be strictly ascending$"),
        (_multisig(1, 2, [H1, H1]), r"^multisig key hashes must be strictly ascending$"),
        (_multisig(2, 3, [H1, H2]), r"^truncated multisig key hash: need 20 bytes"),
    ],
)
def test_bad_multisig(lock, message):
    with pytest.raises(DecodeError, match=message):
        Tx.from_bytes(_tx_bytes(outputs=_one_output(lock)))


def test_valid_multisig_edges_accepted():
    many = [bytes([i]) * 20 for i in range(1, 16)]
    for m, hashes in ((1, [H1]), (15, many), (1, many), (2, [H1, H2])):
        tx = Tx.from_bytes(_tx_bytes(outputs=_one_output(_multisig(m, len(hashes), hashes))))
        assert tx.outputs[0].lock == Multisig(m, tuple(hashes))


def _header_bytes(vote: bytes = b"\x00", checkpoint: bytes = b"\x00") -> bytes:
    return (
        (1).to_bytes(4, "little")
        + (7).to_bytes(4, "little")
        + bytes(64)
        + (9).to_bytes(8, "little")
        + (2).to_bytes(4, "little")
        + vote
        + checkpoint
        + bytes(97)
    )


def test_reference_hand_assembled_header_is_valid():
    header = BlockHeader.from_bytes(_header_bytes(b"\x01" + H1, b"\x02" + H1 + H2))
    assert (header.height, header.time, header.difficulty) == (7, 9, 2)
    assert (header.vote_kind, header.vote_address, header.checkpoint) == (1, H1, (H1, H2))


@pytest.mark.parametrize("kind", [3, 4, 0xFF])
def test_unknown_vote_kind(kind):
    with pytest.raises(DecodeError, match=rf"^unknown vote kind {kind}$"):
        BlockHeader.from_bytes(_header_bytes(vote=bytes([kind]) + H1))
    block = _header_bytes(vote=bytes([kind]) + H1) + b"\x00"
    with pytest.raises(DecodeError, match=rf"^unknown vote kind {kind}$"):
        Block.from_bytes(block)


def test_oversized_checkpoint():
    too_many = MAX_CHECKPOINT_VALIDATORS + 1
    w = Writer()
    w.varint(too_many)
    data = _header_bytes(checkpoint=w.getvalue() + H1 * 2)
    with pytest.raises(
        DecodeError,
        match=rf"^checkpoint validator count too large: {too_many} > {MAX_CHECKPOINT_VALIDATORS}$",
    ):
        BlockHeader.from_bytes(data)


def _varint(n: int) -> bytes:
    w = Writer()
    w.varint(n)
    return w.getvalue()


@pytest.mark.parametrize("count", [MAX_TX_INPUTS + 1, 0xFFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF])
def test_oversized_input_count(count):
    data = _tx_bytes(n_in=_varint(count) + bytes(36))
    with pytest.raises(DecodeError, match=rf"^input count too large: {count} > {MAX_TX_INPUTS}$"):
        Tx.from_bytes(data)


def test_input_count_at_cap_is_truncation():
    # Exactly the cap is allowed by the count check; the missing inputs are truncation.
    with pytest.raises(DecodeError, match="^truncated input txid"):
        Tx.from_bytes(_tx_bytes(n_in=_varint(MAX_TX_INPUTS)))


def test_oversized_output_count():
    count = MAX_TX_OUTPUTS + 1
    with pytest.raises(DecodeError, match=rf"^output count too large: {count} > {MAX_TX_OUTPUTS}$"):
        Tx.from_bytes(_tx_bytes(outputs=_varint(count)))


def test_oversized_witness_count():
    stripped = _tx_bytes(n_in=b"\x01" + bytes(36))
    count = MAX_WITNESS_PAIRS + 1
    with pytest.raises(
        DecodeError, match=rf"^witness pair count too large: {count} > {MAX_WITNESS_PAIRS}$"
    ):
        Tx.from_bytes(stripped + _varint(count))


def test_oversized_genesis_note():
    with pytest.raises(DecodeError, match=r"^genesis note length too large: 257 > 256$"):
        Tx.from_bytes(_tx_bytes(payload=b"\x02" + _varint(257) + bytes(257)))
    tx = Tx.from_bytes(_tx_bytes(payload=b"\x02" + _varint(256) + bytes(256)))
    assert tx.payload == GenesisAlloc(bytes(256))


def test_oversized_block_tx_count():
    header = BlockHeader(1, bytes(32), bytes(32), 5).to_bytes()
    with pytest.raises(DecodeError, match=r"^transaction count too large: 4294967295 > 200000$"):
        Block.from_bytes(header + _varint(0xFFFF_FFFF))


def test_truncated_coinbase_height():
    with pytest.raises(DecodeError, match=r"^truncated coinbase height: need 4 bytes, 2 left$"):
        Tx.from_bytes(_tx_bytes(payload=b"\x01\x05\x00"))
    assert Tx.from_bytes(_tx_bytes(payload=b"\x01\x05\x00\x00\x00")).payload == Coinbase(5)


def test_noncanonical_count_in_tx():
    with pytest.raises(DecodeError, match=r"^non-canonical varint in input count$"):
        Tx.from_bytes(_tx_bytes(n_in=b"\xfd\x00\x00"))
    with pytest.raises(DecodeError, match=r"^non-canonical varint in output count$"):
        Tx.from_bytes(_tx_bytes(outputs=b"\xfe\x01\x00\x00\x00"))


def test_noncanonical_genesis_note_length():
    with pytest.raises(DecodeError, match=r"^non-canonical varint in genesis note length$"):
        Tx.from_bytes(_tx_bytes(payload=b"\x02\xfd\x01\x00" + b"x"))


def test_unknown_coin_flags():
    data = Coin(TxOut(NATIVE_ASSET, 1, P2A), 5).to_bytes()
    bad = data[:4] + b"\x02" + data[5:]
    with pytest.raises(DecodeError, match=r"^unknown coin flags 0x02$"):
        Coin.from_bytes(bad)


def test_tx_too_large():
    with pytest.raises(DecodeError, match=rf"^transaction too large: {MAX_TX_BYTES + 1} bytes$"):
        Tx.from_bytes(bytes(MAX_TX_BYTES + 1))


def test_block_too_large():
    with pytest.raises(DecodeError, match=rf"^block too large: {MAX_BLOCK_BYTES + 1} bytes$"):
        Block.from_bytes(bytes(MAX_BLOCK_BYTES + 1))


NON_BYTES = [None, 5, 1.5, "01000000", [1, 0, 0, 0], object()]


@pytest.mark.parametrize(
    "decode",
    [Tx.from_bytes, Block.from_bytes, BlockHeader.from_bytes, Coin.from_bytes],
    ids=["tx", "block", "header", "coin"],
)
@pytest.mark.parametrize("value", NON_BYTES, ids=lambda v: type(v).__name__)
def test_decoders_reject_non_bytes(decode, value):
    with pytest.raises(DecodeError, match="expected bytes, got"):
        decode(value)


@pytest.mark.parametrize("value", NON_BYTES, ids=lambda v: type(v).__name__)
def test_outpoint_key_rejects_non_bytes(value):
    with pytest.raises(DecodeError):
        Outpoint.from_bytes(value)


@pytest.mark.parametrize("wrap", [bytearray, memoryview], ids=["bytearray", "memoryview"])
def test_outpoint_key_from_bytes_like(wrap):
    # Reader accepts bytearray/memoryview, so the 36-byte outpoint key must too
    # (or at least fail with DecodeError, never with a constructor ValueError).
    key = Outpoint(b"\xcd" * 32, 258).to_bytes()
    try:
        decoded = Outpoint.from_bytes(wrap(key))
    except DecodeError:
        return
    assert decoded == Outpoint(b"\xcd" * 32, 258)


@pytest.mark.parametrize("size", [0, 35, 37])
def test_outpoint_key_wrong_length(size):
    with pytest.raises(DecodeError, match=r"^outpoint key must be 36 bytes$"):
        Outpoint.from_bytes(bytes(size))


@pytest.mark.parametrize(
    "decode",
    [Tx.from_bytes, Block.from_bytes, BlockHeader.from_bytes, Coin.from_bytes],
    ids=["tx", "block", "header", "coin"],
)
@pytest.mark.parametrize("wrap", [bytearray, memoryview], ids=["bytearray", "memoryview"])
def test_decoders_accept_bytes_like(decode, wrap):
    encoded = {
        Tx.from_bytes: SIGNED.to_bytes(),
        Block.from_bytes: Block(BlockHeader(1, bytes(32), bytes(32), 5), (SIGNED,)).to_bytes(),
        BlockHeader.from_bytes: BlockHeader(1, bytes(32), bytes(32), 5).to_bytes(),
        Coin.from_bytes: Coin(SIGNED.outputs[1], 3, True).to_bytes(),
    }[decode]
    assert _rebuild(decode(wrap(encoded))) == encoded


def test_payload_defaults():
    assert Tx.from_bytes(_tx_bytes()).payload is NO_PAYLOAD

"""decode(encode(x)) == x for every type, and what the ids and digests commit to."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from o2ocli.core.block import SEAL_TAG, Block, BlockHeader, merkle_root, tx_merkle_root
from o2ocli.core.encoding import MAX_U32, MAX_U64, Reader, Writer
from o2ocli.core.locks import Multisig, PayToAddress, decode_lock, encode_lock
from o2ocli.core.payloads import NO_PAYLOAD, Coinbase, GenesisAlloc, decode_payload, encode_payload
from o2ocli.core.tx import NATIVE_ASSET, SIGHASH_TAG, Coin, Outpoint, SigPair, Tx, TxIn, TxOut
from o2ocli.crypto.hashes import sha256d

from . import strategies as S

FAST = settings(max_examples=150, deadline=None)


def _var_bytes(b: bytes) -> bytes:
    w = Writer()
    w.var_bytes(b)
    return w.getvalue()


def fresh_tx(tx: Tx) -> Tx:
    """An equal Tx built from scratch, so no cached encoding is reused."""
    return Tx(tx.inputs, tx.outputs, tx.lock_height, tx.payload, tx.version)


def fresh_header(header: BlockHeader) -> BlockHeader:
    """An equal header built from scratch (``replace`` drops the init=False caches)."""
    return dataclasses.replace(header)


def fresh_block(block: Block) -> Block:
    return Block(fresh_header(block.header), tuple(fresh_tx(t) for t in block.txs))


# -- round trips -------------------------------------------------------------------


@FAST
@given(S.locks)
def test_lock_roundtrip(lock):
    w = Writer()
    encode_lock(lock, w)
    r = Reader(w.getvalue())
    assert decode_lock(r) == lock
    r.finish()


@FAST
@given(S.payloads)
def test_payload_roundtrip(payload):
    w = Writer()
    encode_payload(payload, w)
    r = Reader(w.getvalue())
    assert decode_payload(r) == payload
    r.finish()


@FAST
@given(S.txouts)
def test_txout_roundtrip(out):
    w = Writer()
    out.encode(w)
    data = w.getvalue()
    r = Reader(data)
    assert TxOut.decode(r) == out
    r.finish()
    assert data[0] == (0 if out.asset == NATIVE_ASSET else 1)


@FAST
@given(S.outpoints, S.coins)
def test_unchecked_constructors_equal_the_checked_ones(outpoint, coin):
    """What block connect builds without the frozen __init__ is the same value:
    equal, same hash and encoding, still frozen."""
    fast = Outpoint.unchecked(outpoint.txid, outpoint.index)
    assert fast == outpoint and hash(fast) == hash(outpoint)
    assert fast.to_bytes() == outpoint.to_bytes() and repr(fast) == repr(outpoint)
    made = Coin.unchecked(coin.output, coin.height, coin.coinbase)
    assert made == coin and made.to_bytes() == coin.to_bytes() and repr(made) == repr(coin)
    kept = Coin.unchecked(coin.output, coin.height, coin.coinbase, coin.to_bytes())
    assert kept.to_bytes() is coin.to_bytes() and kept == coin
    for obj, name in ((fast, "index"), (made, "height")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, name, 1)


@FAST
@given(S.outpoints)
def test_outpoint_key_roundtrip(outpoint):
    key = outpoint.to_bytes()
    assert len(key) == 36
    assert key[32:] == outpoint.index.to_bytes(4, "big")
    assert Outpoint.from_bytes(key) == outpoint


@FAST
@given(S.hashes32, S.u32s, S.u32s)
def test_outpoint_keys_sort_by_index(txid, a, b):
    assert (Outpoint(txid, a).to_bytes() < Outpoint(txid, b).to_bytes()) == (a < b)


@FAST
@given(S.coins)
def test_coin_roundtrip(coin):
    data = coin.to_bytes()
    decoded = Coin.from_bytes(data)
    assert decoded == coin
    assert decoded.to_bytes() == data


@FAST
@given(S.txs())
def test_tx_roundtrip(tx):
    data = tx.to_bytes()
    decoded = Tx.from_bytes(data)
    assert decoded == tx
    assert decoded.to_bytes() == data
    assert fresh_tx(decoded).to_bytes() == data
    assert decoded.txid == tx.txid
    assert decoded.size == tx.size == len(data)
    assert decoded.stripped_bytes() == tx.stripped_bytes() == data[: len(tx.stripped_bytes())]


@FAST
@given(S.headers())
def test_header_roundtrip(header):
    data = header.to_bytes()
    assert len(data) == len(header.unsealed_bytes()) + 33 + 64
    decoded = BlockHeader.from_bytes(data)
    assert decoded == header
    assert decoded.to_bytes() == data
    assert fresh_header(decoded).to_bytes() == data
    assert decoded.hash == header.hash == sha256d(data)


@settings(max_examples=60, deadline=None)
@given(S.blocks())
def test_block_roundtrip(block):
    data = block.to_bytes()
    decoded = Block.from_bytes(data)
    assert decoded == block
    assert decoded.hash == block.hash
    assert decoded.to_bytes() == data
    assert fresh_block(decoded).to_bytes() == data
    assert decoded.size == block.size == len(data)
    assert [t.txid for t in decoded.txs] == [t.txid for t in block.txs]


# -- txid ----------------------------------------------------------------------------


@FAST
@given(S.txs(), st.data())
def test_txid_ignores_witnesses(tx, data):
    new = [data.draw(S.witnesses) for _ in tx.inputs]
    resigned = tx.with_witnesses(new)
    rebuilt = Tx(
        tuple(TxIn(i.prevout, w) for i, w in zip(tx.inputs, new, strict=True)),
        tx.outputs,
        tx.lock_height,
        tx.payload,
        tx.version,
    )
    assert resigned.txid == rebuilt.txid == tx.txid == sha256d(tx.stripped_bytes())
    assert resigned.to_bytes() == rebuilt.to_bytes()
    assert resigned.sighash("o2o-test") == tx.sighash("o2o-test")
    if [i.witness for i in tx.inputs] != new:
        assert resigned.to_bytes() != tx.to_bytes()


def _other(draw, strategy, current):
    return draw(strategy.filter(lambda v: v != current))


@st.composite
def tx_and_stripped_change(draw):
    """A tx and a copy differing in exactly one field of the stripped encoding."""
    tx = draw(S.txs())
    choices = ["version", "lock_height", "payload", "add_input", "add_output"]
    if tx.inputs:
        choices += ["prevout_txid", "prevout_index", "drop_input"]
    if tx.outputs:
        choices += ["asset", "amount", "lock", "drop_output"]
    which = draw(st.sampled_from(choices))
    inputs, outputs = list(tx.inputs), list(tx.outputs)
    if which == "version":
        return tx, dataclasses.replace(tx, version=_other(draw, S.u32s, tx.version))
    if which == "lock_height":
        return tx, dataclasses.replace(tx, lock_height=_other(draw, S.u32s, tx.lock_height))
    if which == "payload":
        return tx, dataclasses.replace(tx, payload=_other(draw, S.payloads, tx.payload))
    if which == "add_input":
        inputs.insert(draw(st.integers(0, len(inputs))), draw(S.txins))
    elif which == "add_output":
        outputs.insert(draw(st.integers(0, len(outputs))), draw(S.txouts))
    elif which == "drop_input":
        del inputs[draw(st.integers(0, len(inputs) - 1))]
    elif which == "drop_output":
        del outputs[draw(st.integers(0, len(outputs) - 1))]
    elif which.startswith("prevout"):
        i = draw(st.integers(0, len(inputs) - 1))
        prev = inputs[i].prevout
        if which == "prevout_txid":
            prev = Outpoint(_other(draw, S.hashes32, prev.txid), prev.index)
        else:
            prev = Outpoint(prev.txid, _other(draw, S.u32s, prev.index))
        inputs[i] = TxIn(prev, inputs[i].witness)
    else:
        i = draw(st.integers(0, len(outputs) - 1))
        out = outputs[i]
        field = {"asset": S.assets, "amount": S.amounts, "lock": S.locks}[which]
        value = _other(draw, field, getattr(out, which))
        outputs[i] = dataclasses.replace(out, **{which: value})
    return tx, dataclasses.replace(tx, inputs=tuple(inputs), outputs=tuple(outputs))


@FAST
@given(tx_and_stripped_change())
def test_txid_changes_with_every_stripped_field(pair):
    tx, changed = pair
    assert changed.stripped_bytes() != tx.stripped_bytes()
    assert changed.txid != tx.txid
    assert changed.sighash("o2o-test") != tx.sighash("o2o-test")


# -- sighash -------------------------------------------------------------------------


@FAST
@given(S.txs(), st.text(max_size=300), st.text(max_size=300))
def test_sighash_construction_and_chain_id(tx, chain_a, chain_b):
    expected = sha256d(_var_bytes(SIGHASH_TAG) + _var_bytes(chain_a.encode()) + tx.stripped_bytes())
    assert tx.sighash(chain_a) == expected
    assert (tx.sighash(chain_a) == tx.sighash(chain_b)) == (chain_a == chain_b)
    assert tx.sighash(chain_a) != tx.txid


def test_sighash_exact_preimage_for_o2o_test():
    tx = Tx((), (), payload=Coinbase(1))
    preimage = b"\x0eo2o/sighash/v1" + b"\x08o2o-test" + tx.stripped_bytes()
    assert tx.sighash("o2o-test") == sha256d(preimage)
    # The length prefixes keep tag and chain id apart: shifting bytes between
    # them changes the digest.
    assert tx.sighash("o2o-test") != tx.sighash("o2o-tes")


# -- headers and blocks --------------------------------------------------------------


@FAST
@given(S.headers(), st.binary(min_size=33, max_size=33), st.binary(min_size=64, max_size=64))
def test_seal_changes_hash_but_not_seal_hash(header, pubkey, signature):
    resealed = dataclasses.replace(header, seal_pubkey=pubkey, seal_signature=signature)
    assert resealed.seal_hash("o2o-test") == header.seal_hash("o2o-test")
    assert resealed.unsealed_bytes() == header.unsealed_bytes()
    same_seal = (pubkey, signature) == (header.seal_pubkey, header.seal_signature)
    assert (resealed.hash == header.hash) == same_seal


@FAST
@given(S.headers(), st.text(max_size=40), st.text(max_size=40))
def test_seal_hash_construction(header, chain_a, chain_b):
    expected = sha256d(
        bytes([len(SEAL_TAG)]) + SEAL_TAG + _var_bytes(chain_a.encode()) + header.unsealed_bytes()
    )
    assert header.seal_hash(chain_a) == expected
    assert (header.seal_hash(chain_a) == header.seal_hash(chain_b)) == (chain_a == chain_b)


@FAST
@given(S.headers(), st.data())
def test_seal_hash_commits_to_unsealed_fields(header, data):
    name = data.draw(
        st.sampled_from(
            [
                "height",
                "prev_hash",
                "merkle_root",
                "time",
                "difficulty",
                "version",
                "vote",
                "checkpoint",
            ]
        )
    )
    if name == "vote":
        kind, address = data.draw(
            S.votes.filter(lambda v: v != (header.vote_kind, header.vote_address))
        )
        changed = dataclasses.replace(header, vote_kind=kind, vote_address=address)
    else:
        strategy = {
            "height": S.u32s,
            "prev_hash": S.hashes32,
            "merkle_root": S.hashes32,
            "time": S.u64s,
            "difficulty": S.u32s,
            "version": S.u32s,
            "checkpoint": S.checkpoints,
        }[name]
        value = data.draw(strategy.filter(lambda v: v != getattr(header, name)))
        changed = dataclasses.replace(header, **{name: value})
    assert changed.unsealed_bytes() != header.unsealed_bytes()
    assert changed.seal_hash("o2o-test") != header.seal_hash("o2o-test")
    assert changed.hash != header.hash


def test_header_layout_sizes():
    base = BlockHeader(0, bytes(32), bytes(32), 0)
    # 4 + 4 + 32 + 32 + 8 + 4 + 1 (vote kind) + 1 (checkpoint count)
    assert len(base.unsealed_bytes()) == 86
    voted = dataclasses.replace(base, vote_kind=1, vote_address=b"\x01" * 20)
    assert len(voted.unsealed_bytes()) == 86 + 20
    epoch = dataclasses.replace(base, checkpoint=(b"\x01" * 20, b"\x02" * 20))
    assert len(epoch.unsealed_bytes()) == 86 + 40
    assert len(base.to_bytes()) == 86 + 97
    assert base.seal_pubkey == bytes(33) and base.seal_signature == bytes(64)


# -- merkle root ----------------------------------------------------------------------


def _leaf(txid: bytes) -> bytes:
    return sha256d(b"\x00" + txid)


def _node(left: bytes, right: bytes) -> bytes:
    return sha256d(b"\x01" + left + right)


def _reference_root(leaves: list[bytes]) -> bytes:
    """Independent, bottom-up restatement of the documented rule: pair from the
    left at each level, an odd last node moves up unchanged (never duplicated)."""
    if not leaves:
        return bytes(32)
    level = [_leaf(x) for x in leaves]
    while len(level) > 1:
        nxt = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def test_merkle_small_cases():
    a, b, c, d = (bytes([i]) * 32 for i in range(1, 5))
    la, lb, lc, ld = map(_leaf, (a, b, c, d))
    assert merkle_root([]) == bytes(32)
    assert merkle_root([a]) == la != a
    ab = _node(la, lb)
    assert merkle_root([a, b]) == ab
    assert merkle_root([a, b, c]) == _node(ab, lc)
    cd = _node(lc, ld)
    assert merkle_root([a, b, c, d]) == _node(ab, cd)
    # five leaves: the left subtree takes the largest power of two below 5
    e = b"\x05" * 32
    assert merkle_root([a, b, c, d, e]) == _node(merkle_root([a, b, c, d]), _leaf(e))


def test_merkle_leaf_cannot_pose_as_inner_node():
    """A txid equal to an inner node of another list does not give the same root."""
    a, b = bytes([1]) * 32, bytes([2]) * 32
    forged = merkle_root([a, b])
    assert merkle_root([forged]) != merkle_root([a, b])


def test_merkle_no_duplicate_padding():
    a, b, c = (bytes([i]) * 32 for i in range(1, 4))
    assert merkle_root([a, b, c]) != merkle_root([a, b, c, c])
    assert merkle_root([a, b]) != merkle_root([a, b, b])


@settings(max_examples=80, deadline=None)
@given(st.lists(S.hashes32, max_size=40))
def test_merkle_matches_reference(leaves):
    assert merkle_root(leaves) == _reference_root(leaves)


@settings(max_examples=40, deadline=None)
@given(S.blocks())
def test_block_compute_merkle_root(block):
    if block.header.version >= 2:
        # Version 2 commits to the tx root together with the vote and evidence roots.
        from o2ocli.core.block import block_commitment

        assert block.compute_merkle_root() == block_commitment(
            2, block.txs, block.votes, block.evidence)
        assert block.compute_merkle_root() != tx_merkle_root(block.txs)
        return
    assert block.compute_merkle_root() == tx_merkle_root(block.txs)
    assert block.compute_merkle_root() == merkle_root([t.wtxid for t in block.txs])
    if any(i.witness for t in block.txs for i in t.inputs):
        # The root commits to witnesses: it is not the root over the txids.
        assert block.compute_merkle_root() != merkle_root([t.txid for t in block.txs])


# -- constructors refuse values that have no encoding ---------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: Outpoint(bytes(31), 0),
        lambda: Outpoint(bytes(32), MAX_U32 + 1),
        lambda: SigPair(bytes(32), bytes(64)),
        lambda: SigPair(bytes(33), bytes(65)),
        lambda: TxOut(NATIVE_ASSET, MAX_U64 + 1, PayToAddress(bytes(20))),
        lambda: TxOut(NATIVE_ASSET, -1, PayToAddress(bytes(20))),
        lambda: PayToAddress(bytes(19)),
        lambda: Multisig(0, (bytes(20),)),
        lambda: Multisig(2, (bytes(20),)),
        lambda: Multisig(1, ()),
        lambda: Multisig(1, tuple(bytes([i]) * 20 for i in range(16))),
        lambda: Multisig(1, (b"\x02" * 20, b"\x01" * 20)),
        lambda: Multisig.of(1, [b"\x01" * 20, b"\x01" * 20]),
        lambda: Coinbase(MAX_U32 + 1),
        lambda: GenesisAlloc(bytes(257)),
        lambda: Tx((), (), lock_height=MAX_U32 + 1),
        lambda: BlockHeader(0, bytes(32), bytes(32), 0, vote_kind=3),
        lambda: BlockHeader(0, bytes(32), bytes(32), 0, vote_address=b"\x01" * 20),
        lambda: BlockHeader(0, bytes(32), bytes(32), 0, checkpoint=(bytes(20),) * 256),
    ],
)
def test_constructors_refuse_unencodable_values(build):
    with pytest.raises(ValueError):
        build()


def test_multisig_of_sorts():
    hashes = [b"\x03" * 20, b"\x01" * 20, b"\x02" * 20]
    lock = Multisig.of(2, hashes)
    assert lock.pubkey_hashes == tuple(sorted(hashes))
    assert lock.addresses() == lock.pubkey_hashes


def test_coinbase_detection():
    assert Tx((), (), payload=Coinbase(5)).is_coinbase
    assert not Tx((), (), payload=NO_PAYLOAD).is_coinbase
    assert not Tx((TxIn(Outpoint(bytes(32), 0)),), (), payload=Coinbase(5)).is_coinbase


def test_domain_preimage_is_var_bytes_tag_var_bytes_chain_id_then_data():
    """The joined fast form equals the Writer form, also for lengths that
    need a three-byte varint."""
    from o2ocli.core.encoding import Writer, domain_preimage

    for tag, chain_id in ((b"o2o/sighash", "o2o-main"), (b"t" * 300, "c"), (b"x", "é" * 200)):
        w = Writer()
        w.var_bytes(tag)
        w.var_bytes(chain_id.encode())
        w.raw(b"payload")
        assert domain_preimage(tag, chain_id, b"payload") == w.getvalue()

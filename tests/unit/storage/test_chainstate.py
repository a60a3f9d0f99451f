"""Chainstate on a real LevelDB: connect, disconnect, reorg, reopen, indexes."""

from __future__ import annotations

import pytest

from o2ocli.consensus.errors import BlockInvalid
from o2ocli.consensus.params import ConsensusParams
from o2ocli.core.block import Block, BlockHeader, tx_merkle_root
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, SigPair, Tx, TxIn, TxOut
from o2ocli.crypto.muhash import MuHash3072
from o2ocli.storage import ChainState, ChainStateError, Database, DatabaseLocked, schema
from o2ocli.storage.chainstate import STATUS_INVALID
from o2ocli.testing.chaingen import (
    ChainGenerator,
    deterministic_key,
    make_block,
    make_genesis,
    p2a,
    sign_tx,
)


@pytest.fixture
def gen() -> ChainGenerator:
    return ChainGenerator("o2o-test", n_keys=10, coins_per_key=4)


@pytest.fixture
def params() -> ConsensusParams:
    return ConsensusParams("o2o-test")


def open_state(path, gen, params) -> ChainState:
    return ChainState(Database(path), params, gen.genesis)


def fresh_hash(tmp_path, name, gen, params, blocks) -> bytes:
    """UTXO hash of a fresh chainstate that connected exactly ``blocks``."""
    state = open_state(tmp_path / name, gen, params)
    for block in blocks:
        state.add_block(block)
    digest = state.utxo_set_hash()
    state.db.close()
    return digest


def with_bad_signature(block: Block) -> Block:
    """A copy of ``block`` whose last tx carries a corrupted signature (same txids;
    the header's merkle root is recomputed, since it commits to witnesses)."""
    tx = block.txs[-1]
    pair = tx.inputs[0].witness[0]
    sig = bytearray(pair.signature)
    sig[10] ^= 1
    bad_inputs = (TxIn(tx.inputs[0].prevout, (SigPair(pair.pubkey, bytes(sig)),)),)
    bad_tx = Tx(bad_inputs + tx.inputs[1:], tx.outputs, tx.lock_height, tx.payload)
    txs = block.txs[:-1] + (bad_tx,)
    h = block.header
    header = BlockHeader(h.height, h.prev_hash, tx_merkle_root(txs), h.time, h.difficulty)
    return Block(header, txs)


def test_witness_malleated_copy_does_not_poison_the_genuine_block(tmp_path, gen, params):
    """Same header, one corrupted signature: refused on the merkle root, never
    stored, so the genuine block (same hash) is still accepted afterwards."""
    state = open_state(tmp_path / "db", gen, params)
    block = gen.next_block(4)
    tx = block.txs[-1]
    pair = tx.inputs[0].witness[0]
    bad_sig = bytes([pair.signature[0] ^ 1]) + pair.signature[1:]
    bad_tx = Tx((TxIn(tx.inputs[0].prevout, (SigPair(pair.pubkey, bad_sig),)),) + tx.inputs[1:],
                tx.outputs, tx.lock_height, tx.payload)
    forged = Block(block.header, block.txs[:-1] + (bad_tx,))
    assert forged.hash == block.hash
    with pytest.raises(BlockInvalid) as err:
        state.add_block(forged)
    assert err.value.reason == "bad-txnmrklroot"
    assert state.get_index(block.hash) is None
    assert state.add_block(block)
    assert state.tip.hash == block.hash


def test_genesis_creates_its_outputs(tmp_path, gen, params):
    state = open_state(tmp_path / "db", gen, params)
    stats = state.utxo_stats()
    assert state.height == 0
    assert state.tip.hash == gen.genesis.hash
    assert stats.count == 40
    assert stats.totals == {NATIVE_ASSET: 40 * 1_000_000_000}


def test_connect_then_disconnect_all_restores_genesis_utxo_hash(tmp_path, gen, params):
    state = open_state(tmp_path / "db", gen, params)
    genesis_hash = state.utxo_set_hash()
    blocks = [gen.next_block(8) for _ in range(12)]
    for block in blocks:
        assert state.add_block(block)
    assert state.height == 12
    connected_hash = state.utxo_set_hash()
    assert connected_hash != genesis_hash
    for block in reversed(blocks):
        assert state.disconnect_tip().hash == block.hash
    assert state.height == 0
    assert state.utxo_set_hash() == genesis_hash
    for block in blocks:
        state.add_block(block)
    assert state.utxo_set_hash() == connected_hash


def test_reopen_finds_the_same_state(tmp_path, gen, params):
    state = open_state(tmp_path / "db", gen, params)
    for _ in range(5):
        state.add_block(gen.next_block(6))
    tip, digest = state.tip.hash, state.utxo_set_hash()
    state.db.close()
    again = open_state(tmp_path / "db", gen, params)
    assert again.tip.hash == tip
    assert again.height == 5
    assert again.utxo_set_hash() == digest


def test_database_of_another_chain_is_refused(tmp_path, gen, params):
    open_state(tmp_path / "db", gen, params).db.close()
    other = ChainGenerator("o2o-test", seed=b"other", n_keys=3)
    with pytest.raises(ChainStateError, match="another chain"):
        open_state(tmp_path / "db", other, params)


def test_second_open_of_same_database_is_locked(tmp_path, gen, params):
    state = open_state(tmp_path / "db", gen, params)
    with pytest.raises(DatabaseLocked, match="in use"):
        Database(tmp_path / "db")
    state.db.close()


def test_invalid_block_changes_nothing(tmp_path, gen, params):
    state = open_state(tmp_path / "db", gen, params)
    state.add_block(gen.next_block(4))
    before = (state.tip.hash, state.utxo_set_hash())
    bad = with_bad_signature(gen.next_block(4))
    with pytest.raises(BlockInvalid) as err:
        state.add_block(bad)
    assert err.value.reason == "bad-txns-signature"
    assert (state.tip.hash, state.utxo_set_hash()) == before
    assert state.get_block(bad.hash) is None
    assert state.get_index(bad.hash) is None


def test_unknown_parent_is_refused(tmp_path, gen, params):
    state = open_state(tmp_path / "db", gen, params)
    gen.next_block(2)
    orphan = gen.next_block(2)
    with pytest.raises(ChainStateError, match="unknown"):
        state.add_block(orphan)
    assert state.height == 0


def test_block_with_wrong_height_is_refused(tmp_path, gen, params):
    state = open_state(tmp_path / "db", gen, params)
    block = gen.next_block(2)
    h = block.header
    wrong = Block(BlockHeader(5, h.prev_hash, h.merkle_root, h.time, h.difficulty), block.txs)
    with pytest.raises(BlockInvalid) as err:
        state.add_block(wrong)
    assert err.value.reason == "bad-blk-height"


def test_heavier_branch_wins_and_matches_a_fresh_node(tmp_path, gen, params):
    state = open_state(tmp_path / "db", gen, params)
    common = gen.next_block(5)
    state.add_block(common)
    other = gen.fork()
    branch_a = [gen.next_block(5) for _ in range(3)]
    other.fee += 1  # different txs on the other branch
    branch_b = [other.next_block(5) for _ in range(4)]
    for block in branch_a:
        state.add_block(block)
    assert state.tip.hash == branch_a[-1].hash
    a_txid = branch_a[0].txs[1].txid
    assert state.get_tx(a_txid) is not None
    changed = [bool(state.add_block(block)) for block in branch_b]
    assert changed == [False, False, False, True]
    assert state.tip.hash == branch_b[-1].hash
    assert state.height == 5
    assert state.get_tx(a_txid) is None
    assert state.get_tx(branch_b[0].txs[1].txid)[2] == 2
    assert state.utxo_set_hash() == fresh_hash(tmp_path, "ref", gen, params, [common, *branch_b])


def test_equal_difficulty_branch_does_not_replace_tip(tmp_path, gen, params):
    state = open_state(tmp_path / "db", gen, params)
    other = gen.fork()
    other.fee += 1
    a = gen.next_block(3)
    b = other.next_block(3)
    assert state.add_block(a)
    assert not state.add_block(b)
    assert state.tip.hash == a.hash
    assert state.get_block(b.hash) == b


def test_reorg_to_branch_with_invalid_block_restores_old_branch(tmp_path, gen, params):
    state = open_state(tmp_path / "db", gen, params)
    other = gen.fork()
    other.fee += 1
    branch_a = [gen.next_block(4) for _ in range(2)]
    for block in branch_a:
        state.add_block(block)
    before = (state.tip.hash, state.utxo_set_hash())
    b1 = other.next_block(4)
    b2 = with_bad_signature(other.next_block(4))
    raw3 = other.next_block(4)
    payments = raw3.txs[1:]  # fee claim first
    b3 = make_block(b2.header, payments, fees=other.fee * len(payments),
                    fee_lock=p2a(other.miner))
    assert not state.add_block(b1)
    assert not state.add_block(b2)  # equal weight: stored, not yet connected
    with pytest.raises(BlockInvalid) as err:
        state.add_block(b3)
    assert err.value.reason == "bad-txns-signature"
    assert (state.tip.hash, state.utxo_set_hash()) == before
    assert state.get_index(b2.hash).status == STATUS_INVALID
    assert state.get_index(b3.hash).status == STATUS_INVALID
    # A block on top of the invalid one is refused at once.
    with pytest.raises(BlockInvalid) as err:
        state.add_block(make_block(b3.header, []))
    assert err.value.reason == "bad-prevblk"
    # The old branch keeps growing normally.
    assert state.add_block(gen.next_block(2))


def test_reopen_finishes_an_interrupted_reorg(tmp_path, gen, params):
    state = open_state(tmp_path / "db", gen, params)
    blocks = [gen.next_block(4) for _ in range(4)]
    for block in blocks:
        state.add_block(block)
    digest = state.utxo_set_hash()
    # Simulate a crash in the middle of a reorg: two blocks disconnected, the
    # best-block pointer still names the old tip.
    state._disconnect_tip()
    state._disconnect_tip()
    assert state.height == 2
    state.db.close()
    again = open_state(tmp_path / "db", gen, params)
    assert again.tip.hash == blocks[-1].hash
    assert again.utxo_set_hash() == digest


def test_in_block_chain_of_spends_connects_and_disconnects(tmp_path, gen, params):
    state = open_state(tmp_path / "db", gen, params)
    genesis_hash = state.utxo_set_hash()
    middle = deterministic_key(b"middle", 0)
    coin = gen.pool.popleft()
    amount = coin.output.amount
    first = Tx((TxIn(coin.outpoint),), (TxOut(NATIVE_ASSET, amount - 100, p2a(middle)),))
    first = sign_tx(first, [[coin.key]], gen.chain_id)
    dest = p2a(deterministic_key(b"dest", 0))
    second = Tx((TxIn(Outpoint(first.txid, 0)),), (TxOut(NATIVE_ASSET, amount - 300, dest),))
    second = sign_tx(second, [[middle]], gen.chain_id)
    block = make_block(gen.tip, [first, second], fees=300, fee_lock=p2a(gen.miner))
    state.add_block(block)
    assert state.get(Outpoint(first.txid, 0)) is None
    assert state.get(Outpoint(second.txid, 0)).output.amount == coin.output.amount - 300
    history = state.address_history(middle.public_key.hash160())
    assert {txid for _, txid in history} == {first.txid, second.txid}
    state.disconnect_tip()
    assert state.utxo_set_hash() == genesis_hash
    assert state.address_history(middle.public_key.hash160()) == []


def test_address_index_follows_spends_and_disconnects(tmp_path, gen, params):
    state = open_state(tmp_path / "db", gen, params)
    key = gen.keys[0]
    address = key.public_key.hash160()
    initial = {op for op, _ in state.address_coins(address)}
    assert len(initial) == 4
    block = gen.next_block(10)
    state.add_block(block)
    now = {op for op, _ in state.address_coins(address)}
    expected = set(initial)
    for tx in block.txs:
        for txin in tx.inputs:
            expected.discard(txin.prevout)
        for index, out in enumerate(tx.outputs):
            if out.lock == p2a(key):
                expected.add(Outpoint(tx.txid, index))
    assert now == expected
    assert now != initial
    assert all(height in (0, 1) for height, _ in state.address_history(address))
    state.disconnect_tip()
    assert {op for op, _ in state.address_coins(address)} == initial


def test_write_batch_is_all_or_nothing(tmp_path):
    with Database(tmp_path / "db") as db:
        with pytest.raises(RuntimeError):
            with db.write_batch() as batch:
                batch.put(b"x1", b"1")
                raise RuntimeError("crash in the middle")
        assert db.get(b"x1") is None
        with db.write_batch() as batch:
            batch.put(b"x1", b"1")
            batch.put(b"x2", b"2")
        assert (db.get(b"x1"), db.get(b"x2")) == (b"1", b"2")


def test_utxo_hash_independent_of_insertion_order(tmp_path, params):
    """Two chains creating the same coins in a different order hash the same."""
    key = deterministic_key(b"order", 0)
    outs = [TxOut(NATIVE_ASSET, 1000 + i, p2a(key)) for i in range(5)]
    g1 = make_genesis("o2o-test", outs)
    s1 = ChainState(Database(tmp_path / "a"), params, g1)
    stats = s1.utxo_stats()
    assert stats.count == 5
    # Same set of entries, written again in reverse order through a batch.
    with Database(tmp_path / "b") as db:
        with db.write_batch() as batch:
            for key_, value in reversed(list(s1.db.iterate(schema.UTXO))):
                batch.put(key_, value)
    # The stored commitment is the MuHash of the entries, added in any order.
    acc = MuHash3072()
    for key_, value in reversed(list(s1.db.iterate(schema.UTXO))):
        acc.insert(key_[1:] + value)
    assert acc.digest() == stats.hash
    assert s1.scan_utxo_stats() == stats


def test_reorg_reports_disconnected_and_connected_blocks(tmp_path, gen, params):
    state = open_state(tmp_path / "db", gen, params)
    other = gen.fork()
    other.fee += 1
    a = [gen.next_block(3) for _ in range(2)]
    b = [other.next_block(3) for _ in range(3)]
    for block in a:
        assert state.add_block(block).connected == (block,)
    assert not state.add_block(b[0])
    assert not state.add_block(b[1])
    change = state.add_block(b[2])
    assert [blk.hash for blk in change.disconnected] == [a[1].hash, a[0].hash]
    assert [blk.hash for blk in change.connected] == [blk.hash for blk in b]


def test_no_reorg_below_the_finalized_height(tmp_path, gen, params):
    state = open_state(tmp_path / "db", gen, params)
    other = gen.fork()
    other.fee += 1
    a = [gen.next_block(3) for _ in range(3)]
    for block in a:
        state.add_block(block)
    state.finalized_height = 2
    before = state.utxo_set_hash()
    for block in [other.next_block(3) for _ in range(5)]:
        assert not state.add_block(block)
    assert state.tip.hash == a[-1].hash
    assert state.utxo_set_hash() == before


def test_a_tip_below_the_finalized_block_catches_up_only_along_it(tmp_path, gen, params):
    """After a crash the UTXO cache's last flush can leave the tip below the
    finalized block: extending the tip is allowed only through (or towards)
    that block, never onto a branch that leaves it out."""
    state = open_state(tmp_path / "db", gen, params)
    first = gen.next_block(3)
    assert state.add_block(first).connected == (first,)
    other = gen.fork()
    other.fee += 1
    a = [gen.next_block(3) for _ in range(2)]
    b = [other.next_block(3) for _ in range(4)]
    state.finalized_height, state.finalized_hash = 2, a[0].hash
    for block in b:  # longer, extends the tip, but leaves out the finalized block
        assert not state.add_block(block)
    assert state.tip.hash == first.hash
    assert state.add_block(a[0]).connected == (a[0],)  # towards and onto it
    assert state.add_block(a[1]).connected == (a[1],)
    assert state.tip.hash == a[1].hash


def test_restart_after_crash_mid_reorg_onto_invalid_branch_returns_to_old_tip(
    tmp_path, gen, params
):
    """The process dies while connecting an invalid block of a heavier branch
    (the old branch's blocks were only in memory).  On restart the invalid
    block is found and marked, and the node goes back to the old, valid tip."""
    state = open_state(tmp_path / "db", gen, params)
    other = gen.fork()
    other.fee += 1
    for block in [gen.next_block(4) for _ in range(2)]:
        state.add_block(block)
    old_tip, old_hash = state.tip.hash, state.utxo_set_hash()
    b1 = other.next_block(4)
    b2 = with_bad_signature(other.next_block(4))
    raw3 = other.next_block(4)
    b3 = make_block(b2.header, raw3.txs[1:], fees=other.fee * (len(raw3.txs) - 1),
                    fee_lock=p2a(other.miner))
    state.add_block(b1)
    state.add_block(b2)
    real_connect = state._connect

    def dies_on_b2(block, entry, **kw):
        if block.hash == b2.hash:
            raise KeyboardInterrupt("power cut")
        return real_connect(block, entry, **kw)

    state._connect = dies_on_b2
    with pytest.raises(KeyboardInterrupt):
        state.add_block(b3)
    state.db.close()
    db = Database(tmp_path / "db")
    with pytest.raises(BlockInvalid):
        ChainState(db, params, gen.genesis)  # finds b2 invalid and marks it
    again = ChainState(db, params, gen.genesis)
    assert again.tip.hash == old_tip
    assert again.utxo_set_hash() == old_hash
    assert again.get_index(b2.hash).status == STATUS_INVALID
    assert again.get_index(b3.hash).status == STATUS_INVALID


def test_get_tx_reads_one_transaction_by_offset(tmp_path, gen, params):
    state = open_state(tmp_path / "db", gen, params)
    blocks = [gen.next_block(12) for _ in range(3)]
    for block in blocks:
        state.add_block(block)
    for block in blocks:
        for tx in block.txs:
            found, block_hash, height = state.get_tx(tx.txid)
            assert found.to_bytes() == tx.to_bytes()
            assert (block_hash, height) == (block.hash, block.height)
            assert state.has_tx(tx.txid)
    assert state.get_tx(bytes(32)) is None
    # After a disconnect the index forgets the block's transactions.
    state.disconnect_tip()
    assert all(state.get_tx(t.txid) is None for t in blocks[-1].txs)

"""The write-back UTXO cache (o2ocli.storage.coincache) on a real LevelDB."""

from __future__ import annotations

import os
import random
from contextlib import contextmanager

import pytest

from o2ocli.consensus.errors import BlockInvalid
from o2ocli.consensus.params import ConsensusParams
from o2ocli.core.block import Block, BlockHeader, tx_merkle_root
from o2ocli.core.tx import SigPair, Tx, TxIn
from o2ocli.crypto.batch import STREAM_CHUNK, ProcessVerifier
from o2ocli.storage import ChainState, Database, schema
from o2ocli.storage.coincache import CachedDatabase
from o2ocli.testing.chaingen import ChainGenerator

SEED = int(os.environ.get("O2O_TEST_SEED", "2026"))


@pytest.fixture
def params() -> ConsensusParams:
    return ConsensusParams("o2o-test")


class RecordingDatabase(Database):
    """A real LevelDB that also records every key any batch wrote or deleted."""

    def __init__(self, path) -> None:
        super().__init__(path)
        self.touched: set[bytes] = set()

    @contextmanager
    def write_batch(self, *, sync: bool = True):
        with super().write_batch(sync=sync) as batch:
            touched = self.touched

            class Spy:
                def put(self, key: bytes, value: bytes) -> None:
                    touched.add(key)
                    batch.put(key, value)

                def delete(self, key: bytes) -> None:
                    touched.add(key)
                    batch.delete(key)

            yield Spy()


def dump(db: Database) -> dict[bytes, bytes]:
    return dict(db.iterate(b""))


def test_merged_iteration_matches_a_plain_database(tmp_path):
    rng = random.Random(SEED)
    with Database(tmp_path / "plain") as plain, Database(tmp_path / "base") as base:
        cached = CachedDatabase(base, limit=1 << 30)
        # Not UTXO prefixes: these keys are overwritten while on disk, which a
        # coin never is (that is what lets the cache mark new coins fresh).
        keys = [bytes([rng.choice(b"xyz")]) + rng.randbytes(2) for _ in range(300)]
        for round_ in range(4):
            ops = [(key, None if rng.random() < 0.3 else rng.randbytes(3))
                   for key in rng.sample(keys, 120)]
            with plain.write_batch() as batch:
                for key, value in ops:
                    batch.put(key, value) if value is not None else batch.delete(key)
            with cached.cached_batch() as batch:
                for key, value in ops:
                    batch.put(key, value) if value is not None else batch.delete(key)
            if round_ == 1:
                cached.flush()  # some changes on disk, the later ones in the cache
            for prefix in (b"", b"x", b"y", b"z", b"w", keys[0][:2]):
                for reverse in (False, True):
                    assert list(cached.iterate(prefix, reverse=reverse)) == list(
                        plain.iterate(prefix, reverse=reverse)), (SEED, prefix, reverse)
                assert list(cached.iterate_keys(prefix)) == list(plain.iterate_keys(prefix))
            for key in keys:
                assert cached.get(key) == plain.get(key)
        cached.flush()
        assert dump(base) == dump(plain)


def test_coin_created_and_spent_between_flushes_never_touches_the_disk(tmp_path, params):
    gen = ChainGenerator("o2o-test", n_keys=4, coins_per_key=1, fee=1)
    db = RecordingDatabase(tmp_path / "db")
    state = ChainState(db, params, gen.genesis, dbcache=1 << 30)
    first = gen.next_block(3, claim_fees=False)  # spends genesis coins, creates new ones
    created = [schema.UTXO + tx.txid + i.to_bytes(4, "big")
               for tx in first.txs for i in range(len(tx.outputs))]
    state.add_block(first)
    # The FIFO pool spends the first block's coins next.
    blocks = [gen.next_block(3, claim_fees=False) for _ in range(4)]
    for block in blocks:
        state.add_block(block)
    spent_again = [key for key in created if state.db.get(key) is None]
    assert spent_again, "the generator should have spent some of the first block's coins"
    db.touched.clear()
    state.flush()
    assert not db.touched.intersection(spent_again)
    assert schema.META_TIP in db.touched
    # And the disk now holds exactly what a write-through chainstate holds.
    ref = ChainState(Database(tmp_path / "ref"), params, gen.genesis)
    for block in [first, *blocks]:
        ref.add_block(block)
    assert dump(db) == dump(ref.db)
    ref.db.close()
    db.close()


def test_random_connects_and_reorgs_give_the_same_database_as_write_through(tmp_path, params):
    """Seeded: branches, reorgs, rewinds and flushes at arbitrary points; the
    cached chainstate reads like the write-through one at every step and, once
    flushed, its LevelDB is byte for byte the same."""
    rng = random.Random(SEED)
    gen = ChainGenerator("o2o-test", n_keys=10, coins_per_key=3, fee=1)
    plain = ChainState(Database(tmp_path / "plain"), params, gen.genesis)
    cached = ChainState(Database(tmp_path / "cached"), params, gen.genesis, dbcache=40_000)
    gens = [gen]
    for step in range(40):
        action = rng.random()
        g = rng.choice(gens)
        if action < 0.15 and len(gens) < 4:
            gens.append(g.fork())
            continue
        if action < 0.22 and plain.height > 1:
            assert plain.disconnect_tip().hash == cached.disconnect_tip().hash
            continue
        block = g.next_block(rng.randint(1, 8), claim_fees=False)
        for state in (plain, cached):
            try:
                change = state.add_block(block)
            except Exception as exc:  # noqa: BLE001 - both must fail alike
                change = type(exc).__name__
            if state is plain:
                expected = change
        assert repr(change) == repr(expected), (SEED, step)
        assert cached.tip.hash == plain.tip.hash, (SEED, step)
        assert cached.utxo_set_hash() == plain.utxo_set_hash(), (SEED, step)
        if rng.random() < 0.2:
            cached.flush()
    assert cached.cache is not None and cached.cache.flushes > 0  # it did overflow
    cached.flush()
    assert dump(cached.cache.db) == dump(plain.db), SEED
    plain.db.close()
    cached.cache.close()


def test_streamed_parallel_connect_gives_the_same_database_as_the_serial_path(tmp_path, params):
    """ProcessVerifier (signatures verified in a worker process while the
    block's other rules are checked) with the UTXO cache, against the serial
    verifier writing through: byte-identical LevelDBs, and a block with one
    bad signature refused alike."""
    gen = ChainGenerator("o2o-test", n_keys=40, coins_per_key=10, fee=1)
    blocks = [gen.next_block(200, claim_fees=False) for _ in range(4)]
    assert sum(len(i.witness) for t in blocks[0].txs for i in t.inputs) > STREAM_CHUNK
    bad = with_bad_signature(gen.next_block(200, claim_fees=False))
    verifier = ProcessVerifier(1)
    try:
        serial = ChainState(Database(tmp_path / "serial"), params, gen.genesis)
        parallel = ChainState(Database(tmp_path / "parallel"), params, gen.genesis,
                              verifier=verifier, dbcache=1 << 24)
        for state in (serial, parallel):
            for block in blocks:
                state.add_block(block)
            with pytest.raises(BlockInvalid) as err:
                state.add_block(bad)
            assert err.value.reason == "bad-txns-signature"
        assert verifier._pool is not None  # the worker process did verify
        parallel.flush()
        assert dump(parallel.cache.db) == dump(serial.db)
    finally:
        verifier.close()
        serial.db.close()
        parallel.cache.close()


def with_bad_signature(block: Block) -> Block:
    """``block`` with its last tx's first signature corrupted (merkle root redone)."""
    tx = block.txs[-1]
    pair = tx.inputs[0].witness[0]
    sig = bytes([pair.signature[0] ^ 1]) + pair.signature[1:]
    inputs = (TxIn(tx.inputs[0].prevout, (SigPair(pair.pubkey, sig),)),) + tx.inputs[1:]
    txs = (*block.txs[:-1], Tx(inputs, tx.outputs, tx.lock_height, tx.payload))
    h = block.header
    return Block(BlockHeader(h.height, h.prev_hash, tx_merkle_root(txs), h.time, h.difficulty),
                 txs)

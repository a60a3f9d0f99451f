"""The UTXO cache's background flush (o2ocli.storage.coincache): a flushing
layer read between the live cache and the disk, written by one writer thread,
on a real LevelDB.  A test-only subclass holds the writer on an Event so a
test can look at the cache while a flush is under way."""

from __future__ import annotations

import logging
import os
import random
import threading

import pytest

from o2ocli.consensus.params import ConsensusParams
from o2ocli.storage import ChainState, Database, schema
from o2ocli.storage import chainstate as chainstate_module
from o2ocli.storage.coincache import CachedDatabase, FlushFailed
from o2ocli.testing.chaingen import ChainGenerator

SEED = int(os.environ.get("O2O_TEST_SEED", "2026"))
HOLD_LIMIT = 30.0
"""Seconds a held writer waits for its release before it gives up (fails)."""


class HeldCache(CachedDatabase):
    """A real cache whose next writer thread, after :meth:`hold`, waits at
    its start for :attr:`release` (and sets :attr:`holding` when it got there).
    The owner waiting for the writer releases it (else it would wait forever)."""

    def __init__(self, db: Database, limit: int) -> None:
        super().__init__(db, limit)
        self.release = threading.Event()
        self.release.set()
        self.holding = threading.Event()
        self._hold_next = False
        self._held = self._taken = False

    def hold(self) -> None:
        self.release.clear()
        self.holding.clear()
        self._hold_next = True

    def unhold(self) -> None:
        self._hold_next = self._taken = False
        self.release.set()

    def flush_in_background(self) -> None:
        self.wait()
        if self._hold_next and self.entries:
            self._hold_next = False
            self._held = self._taken = True  # read by the writer this call starts
        super().flush_in_background()

    def wait(self) -> None:
        if self._taken and self._writer is not None:  # the held writer is running
            self._taken = False
            self.release.set()
        super().wait()

    def _before_write(self) -> None:
        if self._held:
            self._held = False
            self.holding.set()
            if not self.release.wait(HOLD_LIMIT):
                raise TimeoutError("the test never released the writer")


class FailingCache(CachedDatabase):
    def _before_write(self) -> None:
        raise OSError(28, "No space left on device")


def dump(db: Database) -> dict[bytes, bytes]:
    return dict(db.iterate(b""))


def utxo_key(n: int) -> bytes:
    return schema.UTXO + n.to_bytes(36, "big")


def test_a_key_being_flushed_reads_from_the_flushing_layer(tmp_path):
    with Database(tmp_path / "db") as db:
        cache = HeldCache(db, limit=1 << 30)
        with cache.cached_batch() as batch:
            batch.put(b"xa", b"1")
            batch.put(b"xb", b"2")
            batch.put(utxo_key(1), b"coin")
        cache.hold()
        cache.flush_in_background()
        assert cache.holding.wait(HOLD_LIMIT)
        assert cache.flushing and cache.entries == 0  # the live cache starts empty
        assert db.get(b"xa") is None  # not written yet
        assert cache.get(b"xa") == b"1" and cache.get(utxo_key(1)) == b"coin"
        # The live cache wins over the layer; a None there hides the layer's key.
        with cache.cached_batch() as batch:
            batch.put(b"xa", b"3")
            batch.delete(b"xb")
            batch.put(b"xc", b"4")
        assert cache.get(b"xa") == b"3" and cache.get(b"xb") is None
        assert list(cache.iterate(b"x")) == [(b"xa", b"3"), (b"xc", b"4")]
        assert list(cache.iterate(b"x", reverse=True)) == [(b"xc", b"4"), (b"xa", b"3")]
        assert list(cache.iterate_keys(b"")) == [utxo_key(1), b"xa", b"xc"]
        cache.release.set()
        cache.wait()
        assert not cache.flushing
        assert dump(db) == {b"xa": b"1", b"xb": b"2", utxo_key(1): b"coin"}  # the layer's batch
        assert cache.get(b"xa") == b"3" and list(cache.iterate_keys(b"x")) == [b"xa", b"xc"]
        cache.close()
    with Database(tmp_path / "db") as db:
        assert dump(db) == {b"xa": b"3", b"xc": b"4", utxo_key(1): b"coin"}


def test_a_coin_created_in_the_flushing_layer_and_spent_live_is_deleted_on_disk(tmp_path):
    """The live cache starts with no fresh flags: a coin of the flushing layer,
    spent, restored (a reorg) and spent again in the live cache must be written
    as a deletion, not forgotten."""
    with Database(tmp_path / "db") as db:
        cache = HeldCache(db, limit=1 << 30)
        with cache.cached_batch() as batch:
            batch.put(utxo_key(1), b"coin1")  # fresh: never on disk
            batch.put(utxo_key(2), b"coin2")
        cache.hold()
        cache.flush_in_background()
        assert cache.holding.wait(HOLD_LIMIT)
        with cache.cached_batch() as batch:
            batch.delete(utxo_key(1))
            batch.delete(utxo_key(2))
        with cache.cached_batch() as batch:
            batch.put(utxo_key(2), b"coin2")  # a disconnect restores it
        with cache.cached_batch() as batch:
            batch.delete(utxo_key(2))  # and it is spent again
            batch.put(utxo_key(3), b"coin3")  # fresh in the live cache
        with cache.cached_batch() as batch:
            batch.delete(utxo_key(3))  # created and spent live: never written
        assert cache.get(utxo_key(1)) is None and cache.get(utxo_key(2)) is None
        assert list(cache.iterate(schema.UTXO)) == []
        cache.release.set()
        cache.flush()
        assert dump(db) == {}


def test_a_direct_write_of_a_key_being_flushed_waits_for_that_flush(tmp_path):
    """The background batch holds an older value: written after the direct
    batch, it would win.  The direct write waits for the flush instead."""
    with Database(tmp_path / "db") as db:
        cache = HeldCache(db, limit=1 << 30)
        with cache.cached_batch() as batch:
            batch.put(b"ma", b"old")
        cache.hold()
        cache.flush_in_background()
        assert cache.holding.wait(HOLD_LIMIT)
        with cache.write_batch() as batch:  # waits for (and so releases) the writer
            batch.put(b"ma", b"new")
        cache.wait()
        assert db.get(b"ma") == b"new" and cache.get(b"ma") == b"new"
        cache.close()


def test_an_explicit_flush_and_close_wait_for_the_background_flush(tmp_path):
    with Database(tmp_path / "db") as db:
        cache = HeldCache(db, limit=1 << 30)
        with cache.cached_batch() as batch:
            batch.put(b"xa", b"1")
        cache.hold()
        cache.flush_in_background()
        assert cache.holding.wait(HOLD_LIMIT)
        with cache.cached_batch() as batch:
            batch.put(b"xb", b"2")
        assert cache.flush() == 1  # its own key, after the layer's
        assert dump(db) == {b"xa": b"1", b"xb": b"2"} and cache.flushes == 2
        with cache.cached_batch() as batch:
            batch.put(b"xc", b"3")
        cache.flush_in_background()
        cache.close()
        assert cache.closed
    with Database(tmp_path / "db") as db:
        assert dump(db) == {b"xa": b"1", b"xb": b"2", b"xc": b"3"}


def test_a_failed_background_flush_is_raised_at_the_next_call(tmp_path, caplog):
    with Database(tmp_path / "db") as db:
        with db.write_batch() as batch:
            batch.put(b"xa", b"on disk")
        cache = FailingCache(db, limit=1 << 30)
        with cache.cached_batch() as batch:
            batch.put(b"xa", b"cached")
            batch.put(b"xb", b"cached")
        with caplog.at_level(logging.ERROR, logger="o2ocli.coincache"):
            cache.flush_in_background()
            cache._writer.join(HOLD_LIMIT)  # the thread ends (with the error)
        assert "background flush of the UTXO cache failed" in caplog.text
        assert "No space left on device" in caplog.text
        with pytest.raises(FlushFailed) as err:
            cache.get(b"xb")  # a read that reaches the failed layer
        assert isinstance(err.value.__cause__, OSError)
        for call in (lambda: list(cache.iterate(b"x")), cache.flush, cache.flush_in_background,
                     cache.wait, lambda: cache.cached_batch().__enter__(),
                     lambda: cache.write_batch().__enter__()):
            with pytest.raises(FlushFailed):
                call()
        with pytest.raises(FlushFailed):
            cache.close()
        assert cache.closed  # closed all the same, on the last good flush
    with Database(tmp_path / "db") as db:
        assert dump(db) == {b"xa": b"on disk"}


def test_random_chains_with_constant_background_flushes_match_write_through(
        tmp_path, monkeypatch):
    """Seeded: branches, reorgs and rewinds with a cache so small that a
    background flush starts after nearly every block; at random steps the
    writer is held and the cached chainstate is read mid-flush.  Every read
    agrees with a write-through chainstate, and once flushed the two LevelDBs
    are byte for byte the same."""
    monkeypatch.setattr(chainstate_module, "CachedDatabase", HeldCache)
    rng = random.Random(SEED)
    params = ConsensusParams("o2o-test")
    gen = ChainGenerator("o2o-test", n_keys=10, coins_per_key=3, fee=1)
    plain = ChainState(Database(tmp_path / "plain"), params, gen.genesis)
    cached = ChainState(Database(tmp_path / "cached"), params, gen.genesis, dbcache=3_000)
    cache = cached.cache
    assert isinstance(cache, HeldCache)
    gens = [gen]
    held_reads = 0
    try:
        for step in range(100):
            writer = cache._writer
            if rng.random() < 0.5:
                cache.hold()  # the next writer waits: the reads below happen mid-flush
            action = rng.random()
            g = rng.choice(gens)
            if action < 0.12 and len(gens) < 4:
                gens.append(g.fork())
            elif action < 0.2 and plain.height > 1:
                assert plain.disconnect_tip().hash == cached.disconnect_tip().hash
            else:
                block = g.next_block(rng.randint(1, 8), claim_fees=False)
                for state in (plain, cached):
                    try:
                        change = state.add_block(block)
                    except Exception as exc:  # noqa: BLE001 - both must fail alike
                        change = type(exc).__name__
                    if state is plain:
                        expected = change
                assert repr(change) == repr(expected), (SEED, step)
            if not cache.release.is_set() and cache._writer not in (None, writer):
                assert cache.holding.wait(HOLD_LIMIT), (SEED, step)
                if not cache.release.is_set():  # a writer is held: its layer is not on disk
                    assert cache.flushing, (SEED, step)
                    held_reads += 1
            assert cached.tip.hash == plain.tip.hash, (SEED, step)
            assert list(cached.db.iterate(b"")) == list(plain.db.iterate(b"")), (SEED, step)
            for prefix in (schema.UTXO, schema.ADDR_UTXO, schema.TXINDEX):
                assert (list(cached.db.iterate(prefix, reverse=True))
                        == list(plain.db.iterate(prefix, reverse=True))), (SEED, step)
            keys = list(plain.db.iterate_keys(b""))
            for key in rng.sample(keys, min(50, len(keys))) + [utxo_key(step)]:
                assert cached.db.get(key) == plain.db.get(key), (SEED, step, key)
            assert cached.utxo_set_hash() == plain.utxo_set_hash(), (SEED, step)
            cache.unhold()
        assert cache.flushes > 20 and held_reads >= 3, (SEED, cache.flushes, held_reads)
        print(f"seed {SEED}: {cache.flushes} flushes, {held_reads} steps read mid-flush")
        cached.flush()
        assert not cache.flushing
        assert dump(cache.db) == dump(plain.db), SEED
    finally:
        cache.unhold()
        plain.db.close()
        cache.close()

"""A received block's txids, wtxids and merkle root hashed in a signature
worker (crypto/merkle.block_ids, Block.adopt_ids, ProcessVerifier.hash_ahead):
the worker's values are the ones computed here, a block whose header does not
match its transactions is refused all the same, and a worker that dies costs
nothing but the hashing.  Real worker processes, real blocks."""

from __future__ import annotations

import os
import random
import signal

import pytest

from o2ocli.consensus.block import check_merkle_root
from o2ocli.consensus.errors import BlockInvalid
from o2ocli.core.block import Block, BlockHeader, block_commitment, tx_merkle_root
from o2ocli.crypto.batch import CachingVerifier, ProcessVerifier
from o2ocli.crypto.hashes import sha256d
from o2ocli.crypto.merkle import block_ids, merkle_root
from o2ocli.testing.chaingen import ChainGenerator

SEED = int(os.environ.get("O2O_TEST_SEED", "2020"))


def received(block: Block) -> Block:
    """The block as a peer's bytes decode: no id is known yet."""
    return Block.from_bytes(block.to_bytes())


@pytest.fixture(scope="module")
def chain() -> list[Block]:
    gen = ChainGenerator("o2o-ids", n_keys=20, coins_per_key=20)
    return [gen.next_block(n) for n in (1, 2, 3, 70, 150)]


@pytest.fixture()
def verifier():
    v = ProcessVerifier(1, min_batch=1)
    v.start()
    yield v
    v.close()


def test_block_ids_are_the_txids_wtxids_and_root_computed_here(chain):
    print(f"seed {SEED}")
    rng = random.Random(SEED)
    for block in chain:
        txids, wtxids, root = block_ids(received(block).id_parts())
        assert txids == b"".join(tx.txid for tx in block.txs)
        assert wtxids == b"".join(tx.wtxid for tx in block.txs)
        assert root == tx_merkle_root(block.txs) == block.header.merkle_root
    for n in range(0, 40):  # the tree rule, every shape up to 40 leaves
        ids = [rng.randbytes(32) for _ in range(n)]
        assert block_ids([(i, 32) for i in ids])[2] == merkle_root([sha256d(i) for i in ids])


def test_adopted_ids_are_used_and_give_the_same_answers(chain):
    block = chain[-1]
    copy = received(block)
    copy.adopt_ids(block_ids(copy.id_parts()))
    assert all(tx._txid is not None and tx._wtxid is not None for tx in copy.txs)
    assert copy._tx_root == block.header.merkle_root
    check_merkle_root(copy)
    assert [tx.txid for tx in copy.txs] == [tx.txid for tx in block.txs]


def test_ids_already_known_are_kept_and_wrong_lengths_are_ignored(chain):
    block = received(chain[-2])
    first = block.txs[0].txid  # hashed here before the worker answered
    txids, wtxids, root = block_ids(block.id_parts())
    block.adopt_ids((txids[:-1], wtxids, root))  # one byte short: ignored
    assert block._tx_root is None and block.txs[1]._txid is None
    block.adopt_ids((txids, wtxids, root))
    assert block.txs[0].txid is first
    check_merkle_root(block)


def test_a_header_that_does_not_match_is_refused_with_ids_hashed_ahead(chain):
    """The worker hashes the bytes received, so the root it finds is the
    transactions' root: a header carrying another root is refused as before."""
    good = chain[-1]
    h = good.header
    for root in (bytes(32), chain[-2].header.merkle_root):
        header = BlockHeader(h.height, h.prev_hash, root, h.time, h.difficulty)
        block = received(Block(header, good.txs))
        block.adopt_ids(block_ids(block.id_parts()))
        with pytest.raises(BlockInvalid, match="merkle root"):
            check_merkle_root(block)
        with pytest.raises(BlockInvalid, match="merkle root"):  # the cached answer too
            check_merkle_root(block)


def test_the_commitment_is_computed_once_per_block_object(chain, monkeypatch):
    block = received(chain[-1])
    assert block.compute_merkle_root() == block_commitment(
        block.header.version, block.txs, block.votes, block.evidence)
    import o2ocli.core.block as core_block

    monkeypatch.setattr(core_block, "tx_merkle_root", lambda txs: pytest.fail("hashed again"))
    check_merkle_root(block)


def test_a_worker_hashes_a_received_block_ahead(chain, verifier):
    block = received(chain[-1])
    assert verifier.hash_ahead(block.id_parts(), block.adopt_ids)
    while verifier.hashed_ahead == 0:  # answered at a later call on the pool
        verifier._pool._receive(True)
    assert block._tx_root == chain[-1].header.merkle_root
    assert [tx._txid for tx in block.txs] == [tx.txid for tx in chain[-1].txs]
    assert [tx._wtxid for tx in block.txs] == [tx.wtxid for tx in chain[-1].txs]
    check_merkle_root(block)


def test_through_the_signature_cache_and_not_for_small_blocks(chain):
    inner = ProcessVerifier(1, min_batch=64)
    caching = CachingVerifier(inner)
    try:
        block = received(chain[-1])
        assert not caching.hash_ahead(block.id_parts(), block.adopt_ids)  # no worker yet
        inner.start()
        small = received(chain[2])
        assert not caching.hash_ahead(small.id_parts(), small.adopt_ids)  # 4 txs < 64
        assert caching.hash_ahead(block.id_parts(), block.adopt_ids)
        while inner.hashed_ahead == 0:
            inner._pool._receive(True)
        assert block._tx_root == chain[-1].header.merkle_root
    finally:
        caching.close()


def test_a_worker_killed_before_answering_costs_only_the_hashing(chain, verifier):
    block = received(chain[-1])
    (pid,) = verifier._pool.pids
    os.kill(pid, signal.SIGKILL)
    verifier.hash_ahead(block.id_parts(), block.adopt_ids)  # taken, or refused: no worker
    while verifier._pool.alive:
        verifier._pool._receive(True)
    assert verifier.hashed_ahead == 0 and block._tx_root is None
    check_merkle_root(block)  # hashed here
    assert [tx.txid for tx in block.txs] == [tx.txid for tx in chain[-1].txs]


def test_big_answers_and_requests_crossing_do_not_deadlock(verifier):
    """Answers larger than a pipe buffer (64 bytes a transaction) while the
    caller sends more than the other buffer holds: the worker writes its
    answers from a thread and keeps reading, so neither side waits for ever.
    (With both sides writing blockingly this hung at about 30,000
    transactions of 100 bytes.)  Runs in a thread with a deadline, so a
    regression fails instead of hanging the run."""
    import threading

    rng = random.Random(SEED)
    n = 40_000
    jobs = []
    for _ in range(3):
        parts = [(payload, 60) for payload in (rng.randbytes(100) for _ in range(n))]
        jobs.append((parts, block_ids(parts)))
    answers: list[tuple[bytes, bytes, bytes]] = []
    pool = verifier._pool

    def post_all() -> None:
        for parts, _ in jobs:  # no answer read in between
            assert verifier.hash_ahead(parts, answers.append)
        while len(answers) < len(jobs):
            pool._receive(True)

    poster = threading.Thread(target=post_all, daemon=True)
    poster.start()
    poster.join(timeout=120)
    assert not poster.is_alive(), "caller and worker wait on each other's writes"
    assert answers == [expected for _, expected in jobs]


def test_a_block_is_offered_for_hashing_once(chain):
    """A block read ahead is handed to prefetch_block when decoded and again
    when handled: its parts go to a worker only the first time, and never
    once its ids are known."""
    block = received(chain[-1])
    assert block.id_parts_once() == block.id_parts()
    assert block.id_parts_once() is None
    known = received(chain[-1])
    known.compute_merkle_root()
    known.adopt_ids(block_ids(known.id_parts()))
    assert known.id_parts_once() is None

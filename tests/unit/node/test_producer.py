"""Block production: ``build_block`` templates and ``Proposals.pick``.

Real chain manager on LevelDB in a temp dir, real signed transactions, and
every produced block is connected by the chain manager (so it is valid).
"""

from __future__ import annotations

import dataclasses
import json
import random

import pytest

from o2ocli.chainspec import ChainSpec, builtin_spec_path, spec_from_dict
from o2ocli.consensus.poa import DIFF_IN_TURN, DIFF_NO_TURN
from o2ocli.core.block import (
    VOTE_ADD,
    VOTE_NONE,
    VOTE_REMOVE,
    block_commitment,
    merkle_root,
)
from o2ocli.core.locks import PayToAddress
from o2ocli.core.payloads import Coinbase
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, Tx, TxIn, TxOut
from o2ocli.crypto.address import encode_address
from o2ocli.crypto.keys import PrivateKey
from o2ocli.node.chain import ChainManager
from o2ocli.node.mempool import Mempool
from o2ocli.node.producer import Proposals, build_block
from o2ocli.storage.db import Database
from o2ocli.testing.chaingen import deterministic_key, p2a, sign_tx

CHAIN_ID = "o2o-producer-test"
VERSION = 127
T0 = 1_700_000_000
PERIOD = 3
COIN_VALUE = 1000 * 10**8
COINS = 6


def addr(key: PrivateKey) -> bytes:
    return key.public_key.hash160()


VALIDATORS = sorted((deterministic_key(b"prod-validator", i) for i in range(3)), key=addr)
V0, V1, V2 = VALIDATORS
FUNDS = deterministic_key(b"prod-funds", 0)
OUTSIDERS = [deterministic_key(b"prod-outsider", i) for i in range(3)]


def make_spec(epoch: int = 30_000) -> ChainSpec:
    path = builtin_spec_path("devnet")
    assert path is not None
    data = json.loads(path.read_text(encoding="utf-8"))
    data["chain_id"] = CHAIN_ID
    data["address_version"] = VERSION
    funds = encode_address(addr(FUNDS), VERSION)
    data["genesis"] = {
        "time": T0,
        "allocations": [{"address": funds, "amount": "1000"} for _ in range(COINS)],
    }
    data["validators"] = [encode_address(addr(k), VERSION) for k in VALIDATORS]
    data["consensus"] = {"period": PERIOD, "epoch": epoch, "max_future": 15}
    del data["dev_keys"]
    return spec_from_dict(data)


@pytest.fixture
def chain(tmp_path):
    db = Database(tmp_path / "db")
    yield ChainManager(db, make_spec(), clock=lambda: T0 + 10**6)
    db.close()


@pytest.fixture
def pool(chain):
    return Mempool(chain.state, chain.spec.consensus_params, min_fee_rate=chain.spec.min_relay_fee)


def genesis_coin(chain: ChainManager, index: int) -> Outpoint:
    return Outpoint(chain.genesis.txs[0].txid, index)


def pay(outpoint: Outpoint, amount: int, fee: int, key: PrivateKey = FUNDS, n_out: int = 1) -> Tx:
    share = (amount - fee) // n_out
    amounts = [share] * (n_out - 1) + [amount - fee - share * (n_out - 1)]
    outs = tuple(
        TxOut(NATIVE_ASSET, a, p2a(deterministic_key(b"prod-dest", outpoint.index * 10 + i)))
        for i, a in enumerate(amounts)
    )
    return sign_tx(Tx((TxIn(outpoint),), outs), [[key]], CHAIN_ID)


def connect(chain: ChainManager, block) -> None:
    change = chain.add_block(block, now=block.header.time)
    assert change.connected == (block,)


# ---------------------------------------------------------------- templates
def test_block_takes_txs_by_fee_rate_and_claims_exactly_the_fees(chain, pool):
    fees = [2_000, 90_000, 15_000, 40_000]
    txs = [pay(genesis_coin(chain, i), COIN_VALUE, fee) for i, fee in enumerate(fees)]
    for tx in txs:
        pool.accept(tx, T0)
    rates = {e.txid: e.fee_rate for e in pool.entries()}

    block = build_block(chain, pool, V1, T0 + 1)

    claim, body = block.txs[0], block.txs[1:]
    assert claim.is_coinbase and claim.payload == Coinbase(1)
    assert claim.outputs == (TxOut(NATIVE_ASSET, sum(fees), PayToAddress(addr(V1))),)
    assert sorted(t.txid for t in body) == sorted(t.txid for t in txs)
    assert [rates[t.txid] for t in body] == sorted(rates.values(), reverse=True)
    assert [t.txid for t in body] == [txs[1].txid, txs[3].txid, txs[2].txid, txs[0].txid]
    assert block.header.merkle_root == block_commitment(2, block.txs)
    assert block.header.version == 2 and block.votes == () and block.evidence == ()
    assert block.header.prev_hash == chain.tip.hash
    connect(chain, block)
    coin = chain.state.get(Outpoint(claim.txid, 0))
    assert coin is not None and coin.output.amount == sum(fees)


def test_fee_claim_pays_the_sealer_even_out_of_turn(chain, pool):
    tx = pay(genesis_coin(chain, 0), COIN_VALUE, 12_345)
    pool.accept(tx, T0)
    block = build_block(chain, pool, V2, T0)
    assert block.header.difficulty == DIFF_NO_TURN
    assert block.txs[0].outputs == (TxOut(NATIVE_ASSET, 12_345, PayToAddress(addr(V2))),)
    connect(chain, block)


def test_child_follows_its_parent_even_with_a_higher_fee_rate(chain, pool):
    parent = pay(genesis_coin(chain, 0), COIN_VALUE, 2_000)
    pool.accept(parent, T0)
    owner = deterministic_key(b"prod-dest", 0)  # the parent pays this key
    child = pay(Outpoint(parent.txid, 0), COIN_VALUE - 2_000, 80_000, key=owner)
    pool.accept(child, T0)
    other = pay(genesis_coin(chain, 1), COIN_VALUE, 10_000)
    pool.accept(other, T0)
    block = build_block(chain, pool, V1, T0)
    assert [t.txid for t in block.txs[1:]] == [other.txid, parent.txid, child.txid]
    assert block.txs[0].outputs[0].amount == 92_000
    connect(chain, block)


def test_empty_mempool_gives_an_empty_block(chain, pool):
    block = build_block(chain, pool, V1, T0)
    assert block.txs == ()
    assert block.header.merkle_root == block_commitment(2, ())
    assert block.header.merkle_root != merkle_root([])
    connect(chain, block)


def test_block_time_and_difficulty(chain, pool):
    early = build_block(chain, pool, V1, T0)  # now is before parent + period
    assert early.header.time == T0 + PERIOD
    late = build_block(chain, pool, V1, T0 + 100)
    assert late.header.time == T0 + 100
    assert late.header.difficulty == DIFF_IN_TURN
    assert build_block(chain, pool, V0, T0).header.difficulty == DIFF_NO_TURN
    assert build_block(chain, pool, V2, T0).header.difficulty == DIFF_NO_TURN
    connect(chain, early)
    assert build_block(chain, pool, V2, T0).header.difficulty == DIFF_IN_TURN
    assert build_block(chain, pool, V2, T0).header.time == T0 + 2 * PERIOD


def test_build_block_is_deterministic(chain, pool):
    pool.accept(pay(genesis_coin(chain, 0), COIN_VALUE, 5_000), T0)
    proposals = Proposals({addr(OUTSIDERS[0]): True})
    a = build_block(chain, pool, V1, T0, proposals, random.Random(1))
    b = build_block(chain, pool, V1, T0, proposals, random.Random(1))
    assert a.to_bytes() == b.to_bytes()


def test_block_respects_max_block_txs(tmp_path):
    db = Database(tmp_path / "db")
    try:
        small = dataclasses.replace(make_spec(), max_block_txs=3)
        chain = ChainManager(db, small, clock=lambda: T0 + 10**6)
        pool = Mempool(chain.state, small.consensus_params, min_fee_rate=small.min_relay_fee)
        fees = [3_000, 9_000, 6_000]
        for i, fee in enumerate(fees):
            pool.accept(pay(genesis_coin(chain, i), COIN_VALUE, fee), T0)
        block = build_block(chain, pool, V1, T0)
        assert len(block.txs) == 3  # the fee claim counts towards max_block_txs
        assert block.txs[0].outputs[0].amount == 9_000 + 6_000
        connect(chain, block)
    finally:
        db.close()


# ------------------------------------------------------------- epoch blocks
def test_epoch_block_carries_the_checkpoint_and_no_vote(tmp_path):
    db = Database(tmp_path / "db")
    try:
        chain = ChainManager(db, make_spec(epoch=3), clock=lambda: T0 + 10**6)
        pool = Mempool(
            chain.state, chain.spec.consensus_params, min_fee_rate=chain.spec.min_relay_fee
        )
        proposals = Proposals({addr(OUTSIDERS[0]): True})
        for height, key in ((1, V1), (2, V2)):
            block = build_block(chain, pool, key, T0, proposals, random.Random(height))
            assert block.header.checkpoint == ()
            assert block.header.vote_kind == VOTE_ADD
            connect(chain, block)
        # Two votes of three added the outsider; the epoch block lists the new set.
        validators = chain.tip_snapshot().validators
        assert addr(OUTSIDERS[0]) in validators and len(validators) == 4
        epoch_block = build_block(
            chain, pool, V0, T0, Proposals({addr(OUTSIDERS[1]): True}), random.Random(3)
        )
        assert epoch_block.height == 3
        assert epoch_block.header.checkpoint == validators
        assert epoch_block.header.vote_kind == VOTE_NONE
        assert epoch_block.header.vote_address == bytes(20)
        connect(chain, epoch_block)
        after = build_block(chain, pool, V1, T0, Proposals({addr(OUTSIDERS[1]): True}))
        assert after.header.checkpoint == ()
        assert after.header.vote_kind == VOTE_ADD
    finally:
        db.close()


# ---------------------------------------------------------------- proposals
VALIDATOR_SET = tuple(addr(k) for k in VALIDATORS)


def test_pick_without_proposals_is_no_vote():
    assert Proposals().pick(VALIDATOR_SET, random.Random(0)) == (VOTE_NONE, bytes(20))


def test_pick_ignores_proposals_that_would_change_nothing():
    proposals = Proposals({
        addr(V0): True,  # already a validator
        addr(OUTSIDERS[0]): False,  # not a validator: nothing to remove
    })
    for seed in range(20):
        assert proposals.pick(VALIDATOR_SET, random.Random(seed)) == (VOTE_NONE, bytes(20))


def test_pick_only_returns_meaningful_proposals():
    proposals = Proposals({
        addr(V0): True,
        addr(V1): False,  # meaningful: remove
        addr(OUTSIDERS[0]): True,  # meaningful: add
        addr(OUTSIDERS[1]): False,
    })
    picks = {proposals.pick(VALIDATOR_SET, random.Random(seed)) for seed in range(60)}
    assert picks == {(VOTE_REMOVE, addr(V1)), (VOTE_ADD, addr(OUTSIDERS[0]))}


def test_pick_follows_the_given_validator_set():
    proposals = Proposals({addr(OUTSIDERS[0]): True})
    rng = random.Random(0)
    assert proposals.pick(VALIDATOR_SET, rng) == (VOTE_ADD, addr(OUTSIDERS[0]))
    grown = tuple(sorted(VALIDATOR_SET + (addr(OUTSIDERS[0]),)))
    assert proposals.pick(grown, rng) == (VOTE_NONE, bytes(20))


def test_pick_is_deterministic_for_a_seeded_rng():
    proposals = Proposals({addr(k): True for k in OUTSIDERS})
    first = [proposals.pick(VALIDATOR_SET, random.Random(s)) for s in range(10)]
    again = [proposals.pick(VALIDATOR_SET, random.Random(s)) for s in range(10)]
    assert first == again


def test_producer_drops_a_mempool_tx_that_makes_its_block_invalid(chain, pool):
    """Defence in depth: if a mempool tx turns out invalid inside a block (a
    mempool/consensus mismatch), the producer drops it and the next block
    goes through instead of the same refusal forever."""
    import asyncio

    from o2ocli.node.mempool import MempoolEntry
    from o2ocli.node.producer import Producer

    good = pay(genesis_coin(chain, 0), COIN_VALUE, 10_000)
    pool.accept(good, T0)
    # A tx whose input does not exist, slipped past the pool's checks.
    ghost = pay(Outpoint(bytes(32), 7), COIN_VALUE, 10_000)
    pool._insert(MempoolEntry(ghost, ghost.txid, 10_000, ghost.size, 10_000_000, T0, 0), False)
    in_turn = VALIDATORS[1 % len(VALIDATORS)]

    def submit(block, now):
        return chain.add_block(block, now=now)

    producer = Producer(chain, pool, in_turn, submit=submit, clock=lambda: T0 + 10**6)
    asyncio.run(producer._seal_once())  # refused: the ghost tx is dropped
    assert chain.height == 0 and ghost.txid not in pool and good.txid in pool
    asyncio.run(producer._seal_once())
    assert chain.height == 1 and good.txid in {tx.txid for tx in chain.state.get_block(
        chain.tip.hash).txs}

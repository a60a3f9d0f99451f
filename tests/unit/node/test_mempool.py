"""Mempool on a real chainstate (LevelDB in a temp dir) with real signatures."""

from __future__ import annotations

import itertools

import pytest

from o2ocli.consensus.block import apply_block
from o2ocli.consensus.params import ConsensusParams
from o2ocli.consensus.tx import serial_verifier
from o2ocli.core.block import Block
from o2ocli.core.payloads import Coinbase
from o2ocli.core.tx import NATIVE_ASSET, Coin, Outpoint, SigPair, Tx, TxIn, TxOut
from o2ocli.node.mempool import Mempool, MempoolEntry, MempoolError
from o2ocli.storage import ChainState, Database
from o2ocli.testing.chaingen import (
    ChainGenerator,
    Spendable,
    deterministic_key,
    make_block,
    p2a,
    sign_tx,
)

CHAIN_ID = "o2o-test"
MIN_FEE_RATE = 1_000
NOW = 1_700_000_000
_dest_counter = itertools.count()


@pytest.fixture
def gen() -> ChainGenerator:
    return ChainGenerator(CHAIN_ID, n_keys=10, coins_per_key=4)


@pytest.fixture
def params() -> ConsensusParams:
    return ConsensusParams(CHAIN_ID)


@pytest.fixture
def state(tmp_path, gen, params):
    chain = ChainState(Database(tmp_path / "db"), params, gen.genesis)
    yield chain
    chain.db.close()


@pytest.fixture
def pool(state, params) -> Mempool:
    return Mempool(state, params, min_fee_rate=MIN_FEE_RATE)


def spend(
    coins: list[Spendable], fee: int = 1_000, n_out: int = 2, lock_height: int = 0
) -> tuple[Tx, list[Spendable]]:
    """A signed tx spending ``coins`` to fresh keys; returns it and its outputs."""
    total = sum(c.output.amount for c in coins) - fee
    share = total // n_out
    amounts = [share] * (n_out - 1) + [total - share * (n_out - 1)]
    keys = [deterministic_key(b"dest", next(_dest_counter)) for _ in amounts]
    outputs = tuple(TxOut(NATIVE_ASSET, a, p2a(k)) for a, k in zip(amounts, keys, strict=True))
    tx = Tx(tuple(TxIn(c.outpoint) for c in coins), outputs, lock_height=lock_height)
    tx = sign_tx(tx, [[c.key] for c in coins], CHAIN_ID)
    outs = [
        Spendable(Outpoint(tx.txid, i), out, key)
        for i, (out, key) in enumerate(zip(outputs, keys, strict=True))
    ]
    return tx, outs


def corrupt(tx: Tx) -> Tx:
    """``tx`` with its first signature broken (same txid)."""
    pair = tx.inputs[0].witness[0]
    sig = bytearray(pair.signature)
    sig[10] ^= 1
    first = TxIn(tx.inputs[0].prevout, (SigPair(pair.pubkey, bytes(sig)),))
    return Tx((first,) + tx.inputs[1:], tx.outputs, tx.lock_height, tx.payload)


def block_on(state: ChainState, gen: ChainGenerator, txs: list[Tx], fees: int) -> Block:
    return make_block(state.tip.header, txs, fees=fees, fee_lock=p2a(gen.miner))


def snapshot(pool: Mempool) -> tuple:
    """Everything observable about the pool's state."""
    entries = pool.entries()
    spenders = {
        txin.prevout: pool.spender_of(txin.prevout) for e in entries for txin in e.tx.inputs
    }
    return (
        [e.txid for e in entries],
        pool.total_bytes,
        len(pool),
        spenders,
        {e.txid: pool.descendants(e.txid) for e in entries},
    )


def reason_of(fn, *args) -> MempoolError:
    with pytest.raises(MempoolError) as info:
        fn(*args)
    return info.value


# ---------------------------------------------------------------- accept
def test_accept_valid_tx(pool, gen, state):
    coin = gen.pool.popleft()
    tx, outs = spend([coin], fee=1_000)
    entry = pool.accept(tx, NOW)
    assert entry == MempoolEntry(tx, tx.txid, 1_000, tx.size, 1_000_000 // tx.size, NOW, 0)
    assert tx.txid in pool and len(pool) == 1
    assert pool.get_entry(tx.txid) == entry and pool.entries() == [entry]
    assert pool.total_bytes == tx.size
    assert pool.spender_of(coin.outpoint) == tx.txid
    # The view: the spent chain coin is gone, the new outputs are there at height tip+1.
    assert state.get(coin.outpoint) is not None
    assert pool.get(coin.outpoint) is None
    assert pool.get(outs[1].outpoint) == Coin(outs[1].output, 1, False)
    assert pool.get(Outpoint(tx.txid, 2)) is None
    other = gen.pool[0]
    assert pool.get(other.outpoint) == state.get(other.outpoint)


def test_duplicate_is_refused(pool, gen):
    tx, _ = spend([gen.pool.popleft()])
    pool.accept(tx, NOW)
    before = snapshot(pool)
    assert reason_of(pool.accept, tx, NOW).reason == "txn-already-in-mempool"
    assert snapshot(pool) == before


def test_already_confirmed_is_refused(pool, gen, state):
    block = gen.next_block(3)
    assert state.add_block(block)
    err = reason_of(pool.accept, block.txs[1], NOW)
    assert err.reason == "txn-already-known"
    assert len(pool) == 0


def test_conflict_names_the_first_tx(pool, gen):
    coin = gen.pool.popleft()
    first, _ = spend([coin], fee=1_000)
    second, _ = spend([coin], fee=5_000)
    pool.accept(first, NOW)
    before = snapshot(pool)
    err = reason_of(pool.accept, second, NOW)
    assert err.reason == "txn-mempool-conflict"
    assert err.conflict == first.txid
    assert first.txid.hex() in err.message
    assert not err.consensus
    assert snapshot(pool) == before


def test_chain_of_unconfirmed_txs(pool, gen):
    tx1, outs1 = spend([gen.pool.popleft()])
    tx2, outs2 = spend([outs1[0]])
    tx3, _ = spend([outs2[0]])
    for tx in (tx1, tx2, tx3):
        pool.accept(tx, NOW)
    assert len(pool) == 3
    assert pool.descendants(tx1.txid) == {tx2.txid, tx3.txid}
    assert pool.descendants(tx3.txid) == set()
    assert pool.spender_of(outs1[0].outpoint) == tx2.txid
    double, _ = spend([outs1[0]], fee=2_000)
    err = reason_of(pool.accept, double, NOW)
    assert (err.reason, err.conflict) == ("txn-mempool-conflict", tx2.txid)
    # The other output of tx1 is still free to spend.
    tx4, _ = spend([outs1[1]])
    pool.accept(tx4, NOW)
    assert pool.descendants(tx1.txid) == {tx2.txid, tx3.txid, tx4.txid}


def test_below_min_fee_rate(pool, gen):
    tx, _ = spend([gen.pool.popleft()], fee=100)
    required = -(-MIN_FEE_RATE * tx.size // 1000)
    assert required > 100
    err = reason_of(pool.accept, tx, NOW)
    assert err.reason == "min-relay-fee-not-met"
    assert str(required) in err.message
    assert len(pool) == 0
    exact, _ = spend([gen.pool.popleft()], fee=required)
    assert pool.accept(exact, NOW).fee == required


def test_invalid_signature(pool, gen):
    tx, _ = spend([gen.pool.popleft()])
    err = reason_of(pool.accept, corrupt(tx), NOW)
    assert err.reason == "bad-txns-signature" and err.consensus
    assert len(pool) == 0 and pool.total_bytes == 0
    pool.accept(tx, NOW)  # the correctly signed one still gets in


def test_missing_input(pool, gen):
    coin = gen.pool.popleft()
    ghost = Spendable(Outpoint(bytes(range(32)), 0), coin.output, coin.key)
    tx, _ = spend([ghost])
    err = reason_of(pool.accept, tx, NOW)
    assert err.reason == "bad-txns-inputs-missingorspent"
    assert not err.consensus
    bad_index, _ = spend([Spendable(Outpoint(coin.outpoint.txid, 9999), coin.output, coin.key)])
    assert reason_of(pool.accept, bad_index, NOW).reason == "bad-txns-inputs-missingorspent"


def test_fee_claim_is_refused(pool, gen):
    claim = Tx((), (TxOut(NATIVE_ASSET, 1_000, p2a(gen.miner)),), payload=Coinbase(1))
    err = reason_of(pool.accept, claim, NOW)
    assert err.reason == "bad-txns-coinbase" and err.consensus


def test_consensus_failure_keeps_its_reason(pool, gen):
    coin = gen.pool.popleft()
    too_much = Tx(
        (TxIn(coin.outpoint),),
        (TxOut(NATIVE_ASSET, coin.output.amount + 1, p2a(coin.key)),),
    )
    too_much = sign_tx(too_much, [[coin.key]], CHAIN_ID)
    assert reason_of(pool.accept, too_much, NOW).reason == "bad-txns-in-belowout"
    premature, _ = spend([coin], lock_height=2)
    assert reason_of(pool.accept, premature, NOW).reason == "bad-txns-premature"
    ok, _ = spend([coin], lock_height=1)
    pool.accept(ok, NOW)


# ------------------------------------------------------------ accept_many
def test_accept_many_mixed_batch(state, params, gen):
    calls: list[int] = []

    def counting(checks):
        calls.append(len(checks))
        return serial_verifier(checks)

    pool = Mempool(state, params, min_fee_rate=MIN_FEE_RATE, verifier=counting)
    c1, c2, c3 = (gen.pool.popleft() for _ in range(3))
    a, a_outs = spend([c1])
    b_good, b_outs = spend([c2])
    b = corrupt(b_good)
    child_a, _ = spend([a_outs[0]])
    conflict_a, _ = spend([c1], fee=3_000)
    child_b, _ = spend([b_outs[0]])
    replaces_b, _ = spend([c2], fee=2_000)  # b was refused, so this one is fine
    cheap, _ = spend([c3], fee=10)
    batch = [a, b, child_a, conflict_a, child_b, replaces_b, a, cheap]
    results = pool.accept_many(batch, NOW)
    assert len(results) == len(batch)
    reasons = [r.reason if isinstance(r, MempoolError) else "ok" for r in results]
    assert reasons == [
        "ok",
        "bad-txns-signature",
        "ok",
        "txn-mempool-conflict",
        "bad-txns-inputs-missingorspent",
        "ok",
        "txn-already-in-mempool",
        "min-relay-fee-not-met",
    ]
    assert results[3].conflict == a.txid
    assert [e.txid for e in pool.entries()] == [a.txid, child_a.txid, replaces_b.txid]
    assert pool.descendants(a.txid) == {child_a.txid}
    # Same outcome as accepting one by one on a fresh pool.
    one_by_one = Mempool(state, params, min_fee_rate=MIN_FEE_RATE)
    seq = []
    for tx in batch:
        try:
            seq.append(one_by_one.accept(tx, NOW))
        except MempoolError as exc:
            seq.append(exc)
    assert [type(r) for r in seq] == [type(r) for r in results]
    assert [r.reason for r in seq if isinstance(r, MempoolError)] == [
        r.reason for r in results if isinstance(r, MempoolError)
    ]
    assert snapshot(one_by_one) == snapshot(pool)
    assert len(calls) > 1  # the bad signature was looked for


def test_accept_many_verifies_once_when_all_good(state, params, gen):
    calls: list[int] = []

    def counting(checks):
        calls.append(len(checks))
        return serial_verifier(checks)

    pool = Mempool(state, params, min_fee_rate=MIN_FEE_RATE, verifier=counting)
    parent, outs = spend([gen.pool.popleft()])
    txs = [parent, spend([outs[0]])[0]] + [spend([gen.pool.popleft()])[0] for _ in range(8)]
    results = pool.accept_many(txs, NOW)
    assert all(isinstance(r, MempoolEntry) for r in results)
    assert calls == [10]
    assert len(pool) == 10


def test_accept_many_finds_every_bad_signature(pool, gen):
    good = [spend([gen.pool.popleft()])[0] for _ in range(12)]
    bad_at = {0, 3, 4, 7, 11}
    batch = [corrupt(tx) if i in bad_at else tx for i, tx in enumerate(good)]
    results = pool.accept_many(batch, NOW)
    for i, result in enumerate(results):
        if i in bad_at:
            assert result.reason == "bad-txns-signature"
        else:
            assert isinstance(result, MempoolEntry)
    assert len(pool) == len(good) - len(bad_at)
    assert pool.accept_many([], NOW) == []


# --------------------------------------------------------- block template
def test_block_template_orders_parents_first_and_connects(pool, gen, state):
    parent, outs = spend([gen.pool.popleft()], fee=300)  # low rate, above the minimum
    child, _ = spend([outs[0]], fee=20_000)  # high rate, but needs its parent
    medium, _ = spend([gen.pool.popleft()], fee=5_000)
    normal, _ = spend([gen.pool.popleft()], fee=1_000)
    for tx in (parent, child, medium, normal):
        pool.accept(tx, NOW)
    order = [e.txid for e in pool.block_template(1_000_000, 100)]
    assert order == [medium.txid, normal.txid, parent.txid, child.txid]
    assert [e.txid for e in pool.block_template(1_000_000, 2)] == [medium.txid, normal.txid]
    tight = medium.size + normal.size + parent.size - 1
    assert [e.txid for e in pool.block_template(tight, 100)] == [medium.txid, normal.txid]
    assert pool.block_template(1_000_000, 0) == []
    # Skipping a tx that does not fit lets a smaller later one in.
    big, _ = spend([gen.pool.popleft()], fee=100_000, n_out=40)
    pool.accept(big, NOW)
    room = medium.size + normal.size + parent.size + child.size
    order = [e.txid for e in pool.block_template(room, 100)]
    assert big.txid not in order and order[-1] == child.txid

    template = pool.block_template(1_000_000, 100)
    block = block_on(state, gen, [e.tx for e in template], sum(e.fee for e in template))
    assert state.add_block(block)
    assert pool.remove_for_block(block) == []
    assert len(pool) == 0 and pool.total_bytes == 0


# --------------------------------------------------------- chain following
def test_remove_for_block_drops_included_and_conflicts(pool, gen, state):
    c1, c2, c3 = (gen.pool.popleft() for _ in range(3))
    a, a_outs = spend([c1])
    a_child, _ = spend([a_outs[0]])
    x, x_outs = spend([c2])
    x_child, xc_outs = spend([x_outs[0]])
    x_grandchild, _ = spend([xc_outs[1]])
    w, _ = spend([c3])
    for tx in (a, a_child, x, x_child, x_grandchild, w):
        pool.accept(tx, NOW)
    y, _ = spend([c2], fee=2_000)  # spends x's coin, never seen by the pool
    block = block_on(state, gen, [a, y], 3_000)
    assert state.add_block(block)
    removed = pool.remove_for_block(block)
    assert removed == [x.txid, x_child.txid, x_grandchild.txid]
    assert [e.txid for e in pool.entries()] == [a_child.txid, w.txid]
    assert pool.total_bytes == a_child.size + w.size
    assert pool.spender_of(c2.outpoint) is None
    assert pool.get(a_outs[0].outpoint) is None  # confirmed, spent by a_child
    assert pool.get(a_outs[1].outpoint) == state.get(a_outs[1].outpoint) is not None
    assert pool.descendants(a.txid) == set()
    # The rest still makes a valid next block.
    template = pool.block_template(1_000_000, 100)
    nxt = block_on(state, gen, [e.tx for e in template], sum(e.fee for e in template))
    assert state.add_block(nxt)
    assert pool.remove_for_block(nxt) == [] and len(pool) == 0


def test_readd_txs_after_disconnect(pool, gen, state):
    block = gen.next_block(4)
    assert state.add_block(block)
    paid = next(s for s in gen.pool if s.outpoint.txid == block.txs[2].txid)
    child, _ = spend([paid])
    locked, _ = spend([gen.pool.popleft()], lock_height=2)
    pool.accept(child, NOW)
    pool.accept(locked, NOW)
    assert pool.get_entry(child.txid).height == 1
    assert state.disconnect_tip().hash == block.hash
    pool.readd_txs(list(block.txs), NOW + 5)
    claim = block.txs[0]
    assert claim.is_coinbase and claim.txid not in pool
    for tx in block.txs[1:]:
        assert tx.txid in pool
        assert pool.get_entry(tx.txid).time == NOW + 5
    assert child.txid in pool
    assert locked.txid not in pool  # lock height 2 is no longer reachable by the next block
    assert pool.descendants(block.txs[2].txid) == {child.txid}
    # Parents come before the child in a template, and it connects.
    template = pool.block_template(1_000_000, 100)
    order = [e.txid for e in template]
    assert order.index(block.txs[2].txid) < order.index(child.txid)
    again = block_on(state, gen, [e.tx for e in template], sum(e.fee for e in template))
    assert state.add_block(again)
    assert pool.remove_for_block(again) == [] and len(pool) == 0


def test_readd_drops_txs_no_longer_valid(pool, gen, state):
    block = gen.next_block(2)
    assert state.add_block(block)
    paid = next(s for s in gen.pool if s.outpoint.txid == block.txs[1].txid)
    child, _ = spend([paid])
    pool.accept(child, NOW)
    state.disconnect_tip()
    # The parent is not given back (e.g. it conflicts with the new branch).
    pool.readd_txs([block.txs[0]], NOW)
    assert len(pool) == 0 and pool.total_bytes == 0


def test_readd_skips_the_minimum_fee(state, params, gen):
    block = gen.next_block(2, claim_fees=False)
    assert state.add_block(block)
    strict = Mempool(state, params, min_fee_rate=10**9)
    state.disconnect_tip()
    strict.readd_txs(list(block.txs), NOW)
    assert [e.txid for e in strict.entries()] == [tx.txid for tx in block.txs]


def test_revalidate_drops_spent_inputs_with_descendants(pool, gen, state):
    c1, c2 = gen.pool.popleft(), gen.pool.popleft()
    t, t_outs = spend([c1])
    u, _ = spend([t_outs[0]])
    keep, _ = spend([c2])
    for tx in (t, u, keep):
        pool.accept(tx, NOW)
    assert pool.revalidate() == []
    rival, _ = spend([c1], fee=4_000)
    assert state.add_block(block_on(state, gen, [rival], 4_000))
    assert pool.revalidate() == [t.txid, u.txid]
    assert [e.txid for e in pool.entries()] == [keep.txid]
    assert pool.spender_of(c1.outpoint) is None
    assert pool.total_bytes == keep.size


def test_expire_drops_old_txs_with_descendants(state, params, gen):
    pool = Mempool(state, params, min_fee_rate=MIN_FEE_RATE, expiry=3_600)
    old, outs = spend([gen.pool.popleft()])
    young_child, _ = spend([outs[0]])
    young, _ = spend([gen.pool.popleft()])
    pool.accept(old, 1_000)
    pool.accept(young, 2_000)
    pool.accept(young_child, 5_000)
    assert pool.expire(4_600) == []
    assert pool.expire(4_601) == [old.txid, young_child.txid]
    assert [e.txid for e in pool.entries()] == [young.txid]
    assert pool.expire(2_000 + 3_601) == [young.txid]
    assert len(pool) == 0 and pool.total_bytes == 0


# --------------------------------------------------------------- size cap
def test_size_cap_evicts_lowest_fee_rate_with_descendants(state, params, gen):
    probe, _ = spend([gen.pool[0]])
    size = probe.size
    pool = Mempool(state, params, min_fee_rate=MIN_FEE_RATE, max_bytes=3 * size)
    rich, _ = spend([gen.pool.popleft()], fee=9_000)
    poor, poor_outs = spend([gen.pool.popleft()], fee=500)
    poor_child, _ = spend([poor_outs[0]], fee=50_000)
    for tx in (rich, poor, poor_child):
        pool.accept(tx, NOW)
    assert pool.total_bytes == 3 * size
    newcomer, _ = spend([gen.pool.popleft()], fee=2_000)
    entry = pool.accept(newcomer, NOW)
    assert [e.txid for e in pool.entries()] == [rich.txid, newcomer.txid]
    assert pool.total_bytes == 2 * size
    assert pool.spender_of(poor_outs[0].outpoint) is None
    assert entry.txid in pool

    # Full again; the cheapest newcomer is refused and changes nothing.
    middle, _ = spend([gen.pool.popleft()], fee=3_000)
    pool.accept(middle, NOW)
    before = snapshot(pool)
    cheapest_coin = gen.pool.popleft()
    cheapest, _ = spend([cheapest_coin], fee=1_000)
    err = reason_of(pool.accept, cheapest, NOW)
    assert err.reason == "mempool-full"
    assert snapshot(pool) == before
    assert pool.spender_of(cheapest_coin.outpoint) is None
    # An equal fee rate loses too (newest goes first on a tie).
    tie, _ = spend([gen.pool.popleft()], fee=2_000)
    assert reason_of(pool.accept, tie, NOW).reason == "mempool-full"
    assert snapshot(pool) == before
    # After a refusal eviction still works: a richer tx pushes out the poorest.
    richer, _ = spend([gen.pool.popleft()], fee=4_000)
    pool.accept(richer, NOW)
    assert [e.txid for e in pool.entries()] == [rich.txid, middle.txid, richer.txid]


def test_size_cap_refuses_child_whose_parent_would_go(state, params, gen):
    probe, _ = spend([gen.pool[0]])
    size = probe.size
    pool = Mempool(state, params, min_fee_rate=MIN_FEE_RATE, max_bytes=2 * size)
    poor, poor_outs = spend([gen.pool.popleft()], fee=500)
    rich, _ = spend([gen.pool.popleft()], fee=9_000)
    pool.accept(poor, NOW)
    pool.accept(rich, NOW)
    before = snapshot(pool)
    child, _ = spend([poor_outs[0]], fee=90_000)
    assert reason_of(pool.accept, child, NOW).reason == "mempool-full"
    assert snapshot(pool) == before
    huge, _ = spend([gen.pool.popleft()], fee=10**6, n_out=40)
    assert huge.size > 2 * size
    assert reason_of(pool.accept, huge, NOW).reason == "mempool-full"
    assert snapshot(pool) == before


def test_batch_eviction_takes_a_parent_of_a_later_batch_tx(state, params, gen):
    probe, _ = spend([gen.pool[0]])
    size = probe.size
    pool = Mempool(state, params, min_fee_rate=MIN_FEE_RATE, max_bytes=2 * size)
    poor, poor_outs = spend([gen.pool.popleft()], fee=500)
    rich, _ = spend([gen.pool.popleft()], fee=9_000)
    pool.accept(poor, NOW)
    pool.accept(rich, NOW)
    newcomer, _ = spend([gen.pool.popleft()], fee=5_000)
    orphaned, _ = spend([poor_outs[0]], fee=50_000)
    results = pool.accept_many([newcomer, orphaned], NOW)
    assert isinstance(results[0], MempoolEntry)
    assert results[1].reason == "bad-txns-inputs-missingorspent"
    assert [e.txid for e in pool.entries()] == [rich.txid, newcomer.txid]
    assert pool.spender_of(poor_outs[0].outpoint) is None


def test_batch_never_admits_the_child_of_a_parent_refused_at_the_cap(gen, params, state):
    """accept_many: a parent refused 'mempool-full' must not let its child in
    (an orphan in the pool would make every block template invalid)."""
    filler, _ = spend([gen.pool.popleft()], fee=5_000, n_out=1)
    pool = Mempool(state, params, min_fee_rate=MIN_FEE_RATE, max_bytes=filler.size + 300)
    pool.accept(filler, NOW)
    parent, outs = spend([gen.pool.popleft()], fee=600, n_out=10)
    child, _ = spend([outs[0]], fee=50_000, n_out=1)
    results = pool.accept_many([parent, child], NOW)
    assert isinstance(results[0], MempoolError) and results[0].reason == "mempool-full"
    assert isinstance(results[1], MempoolError)
    assert results[1].reason == "bad-txns-inputs-missingorspent"
    assert child.txid not in pool and parent.txid not in pool
    entries = pool.block_template(10**6, 100)
    apply_block(block_on(state, gen, [e.tx for e in entries], sum(e.fee for e in entries)),
                state, params)

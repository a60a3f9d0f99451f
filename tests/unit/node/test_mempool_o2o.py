"""Mempool handling of O2O payloads: one pending claim per purchase / review /
symbol, re-checks after each block, and which refusals count as misbehaviour."""

from __future__ import annotations

import pytest

from o2ocli.consensus.params import ConsensusParams
from o2ocli.core.payloads import Review, review_sig_digest
from o2ocli.core.tx import NATIVE_ASSET, Tx, TxIn, TxOut
from o2ocli.node.mempool import Mempool, MempoolError
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
NOW = 1_700_000_000
FEE = 2_000


@pytest.fixture
def gen() -> ChainGenerator:
    return ChainGenerator(CHAIN_ID, n_keys=6, coins_per_key=4)


@pytest.fixture
def params() -> ConsensusParams:
    return ConsensusParams(CHAIN_ID, review_window=3, min_purchase=1_000)


@pytest.fixture
def state(tmp_path, gen, params):
    chain = ChainState(Database(tmp_path / "db"), params, gen.genesis)
    yield chain
    chain.db.close()


@pytest.fixture
def pool(state, params) -> Mempool:
    return Mempool(state, params, min_fee_rate=1)


MERCHANT = deterministic_key(b"merchant", 0)


def pay(coin: Spendable, to, amount: int) -> Tx:
    change = coin.output.amount - amount - FEE
    outputs = (TxOut(NATIVE_ASSET, amount, to), TxOut(NATIVE_ASSET, change, p2a(coin.key)))
    return sign_tx(Tx((TxIn(coin.outpoint),), outputs), [[coin.key]], CHAIN_ID)


def review_tx(coin: Spendable, purchase: Tx, rating: int = 5, text: bytes = b"good",
              reviewer=None) -> Tx:
    """A review of ``purchase`` by ``reviewer`` (default: the coin's key), fee from ``coin``."""
    reviewer = reviewer or coin.key
    unsigned = Review(MERCHANT.public_key.hash160(), purchase.txid, rating, text,
                      reviewer.public_key.to_bytes(), bytes(64))
    sig = reviewer.sign(review_sig_digest(unsigned, CHAIN_ID))
    payload = Review(unsigned.merchant, unsigned.purchase, rating, text, unsigned.pubkey, sig)
    out = TxOut(NATIVE_ASSET, coin.output.amount - FEE, p2a(coin.key))
    tx = Tx((TxIn(coin.outpoint),), (out,), payload=payload)
    return sign_tx(tx, [[coin.key]], CHAIN_ID)


def mine(state: ChainState, gen: ChainGenerator, txs: list[Tx]) -> None:
    block = make_block(gen.tip, txs, fees=FEE * len(txs), fee_lock=p2a(gen.miner))
    state.add_block(block)
    gen.tip = block.header
    return block


def bought(state, gen) -> tuple[Tx, list[Spendable]]:
    """A purchase by the first pool coin's key, mined; returns it and spare coins
    of the same key (for review fees)."""
    buyer_coin = gen.pool.popleft()
    spare = [c for c in gen.pool if c.key == buyer_coin.key]
    for c in spare:
        gen.pool.remove(c)
    purchase = pay(buyer_coin, p2a(MERCHANT), 50_000)
    mine(state, gen, [purchase])
    return purchase, spare


def test_second_review_of_a_purchase_is_a_mempool_conflict(state, gen, pool):
    purchase, spare = bought(state, gen)
    first = review_tx(spare[0], purchase, text=b"first")
    pool.accept(first, NOW)
    second = review_tx(spare[1], purchase, text=b"second")
    with pytest.raises(MempoolError) as err:
        pool.accept(second, NOW)
    assert err.value.reason == "txn-mempool-conflict"
    assert err.value.conflict == first.txid
    assert first.txid in pool and second.txid not in pool
    assert pool.claimed(("review-of-purchase", purchase.txid)) == first.txid
    # The same inside one batch: the second of the batch is refused.
    pool2 = Mempool(state, pool.params, min_fee_rate=1)
    results = pool2.accept_many([first, second], NOW)
    assert not isinstance(results[0], MempoolError)
    assert isinstance(results[1], MempoolError) and results[1].reason == "txn-mempool-conflict"


def test_block_with_another_review_evicts_the_pending_one(state, gen, pool):
    purchase, spare = bought(state, gen)
    pending = review_tx(spare[0], purchase, text=b"pending")
    pool.accept(pending, NOW)
    other = review_tx(spare[1], purchase, text=b"mined elsewhere")
    block = mine(state, gen, [other])
    removed = pool.remove_for_block(block)
    assert pending.txid in removed and pending.txid not in pool
    assert pool.claimed(("review-of-purchase", purchase.txid)) is None
    with pytest.raises(MempoolError) as err:
        pool.accept(pending, NOW)
    assert err.value.reason == "bad-review-duplicate"


def test_review_leaves_the_pool_when_its_window_closes(state, gen, pool, params):
    purchase, spare = bought(state, gen)  # purchase at height 1; window 3
    pending = review_tx(spare[0], purchase)
    pool.accept(pending, NOW)  # valid for height 2
    for _ in range(2):  # tip 3: the next block (4) is still inside the window
        pool.remove_for_block(mine(state, gen, []))
    assert pending.txid in pool
    block = mine(state, gen, [])  # tip 4: the next block (5) is 4 blocks after
    assert pending.txid in pool.remove_for_block(block)
    assert pending.txid not in pool


def test_state_dependent_refusals_are_not_misbehaviour(state, gen, pool):
    purchase, spare = bought(state, gen)
    unknown = pay(gen.pool.popleft(), p2a(MERCHANT), 60_000)  # never mined
    with pytest.raises(MempoolError) as err:
        pool.accept(review_tx(spare[0], unknown), NOW)
    assert err.value.reason == "bad-review-no-purchase"
    assert err.value.consensus is False  # a peer ahead of us may know the purchase
    with pytest.raises(MempoolError) as err:
        pool.accept(review_tx(spare[1], purchase, rating=0), NOW)
    assert err.value.reason == "bad-review-rating"
    assert err.value.consensus is True  # wrong everywhere: the sender misbehaves
    assert len(pool) == 0


def test_review_by_a_bystander_is_refused_and_changes_nothing(state, gen, pool):
    purchase, spare = bought(state, gen)
    bystander = gen.pool.popleft()
    before = (len(pool), pool.total_bytes)
    with pytest.raises(MempoolError) as err:
        pool.accept(review_tx(bystander, purchase, reviewer=bystander.key), NOW)
    assert err.value.reason == "bad-review-not-buyer"
    assert (len(pool), pool.total_bytes) == before
    assert pool.claimed(("review-of-purchase", purchase.txid)) is None


def test_chained_mints_must_fit_the_supply_together(state, gen, pool, params):
    """Each mint alone is checked against the tip's supply; the pool also keeps
    the chain of pending mints under the limit, or the next block template
    would be invalid (and every validator would stall on it)."""
    from o2ocli.consensus.params import MAX_AMOUNT
    from o2ocli.core.locks import lock_bytes
    from o2ocli.core.payloads import (
        TokenCommit,
        TokenIssue,
        TokenMint,
        authority_asset_id,
        token_asset_id,
        token_commitment,
    )
    from o2ocli.core.tx import Outpoint

    issuer = gen.pool.popleft()
    key, lock = issuer.key, p2a(issuer.key)
    salt = bytes(range(32))
    commit = sign_tx(Tx((TxIn(issuer.outpoint),), (
        TxOut(NATIVE_ASSET, issuer.output.amount - FEE, lock),),
        payload=TokenCommit(token_commitment("BIG", salt, lock_bytes(lock)))), [[key]], CHAIN_ID)
    mine(state, gen, [commit])
    asset, authority = token_asset_id("BIG"), authority_asset_id(token_asset_id("BIG"))
    supply = MAX_AMOUNT - 100
    reveal = sign_tx(Tx((TxIn(Outpoint(commit.txid, 0)),), (
        TxOut(asset, supply, lock), TxOut(authority, 1, lock),
        TxOut(NATIVE_ASSET, commit.outputs[0].amount - FEE, lock)),
        payload=TokenIssue(b"BIG", b"Big points", 0, True, salt)), [[key]], CHAIN_ID)
    mine(state, gen, [reveal])

    def mint(auth_op: Outpoint, fee_op: Outpoint, fee_value: int, amount: int) -> Tx:
        outs = (TxOut(asset, amount, lock), TxOut(authority, 1, lock),
                TxOut(NATIVE_ASSET, fee_value - FEE, lock))
        return sign_tx(Tx((TxIn(auth_op), TxIn(fee_op)), outs, payload=TokenMint(asset, amount)),
                       [[key], [key]], CHAIN_ID)

    first = mint(Outpoint(reveal.txid, 1), Outpoint(reveal.txid, 2),
                 reveal.outputs[2].amount, 60)
    pool.accept(first, NOW)
    second = mint(Outpoint(first.txid, 1), Outpoint(first.txid, 2), first.outputs[2].amount, 60)
    with pytest.raises(MempoolError) as err:
        pool.accept(second, NOW)  # 60 alone fits the tip's supply; 60 + 60 does not
    assert err.value.reason == "txn-mint-overflow"
    assert second.txid not in pool and first.txid in pool
    # The same within one batch.
    pool2 = Mempool(state, pool.params, min_fee_rate=1)
    results = pool2.accept_many([first, second], NOW)
    assert not isinstance(results[0], MempoolError)
    assert isinstance(results[1], MempoolError) and results[1].reason == "txn-mint-overflow"
    # Once the first mint is mined the second is judged against the new supply.
    pool.remove_for_block(mine(state, gen, [first]))
    with pytest.raises(MempoolError) as err:
        pool.accept(second, NOW)
    assert err.value.reason == "bad-token-supply-overflow"

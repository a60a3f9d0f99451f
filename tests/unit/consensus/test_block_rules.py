"""Block rules (:mod:`o2ocli.consensus.block`): structure, links, applying a
block's transactions to a UTXO view, and the genesis block.

The chain starts from a real genesis block (``kit.genesis()``: coin ``i`` of its
single allocation belongs to ``keys[i % 4]``); all spends are really signed.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from o2ocli.consensus.block import (
    BlockEffects,
    apply_block,
    check_block_links,
    check_block_size,
    check_block_structure,
    check_fee_claim,
    check_fee_claim_placement,
    check_genesis_block,
    check_merkle_root,
    check_no_duplicate_txids,
    genesis_effects,
)
from o2ocli.consensus.errors import BlockInvalid
from o2ocli.consensus.params import MAX_AMOUNT, ConsensusParams
from o2ocli.consensus.tx import serial_verifier
from o2ocli.core.block import Block, BlockHeader, tx_merkle_root
from o2ocli.core.locks import PayToAddress
from o2ocli.core.payloads import NO_PAYLOAD, Coinbase, GenesisAlloc
from o2ocli.core.tx import NATIVE_ASSET, Coin, Outpoint, SigPair, Tx, TxIn, TxOut
from o2ocli.crypto.hashes import sha256

COIN = 1_000_000  # value of each genesis coin (see conftest)
TOKEN = sha256(b"o2o-consensus-tests/token-a")


@pytest.fixture
def genesis(kit):
    return kit.genesis()


def gop(genesis, i):
    """Outpoint of genesis coin ``i``."""
    return Outpoint(genesis.txs[0].txid, i)


def pay(kit, genesis, coins, amounts, *, lock_height=0):
    """Spend genesis coins ``coins`` (each signed by its owner) into ``amounts`` paid to keys[1]."""
    prevouts = [gop(genesis, i) for i in coins]
    signers = [[kit.keys[i % 4]] for i in coins]
    outputs = [kit.out(a) for a in amounts]
    return kit.spend(prevouts, outputs, signers, lock_height=lock_height)


def with_bad_signature(tx, index=0):
    """``tx`` with the first signature of input ``index`` corrupted (last bit of s flipped)."""
    witnesses = [txin.witness for txin in tx.inputs]
    pair = witnesses[index][0]
    corrupted = pair.signature[:-1] + bytes([pair.signature[-1] ^ 1])
    witnesses[index] = (SigPair(pair.pubkey, corrupted),) + witnesses[index][1:]
    return tx.with_witnesses(witnesses)


def genesis_block(txs, *, height=0, prev_hash=bytes(32), root=None):
    root = tx_merkle_root(txs) if root is None else root
    return Block(BlockHeader(height, prev_hash, root, 1_700_000_000), tuple(txs))


class Recorder:
    """A verifier that records every batch it is given, then verifies it for real."""

    def __init__(self):
        self.calls = []

    def __call__(self, checks):
        self.calls.append(list(checks))
        return serial_verifier(checks)


# ---------------------------------------------------------------------------
# check_block_structure and its parts
# ---------------------------------------------------------------------------


def test_valid_block_structure(kit, params, genesis):
    tx1 = pay(kit, genesis, [0], [COIN - 100])
    tx2 = pay(kit, genesis, [1, 5], [COIN, COIN - 50])
    block = kit.block(genesis.header, [kit.claim(1, 150), tx1, tx2])
    check_block_structure(block, params)
    check_block_structure(kit.block(genesis.header, [tx1, tx2]), params)
    check_block_structure(kit.block(genesis.header, []), params)


def test_block_size_at_limit_is_valid_and_one_byte_more_is_not(kit, genesis):
    block = kit.block(genesis.header, [kit.claim(1, 100), pay(kit, genesis, [0], [COIN - 100])])
    check_block_size(block, ConsensusParams("o2o-test", max_block_size=block.size))
    small = ConsensusParams("o2o-test", max_block_size=block.size - 1)
    with pytest.raises(BlockInvalid) as e:
        check_block_size(block, small)
    assert e.value.reason == "bad-blk-length"
    with pytest.raises(BlockInvalid) as e:
        check_block_structure(block, small)
    assert e.value.reason == "bad-blk-length"


def test_block_with_too_many_txs_is_rejected(kit, genesis):
    txs = [kit.claim(1, 300)] + [pay(kit, genesis, [i], [COIN - 100]) for i in range(3)]
    block = kit.block(genesis.header, txs)
    check_block_size(block, ConsensusParams("o2o-test", max_block_txs=4))
    limit = ConsensusParams("o2o-test", max_block_txs=3)
    with pytest.raises(BlockInvalid) as e:
        check_block_size(block, limit)
    assert e.value.reason == "bad-blk-length"
    with pytest.raises(BlockInvalid) as e:
        check_block_structure(block, limit)
    assert e.value.reason == "bad-blk-length"


def test_wrong_merkle_root_is_rejected(kit, params, genesis):
    tx1 = pay(kit, genesis, [0], [COIN - 100])
    tx2 = pay(kit, genesis, [1], [COIN - 100])
    block = kit.block(genesis.header, [tx1, tx2])
    check_merkle_root(block)
    bad_root = Block(replace(block.header, merkle_root=sha256(b"not the root")), block.txs)
    reordered = Block(block.header, (tx2, tx1))
    dropped = Block(block.header, (tx1,))
    for bad in (bad_root, reordered, dropped):
        with pytest.raises(BlockInvalid) as e:
            check_merkle_root(bad)
        assert e.value.reason == "bad-txnmrklroot"
        with pytest.raises(BlockInvalid) as e:
            check_block_structure(bad, params)
        assert e.value.reason == "bad-txnmrklroot"


def test_merkle_root_commits_to_witnesses(kit, genesis):
    # The root is over wtxids: a copy of a block with one corrupted signature has
    # the same header (hash) but fails here, before it could be stored and get the
    # genuine block's hash marked invalid.
    tx = pay(kit, genesis, [0], [COIN - 100])
    block = kit.block(genesis.header, [tx])
    check_merkle_root(block)
    with pytest.raises(BlockInvalid) as e:
        check_merkle_root(Block(block.header, (with_bad_signature(tx),)))
    assert e.value.reason == "bad-txnmrklroot"


def test_duplicate_tx_is_rejected(kit, params, genesis):
    tx1 = pay(kit, genesis, [0], [COIN - 100])
    tx2 = pay(kit, genesis, [1], [COIN - 100])
    check_no_duplicate_txids(kit.block(genesis.header, [tx1, tx2]))
    block = kit.block(genesis.header, [tx1, tx2, tx1])
    with pytest.raises(BlockInvalid) as e:
        check_no_duplicate_txids(block)
    assert e.value.reason == "bad-blk-duplicate-tx"
    with pytest.raises(BlockInvalid) as e:
        check_block_structure(block, params)
    assert e.value.reason == "bad-blk-duplicate-tx"


def test_duplicate_tx_with_different_witness_is_still_a_duplicate(kit, params, genesis):
    tx1 = pay(kit, genesis, [0], [COIN - 100])
    block = kit.block(genesis.header, [tx1, with_bad_signature(tx1)])
    with pytest.raises(BlockInvalid) as e:
        check_block_structure(block, params)
    assert e.value.reason == "bad-blk-duplicate-tx"


def test_fee_claim_first_with_its_height_is_placed_validly(kit, genesis):
    tx1 = pay(kit, genesis, [0], [COIN - 100])
    check_fee_claim_placement(kit.block(genesis.header, [kit.claim(1, 100), tx1]))


def test_fee_claim_not_first_is_rejected(kit, params, genesis):
    tx1 = pay(kit, genesis, [0], [COIN - 100])
    block = kit.block(genesis.header, [tx1, kit.claim(1, 100)])
    with pytest.raises(BlockInvalid) as e:
        check_fee_claim_placement(block)
    assert e.value.reason == "bad-cb-multiple"
    with pytest.raises(BlockInvalid) as e:
        check_block_structure(block, params)
    assert e.value.reason == "bad-cb-multiple"


def test_two_fee_claims_are_rejected(kit, params, genesis):
    tx1 = pay(kit, genesis, [0], [COIN - 100])
    block = kit.block(genesis.header, [kit.claim(1, 60), tx1, kit.claim(1, 40)])
    with pytest.raises(BlockInvalid) as e:
        check_block_structure(block, params)
    assert e.value.reason == "bad-cb-multiple"
    with pytest.raises(BlockInvalid) as e:
        check_block_structure(
            kit.block(genesis.header, [kit.claim(1, 60), kit.claim(1, 40)]), params
        )
    assert e.value.reason == "bad-cb-multiple"


@pytest.mark.parametrize("claimed_height", [0, 2, 2**32 - 1])
def test_fee_claim_for_another_height_is_rejected(kit, params, genesis, claimed_height):
    tx1 = pay(kit, genesis, [0], [COIN - 100])
    block = kit.block(genesis.header, [kit.claim(claimed_height, 100), tx1])
    with pytest.raises(BlockInvalid) as e:
        check_fee_claim_placement(block)
    assert e.value.reason == "bad-cb-height"
    with pytest.raises(BlockInvalid) as e:
        check_block_structure(block, params)
    assert e.value.reason == "bad-cb-height"


def test_tx_rule_failure_propagates_with_the_tx_reason_and_index(kit, params, genesis):
    good = pay(kit, genesis, [0], [COIN - 100])
    bad = pay(kit, genesis, [1], [COIN - 100, 0])
    block = kit.block(genesis.header, [kit.claim(1, 100), good, bad])
    with pytest.raises(BlockInvalid) as e:
        check_block_structure(block, params)
    assert e.value.reason == "bad-txns-vout-zero"
    assert e.value.message.startswith(f"tx 2 ({bad.txid.hex()[:16]}")


def test_genesis_allocation_in_a_later_block_is_rejected(kit, params, genesis):
    alloc = Tx((), (kit.out(COIN),), payload=GenesisAlloc(b"more money"))
    block = kit.block(genesis.header, [alloc])
    with pytest.raises(BlockInvalid) as e:
        check_block_structure(block, params)
    assert e.value.reason == "bad-txns-genesis-payload"
    assert e.value.message.startswith("tx 0 (")


def test_fee_claim_paying_a_token_is_rejected_by_structure(kit, params, genesis):
    claim = Tx((), (kit.out(100, asset=TOKEN),), payload=Coinbase(1))
    block = kit.block(genesis.header, [claim])
    with pytest.raises(BlockInvalid) as e:
        check_block_structure(block, params)
    assert e.value.reason == "bad-cb-asset"


# Nonces found offline by trying 0, 1, 2, ... (about 2**8 and 2**24 SHA-256d
# evaluations): they make the txids of a valid fee claim and a valid payment line
# up with the byte layout of a 65-byte transaction (see the test below).
CLAIM_NONCE = 340
PAY_NONCE = 19_465_316


def ground_address(tag, nonce):
    return PayToAddress(sha256(b"o2o-merkle-grind/" + tag + nonce.to_bytes(8, "big"))[:20])


def test_merkle_root_commits_to_one_tx_list_only(kit, view, params, genesis):
    """A block's merkle root (hence its hash) must commit to exactly one tx list.

    Leaves are bare txids and an inner node is SHA-256d(0x01 || left || right): a
    65-byte preimage.  A transaction whose stripped encoding is exactly
    ``0x01 || txid_a || txid_b`` therefore has the txid ``merkle_root([a, b])``.
    That encoding parses as: version ``01 a0 a1 a2``, 1 input, 0 outputs, a lock
    height, and a GenesisAlloc payload with a 17-byte note -- which only needs
    ``a[3] == 1, b[8] == 0, b[13] == 2, b[14] == 17`` (32 bits, ~2**24 work on b).
    """
    claim = Tx(
        (), (TxOut(NATIVE_ASSET, 100, ground_address(b"claim", CLAIM_NONCE)),), payload=Coinbase(1)
    )
    payee = ground_address(b"pay", PAY_NONCE)
    payment = kit.spend([gop(genesis, 1)], [kit.out(COIN - 100, payee)], [[kit.keys[1]]])
    a, b = claim.txid, payment.txid
    assert (a[3], b[8], b[13], b[14]) == (1, 0, 2, 17), "grinding nonces are stale"

    honest = kit.block(genesis.header, [claim, payment])
    check_block_structure(honest, params)
    assert apply_block(honest, view, params).fees == 100

    forged_tx = Tx.from_bytes(b"\x01" + a + b + b"\x00")  # 65-byte stripped tx + witness count
    forged = Block(honest.header, (forged_tx,))
    assert forged.hash == honest.hash and forged.txs != honest.txs
    with pytest.raises(BlockInvalid) as e:
        check_block_structure(forged, params)
    # The forged block must be rejected as *not matching its header*, so a node
    # can never blame (and ban) the honest block's hash for it.  It currently
    # passes the merkle check and only fails on its (invalid) transaction.
    assert e.value.reason == "bad-txnmrklroot"


# ---------------------------------------------------------------------------
# check_block_links
# ---------------------------------------------------------------------------


def test_block_extending_its_parent_is_linked(kit, genesis):
    b1 = kit.block(genesis.header, [])
    b2 = kit.block(b1.header, [])
    check_block_links(b1.header, genesis.header)
    check_block_links(b2.header, b1.header)


def test_wrong_prev_hash_is_rejected(kit, genesis):
    b1 = kit.block(genesis.header, [])
    with pytest.raises(BlockInvalid) as e:
        check_block_links(replace(b1.header, prev_hash=sha256(b"elsewhere")), genesis.header)
    assert e.value.reason == "bad-prevblk"
    # a sibling of b1 (same height, other time) is not b2's parent
    sibling = replace(b1.header, time=b1.header.time + 1)
    b2 = kit.block(b1.header, [])
    with pytest.raises(BlockInvalid) as e:
        check_block_links(b2.header, sibling)
    assert e.value.reason == "bad-prevblk"


@pytest.mark.parametrize("height", [0, 2, 5])
def test_wrong_height_is_rejected(kit, genesis, height):
    header = replace(kit.block(genesis.header, []).header, height=height)
    assert header.prev_hash == genesis.header.hash
    with pytest.raises(BlockInvalid) as e:
        check_block_links(header, genesis.header)
    assert e.value.reason == "bad-blk-height"


# ---------------------------------------------------------------------------
# check_fee_claim
# ---------------------------------------------------------------------------


def test_fee_claim_of_exactly_the_fees_is_valid(kit):
    check_fee_claim(kit.claim(1, 70, 30), 100)


@pytest.mark.parametrize("amounts", [(101,), (99,), (70, 31), (1,)])
def test_fee_claim_other_than_the_fees_is_rejected(kit, amounts):
    with pytest.raises(BlockInvalid) as e:
        check_fee_claim(kit.claim(1, *amounts), 100)
    assert e.value.reason == "bad-cb-amount"


# ---------------------------------------------------------------------------
# apply_block
# ---------------------------------------------------------------------------


def test_apply_valid_block_reports_spent_created_and_fees(kit, view, params, genesis):
    tx1 = pay(kit, genesis, [0], [600_000, 399_000])  # fee 1_000
    tx2 = pay(kit, genesis, [1, 5], [1_999_500])  # fee 500
    claim = kit.claim(1, 1_000, 500)
    block = kit.block(genesis.header, [claim, tx1, tx2])
    check_block_structure(block, params)
    before = dict(view)

    effects = apply_block(block, view, params)

    assert isinstance(effects, BlockEffects)
    assert effects.fees == 1_500
    spent_ops = [gop(genesis, i) for i in (0, 1, 5)]
    assert effects.spent == tuple((op, before[op]) for op in spent_ops)
    assert effects.created == (
        (Outpoint(claim.txid, 0), Coin(claim.outputs[0], 1, True)),
        (Outpoint(claim.txid, 1), Coin(claim.outputs[1], 1, True)),
        (Outpoint(tx1.txid, 0), Coin(tx1.outputs[0], 1, False)),
        (Outpoint(tx1.txid, 1), Coin(tx1.outputs[1], 1, False)),
        (Outpoint(tx2.txid, 0), Coin(tx2.outputs[0], 1, False)),
    )
    assert view == before  # apply_block computes effects, it changes nothing


def test_apply_block_on_a_later_block_stamps_its_height(kit, view, params, genesis):
    b1 = kit.block(genesis.header, [pay(kit, genesis, [0], [COIN])])
    effects1 = apply_block(b1, view, params)
    for op, _coin in effects1.spent:
        del view[op]
    view.update(effects1.created)
    tx = kit.spend([Outpoint(b1.txs[0].txid, 0)], [kit.out(COIN - 7)], [[kit.keys[1]]])
    b2 = kit.block(b1.header, [kit.claim(2, 7), tx])
    effects2 = apply_block(b2, view, params)
    assert effects2.fees == 7
    assert [coin.height for _op, coin in effects2.created] == [2, 2]
    assert effects2.spent == ((Outpoint(b1.txs[0].txid, 0), Coin(b1.txs[0].outputs[0], 1)),)


def test_block_without_fee_claim_leaves_fees_unclaimed(kit, view, params, genesis):
    tx1 = pay(kit, genesis, [0], [COIN - 1_000])
    block = kit.block(genesis.header, [tx1])
    effects = apply_block(block, view, params)
    assert effects.fees == 1_000
    assert effects.created == ((Outpoint(tx1.txid, 0), Coin(tx1.outputs[0], 1, False)),)


def test_empty_block_has_no_effects(kit, view, params, genesis):
    effects = apply_block(kit.block(genesis.header, []), view, params)
    assert effects == BlockEffects((), (), 0)


def test_spending_an_earlier_tx_output_in_the_same_block_is_allowed(kit, view, params, genesis):
    tx1 = pay(kit, genesis, [0], [990_000, 5_000])  # fee 5_000; both outputs to keys[1]
    mid = Outpoint(tx1.txid, 0)
    tx2 = kit.spend([mid], [kit.out(980_000)], [[kit.keys[1]]])  # fee 10_000
    tx3 = kit.spend([Outpoint(tx2.txid, 0)], [kit.out(979_000)], [[kit.keys[1]]])  # fee 1_000
    claim = kit.claim(1, 16_000)
    block = kit.block(genesis.header, [claim, tx1, tx2, tx3])
    check_block_structure(block, params)

    effects = apply_block(block, view, params)

    assert effects.fees == 16_000
    assert effects.spent == ((gop(genesis, 0), view[gop(genesis, 0)]),)
    created = dict(effects.created)
    assert mid not in created and Outpoint(tx2.txid, 0) not in created
    assert set(created) == {
        Outpoint(claim.txid, 0),
        Outpoint(tx1.txid, 1),
        Outpoint(tx3.txid, 0),
    }
    assert all(op not in created for op, _coin in effects.spent)


def test_spending_a_later_tx_output_is_rejected(kit, view, params, genesis):
    tx1 = pay(kit, genesis, [0], [990_000])
    tx2 = kit.spend([Outpoint(tx1.txid, 0)], [kit.out(980_000)], [[kit.keys[1]]])
    block = kit.block(genesis.header, [kit.claim(1, 20_000), tx2, tx1])
    check_block_structure(block, params)
    with pytest.raises(BlockInvalid) as e:
        apply_block(block, view, params)
    assert e.value.reason == "bad-blk-spend-order"
    assert e.value.message.startswith(f"tx 1 ({tx2.txid.hex()[:16]}")
    # the same two txs in the right order are fine
    apply_block(kit.block(genesis.header, [kit.claim(1, 20_000), tx1, tx2]), view, params)


def test_same_parent_coin_spent_by_two_txs_is_rejected(kit, view, params, genesis):
    a = pay(kit, genesis, [0], [COIN - 100])
    b = pay(kit, genesis, [0], [COIN - 200])
    block = kit.block(genesis.header, [a, b])
    check_block_structure(block, params)
    with pytest.raises(BlockInvalid) as e:
        apply_block(block, view, params)
    assert e.value.reason == "bad-blk-duplicate-input"
    assert e.value.message.startswith(f"tx 1 ({b.txid.hex()[:16]}")


def test_same_in_block_coin_spent_by_two_txs_is_rejected(kit, view, params, genesis):
    tx1 = pay(kit, genesis, [0], [990_000])
    mid = Outpoint(tx1.txid, 0)
    a = kit.spend([mid], [kit.out(980_000)], [[kit.keys[1]]])
    b = kit.spend([mid], [kit.out(970_000)], [[kit.keys[1]]])
    block = kit.block(genesis.header, [tx1, a, b])
    with pytest.raises(BlockInvalid) as e:
        apply_block(block, view, params)
    assert e.value.reason == "bad-blk-duplicate-input"
    assert e.value.message.startswith("tx 2 (")


def test_spending_a_missing_coin_is_rejected(kit, view, params, genesis):
    ghost = kit.spend([Outpoint(sha256(b"ghost"), 0)], [kit.out(1)])
    past_end = pay(kit, genesis, [0], [COIN])
    beyond = kit.spend([Outpoint(past_end.txid, 1)], [kit.out(1)], [[kit.keys[1]]])
    for block in (
        kit.block(genesis.header, [ghost]),
        kit.block(genesis.header, [past_end, beyond]),
    ):
        with pytest.raises(BlockInvalid) as e:
            apply_block(block, view, params)
        assert e.value.reason == "bad-txns-inputs-missingorspent"


@pytest.mark.parametrize("delta", [1, -1, -1_500 + 1])
def test_fee_claim_more_or_less_than_the_fees_is_rejected(kit, view, params, genesis, delta):
    tx1 = pay(kit, genesis, [0], [COIN - 1_000])
    tx2 = pay(kit, genesis, [1], [COIN - 500])
    block = kit.block(genesis.header, [kit.claim(1, 1_500 + delta), tx1, tx2])
    check_block_structure(block, params)
    with pytest.raises(BlockInvalid) as e:
        apply_block(block, view, params)
    assert e.value.reason == "bad-cb-amount"


def test_fee_claim_in_a_block_without_fees_is_rejected(kit, view, params, genesis):
    tx1 = pay(kit, genesis, [0], [COIN])
    block = kit.block(genesis.header, [kit.claim(1, 1), tx1])
    with pytest.raises(BlockInvalid) as e:
        apply_block(block, view, params)
    assert e.value.reason == "bad-cb-amount"


def test_tx_rule_failure_in_apply_block_names_the_tx(kit, view, params, genesis):
    good = pay(kit, genesis, [0], [COIN - 100])
    greedy = pay(kit, genesis, [1], [COIN + 1])
    block = kit.block(genesis.header, [good, greedy])
    with pytest.raises(BlockInvalid) as e:
        apply_block(block, view, params)
    assert e.value.reason == "bad-txns-in-belowout"
    assert e.value.message.startswith(f"tx 1 ({greedy.txid.hex()[:16]}")


def test_lock_height_is_checked_against_the_block_height(kit, view, params, genesis):
    ok = pay(kit, genesis, [0], [COIN], lock_height=1)
    apply_block(kit.block(genesis.header, [ok]), view, params)
    early = pay(kit, genesis, [0], [COIN], lock_height=2)
    with pytest.raises(BlockInvalid) as e:
        apply_block(kit.block(genesis.header, [early]), view, params)
    assert e.value.reason == "bad-txns-premature"


def test_block_fee_overflow_is_rejected(kit, view, params, genesis):
    big = [kit.fund(MAX_AMOUNT), kit.fund(MAX_AMOUNT)]
    txs = [kit.spend([op], [kit.out(1)]) for op in big]
    with pytest.raises(BlockInvalid) as e:
        apply_block(kit.block(genesis.header, txs), view, params)
    assert e.value.reason == "bad-blk-fees"


@pytest.mark.parametrize("bad", [1, 2, 3])
def test_bad_signature_anywhere_names_its_tx(kit, view, params, genesis, bad):
    txs = [
        kit.claim(1, 300),
        pay(kit, genesis, [0], [COIN - 100]),
        pay(kit, genesis, [1, 2], [2 * COIN - 100]),
        pay(kit, genesis, [3], [COIN - 100]),
    ]
    apply_block(kit.block(genesis.header, txs), view, params)
    txs[bad] = with_bad_signature(txs[bad], index=len(txs[bad].inputs) - 1)
    block = kit.block(genesis.header, txs)
    check_block_structure(block, params)
    with pytest.raises(BlockInvalid) as e:
        apply_block(block, view, params)
    assert e.value.reason == "bad-txns-signature"
    assert e.value.message.startswith(f"tx {bad} ({txs[bad].txid.hex()[:16]}")


def test_all_signatures_of_a_block_are_verified_in_one_batch(kit, view, params, genesis):
    members = kit.sorted_keys(3, start=4)
    ms = kit.fund(50_000, kit.multisig(2, members))
    tx1 = pay(kit, genesis, [0], [COIN - 100])
    tx2 = pay(kit, genesis, [1, 5], [2 * COIN - 200])
    tx3 = kit.spend([ms], [kit.out(49_700)], [[members[0], members[2]]])
    block = kit.block(genesis.header, [kit.claim(1, 600), tx1, tx2, tx3])
    recorder = Recorder()

    effects = apply_block(block, view, params, verifier=recorder)

    assert effects.fees == 600
    expected = [
        (pair.pubkey, pair.signature, tx.sighash(params.chain_id))
        for tx in (tx1, tx2, tx3)
        for txin in tx.inputs
        for pair in txin.witness
    ]
    assert len(expected) == 5
    assert recorder.calls == [expected]


def test_cheaper_rules_are_reported_before_signatures(kit, view, params, genesis):
    tx1 = with_bad_signature(pay(kit, genesis, [0], [COIN - 100]))
    block = kit.block(genesis.header, [kit.claim(1, 99), tx1])
    recorder = Recorder()
    with pytest.raises(BlockInvalid) as e:
        apply_block(block, view, params, verifier=recorder)
    assert e.value.reason == "bad-cb-amount"
    assert recorder.calls == []


def test_signature_failure_index_maps_to_the_owning_tx(kit, view, params, genesis):
    txs = [pay(kit, genesis, [0, 1], [2 * COIN]), pay(kit, genesis, [2], [COIN])]

    def fail_third(checks):
        assert len(checks) == 3
        return 2

    with pytest.raises(BlockInvalid) as e:
        apply_block(kit.block(genesis.header, txs), view, params, verifier=fail_third)
    assert e.value.reason == "bad-txns-signature"
    assert e.value.message.startswith(f"tx 1 ({txs[1].txid.hex()[:16]}")


# ---------------------------------------------------------------------------
# check_genesis_block / genesis_effects
# ---------------------------------------------------------------------------


def test_valid_genesis_and_its_effects(kit):
    outs = [kit.out(5, kit.p2a(0)), kit.out(7, kit.p2a(1)), kit.out(9, kit.p2a(2), asset=TOKEN)]
    a = Tx((), tuple(outs[:2]), payload=GenesisAlloc(b"o2o-test/0"))
    b = Tx((), tuple(outs[2:]), payload=GenesisAlloc(b"o2o-test/1"))
    block = genesis_block([a, b])
    check_genesis_block(block)
    effects = genesis_effects(block)
    assert effects.spent == ()
    assert effects.fees == 0
    assert effects.created == (
        (Outpoint(a.txid, 0), Coin(outs[0], 0, False)),
        (Outpoint(a.txid, 1), Coin(outs[1], 0, False)),
        (Outpoint(b.txid, 0), Coin(outs[2], 0, False)),
    )


def test_kit_genesis_is_valid(kit, genesis):
    check_genesis_block(genesis)
    assert len(genesis_effects(genesis).created) == 8


def test_genesis_at_nonzero_height_is_rejected(kit):
    alloc = Tx((), (kit.out(5),), payload=GenesisAlloc(b"g"))
    block = genesis_block([alloc], height=1)
    with pytest.raises(BlockInvalid) as e:
        check_genesis_block(block)
    assert e.value.reason == "bad-genesis"
    with pytest.raises(BlockInvalid) as e:
        genesis_effects(block)
    assert e.value.reason == "bad-genesis"


def test_genesis_with_a_parent_is_rejected(kit):
    alloc = Tx((), (kit.out(5),), payload=GenesisAlloc(b"g"))
    with pytest.raises(BlockInvalid) as e:
        check_genesis_block(genesis_block([alloc], prev_hash=sha256(b"parent")))
    assert e.value.reason == "bad-genesis"


def test_genesis_tx_spending_inputs_is_rejected(kit):
    alloc = Tx((TxIn(Outpoint(sha256(b"x"), 0)),), (kit.out(5),), payload=GenesisAlloc(b"g"))
    with pytest.raises(BlockInvalid) as e:
        check_genesis_block(genesis_block([alloc]))
    assert e.value.reason == "bad-genesis"
    with pytest.raises(BlockInvalid) as e:
        genesis_effects(genesis_block([alloc]))
    assert e.value.reason == "bad-genesis"


@pytest.mark.parametrize("payload", [NO_PAYLOAD, Coinbase(0)], ids=["plain", "fee-claim"])
def test_genesis_tx_that_is_not_an_allocation_is_rejected(kit, payload):
    alloc = Tx((), (kit.out(5),), payload=GenesisAlloc(b"g"))
    other = Tx((), (kit.out(6),), payload=payload)
    with pytest.raises(BlockInvalid) as e:
        check_genesis_block(genesis_block([alloc, other]))
    assert e.value.reason == "bad-genesis"


@pytest.mark.parametrize("amount", [0, MAX_AMOUNT + 1])
def test_genesis_amount_out_of_range_is_rejected(kit, amount):
    alloc = Tx((), (kit.out(5), kit.out(amount)), payload=GenesisAlloc(b"g"))
    with pytest.raises(BlockInvalid) as e:
        check_genesis_block(genesis_block([alloc]))
    assert e.value.reason == "bad-genesis"


def test_genesis_with_wrong_merkle_root_is_rejected(kit):
    alloc = Tx((), (kit.out(5),), payload=GenesisAlloc(b"g"))
    with pytest.raises(BlockInvalid) as e:
        check_genesis_block(genesis_block([alloc], root=sha256(b"nope")))
    assert e.value.reason == "bad-txnmrklroot"


def test_genesis_with_duplicate_tx_is_rejected(kit):
    alloc = Tx((), (kit.out(5),), payload=GenesisAlloc(b"g"))
    with pytest.raises(BlockInvalid) as e:
        check_genesis_block(genesis_block([alloc, alloc]))
    assert e.value.reason == "bad-blk-duplicate-tx"


def test_genesis_native_allocation_is_spendable(kit, view, params, genesis):
    # the coins genesis_effects creates are real, spendable coins
    assert view[gop(genesis, 2)] == Coin(TxOut(NATIVE_ASSET, COIN, kit.p2a(2)), 0, False)
    tx = pay(kit, genesis, [2], [COIN - 1])
    assert apply_block(kit.block(genesis.header, [kit.claim(1, 1), tx]), view, params).fees == 1


def test_header_version_must_be_current(kit, params, genesis):
    from dataclasses import replace as dc_replace

    from o2ocli.consensus.block import check_header_version
    from o2ocli.core.block import BLOCK_VERSION_VOTES

    block = kit.block(genesis.header, [pay(kit, genesis, [0], [COIN - 100])])
    check_header_version(block.header)
    check_header_version(dc_replace(block.header, version=BLOCK_VERSION_VOTES))
    for bad in (0, BLOCK_VERSION_VOTES + 1):
        with pytest.raises(BlockInvalid) as e:
            check_header_version(dc_replace(block.header, version=bad))
        assert e.value.reason == "bad-blk-version"
    future = dc_replace(block.header, version=BLOCK_VERSION_VOTES + 1)
    with pytest.raises(BlockInvalid) as e:
        check_header_version(future)
    assert e.value.reason == "bad-blk-version"
    with pytest.raises(BlockInvalid) as e:
        check_block_structure(Block(future, block.txs), params)
    assert e.value.reason == "bad-blk-version"

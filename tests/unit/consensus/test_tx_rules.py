"""Transaction rules (:mod:`o2ocli.consensus.tx`) and lock rules (:mod:`o2ocli.consensus.locks`).

Each rule gets its valid case and one test per way to break it; every failure is
asserted by its stable ``reason``.  Signatures are real (libsecp256k1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

from o2ocli.consensus.errors import TxInvalid
from o2ocli.consensus.locks import check_multisig, check_pay_to_address, lock_signature_checks
from o2ocli.consensus.params import MAX_AMOUNT, ConsensusParams
from o2ocli.consensus.tx import (
    check_asset_conservation,
    check_lock_height,
    check_no_duplicate_inputs,
    check_output_amounts,
    check_payload_placement,
    check_transaction,
    check_tx_inputs,
    check_tx_not_empty,
    check_tx_size,
    check_tx_version,
    collect_signature_checks,
    resolve_inputs,
    serial_verifier,
    validate_transaction,
)
from o2ocli.core.encoding import MAX_U64
from o2ocli.core.locks import Multisig
from o2ocli.core.payloads import Coinbase, GenesisAlloc
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, SigPair, Tx, TxIn
from o2ocli.crypto.backends import DEFAULT_BACKEND, SECP256K1_HALF_N, SECP256K1_N
from o2ocli.crypto.hashes import sha256

TOKEN = sha256(b"o2o-consensus-tests/token-a")
OTHER_TOKEN = sha256(b"o2o-consensus-tests/token-b")


def simple_spend(kit, amount=1_000, pay=900, **kwargs):
    """A signed 1-in/1-out native spend of a fresh ``keys[0]`` coin (fee = amount - pay)."""
    op = kit.fund(amount)
    return kit.spend([op], [kit.out(pay)], **kwargs)


def witness(keys, digest):
    """(pubkey, signature) pairs of ``keys`` over ``digest``."""
    return tuple(SigPair(k.public_key.to_bytes(), k.sign(digest)) for k in keys)


def with_witness(tx, index, pairs):
    """``tx`` with the witness of input ``index`` replaced (same txid and sighash)."""
    witnesses = [txin.witness for txin in tx.inputs]
    witnesses[index] = tuple(pairs)
    return tx.with_witnesses(witnesses)


# ---------------------------------------------------------------------------
# serial_verifier
# ---------------------------------------------------------------------------


def test_serial_verifier_accepts_valid_checks(keys):
    digest = sha256(b"message")
    checks = [(k.public_key.to_bytes(), k.sign(digest), digest) for k in keys[:3]]
    assert serial_verifier(checks) is None
    assert serial_verifier([]) is None


def test_serial_verifier_reports_first_failing_index(keys):
    digest = sha256(b"message")
    checks = [(k.public_key.to_bytes(), k.sign(digest), digest) for k in keys[:4]]
    checks[2] = (keys[2].public_key.to_bytes(), keys[3].sign(digest), digest)
    checks[3] = (keys[3].public_key.to_bytes(), keys[2].sign(digest), digest)
    assert serial_verifier(checks) == 2


# ---------------------------------------------------------------------------
# check_tx_version
# ---------------------------------------------------------------------------


def test_tx_version_1_is_valid(kit):
    check_tx_version(simple_spend(kit))


@pytest.mark.parametrize("version", [0, 2, 2**32 - 1])
def test_tx_version_other_than_1_is_rejected(kit, params, version):
    op = kit.fund()
    tx = kit.spend([op], [kit.out(900)], version=version)
    with pytest.raises(TxInvalid) as e:
        check_tx_version(tx)
    assert e.value.reason == "bad-txns-version"
    with pytest.raises(TxInvalid) as e:
        check_transaction(tx, params)
    assert e.value.reason == "bad-txns-version"


# ---------------------------------------------------------------------------
# check_tx_size
# ---------------------------------------------------------------------------


def test_tx_size_exactly_at_limit_is_valid(kit):
    tx = simple_spend(kit)
    check_tx_size(tx, ConsensusParams("o2o-test", max_tx_size=tx.size))


def test_tx_one_byte_over_size_limit_is_rejected(kit):
    tx = simple_spend(kit)
    with pytest.raises(TxInvalid) as e:
        check_tx_size(tx, ConsensusParams("o2o-test", max_tx_size=tx.size - 1))
    assert e.value.reason == "bad-txns-oversize"


def test_tx_size_counts_the_witnesses(kit):
    op = kit.fund()
    unsigned = kit.unsigned([op], [kit.out(900)])
    signed = kit.sign(unsigned, [[kit.keys[0]]])
    limit = ConsensusParams("o2o-test", max_tx_size=unsigned.size)
    check_tx_size(unsigned, limit)
    with pytest.raises(TxInvalid) as e:
        check_tx_size(signed, limit)
    assert e.value.reason == "bad-txns-oversize"


def test_oversize_tx_is_rejected_by_check_transaction(kit):
    tx = simple_spend(kit)
    with pytest.raises(TxInvalid) as e:
        check_transaction(tx, ConsensusParams("o2o-test", max_tx_size=64))
    assert e.value.reason == "bad-txns-oversize"


def test_tx_inputs_at_limit_valid_and_one_more_rejected(kit):
    limit = ConsensusParams("o2o-test", max_tx_inputs=2)
    ops = [kit.fund() for _ in range(3)]
    check_tx_size(kit.spend(ops[:2], [kit.out(1)]), limit)
    with pytest.raises(TxInvalid) as e:
        check_tx_size(kit.spend(ops, [kit.out(1)]), limit)
    assert e.value.reason == "bad-txns-too-many-inputs"


def test_tx_outputs_at_limit_valid_and_one_more_rejected(kit):
    limit = ConsensusParams("o2o-test", max_tx_outputs=2)
    op = kit.fund()
    check_tx_size(kit.spend([op], [kit.out(1)] * 2), limit)
    with pytest.raises(TxInvalid) as e:
        check_tx_size(kit.spend([op], [kit.out(1)] * 3), limit)
    assert e.value.reason == "bad-txns-too-many-outputs"


# ---------------------------------------------------------------------------
# check_tx_not_empty
# ---------------------------------------------------------------------------


def test_ordinary_tx_with_inputs_and_outputs_is_not_empty(kit):
    check_tx_not_empty(simple_spend(kit))


def test_fee_claim_and_genesis_alloc_need_no_inputs(kit):
    check_tx_not_empty(kit.claim(5, 100))
    check_tx_not_empty(Tx((), (kit.out(100),), payload=GenesisAlloc(b"o2o-test")))


def test_tx_without_outputs_is_rejected(kit):
    op = kit.fund()
    with pytest.raises(TxInvalid) as e:
        check_tx_not_empty(kit.spend([op], []))
    assert e.value.reason == "bad-txns-vout-empty"


def test_fee_claim_without_outputs_is_rejected(kit):
    with pytest.raises(TxInvalid) as e:
        check_tx_not_empty(kit.claim(5))
    assert e.value.reason == "bad-txns-vout-empty"


def test_ordinary_tx_without_inputs_is_rejected(kit, params):
    tx = Tx((), (kit.out(100),))
    with pytest.raises(TxInvalid) as e:
        check_tx_not_empty(tx)
    assert e.value.reason == "bad-txns-vin-empty"
    with pytest.raises(TxInvalid) as e:
        check_transaction(tx, params)
    assert e.value.reason == "bad-txns-vin-empty"


def test_coinbase_payload_with_inputs_is_rejected(kit, params):
    op = kit.fund()
    tx = kit.spend([op], [kit.out(900)], payload=Coinbase(1))
    assert not tx.is_coinbase
    with pytest.raises(TxInvalid) as e:
        check_tx_not_empty(tx)
    assert e.value.reason == "bad-cb-has-inputs"
    with pytest.raises(TxInvalid) as e:
        check_transaction(tx, params)
    assert e.value.reason == "bad-cb-has-inputs"


def test_genesis_alloc_payload_with_inputs_is_rejected(kit):
    op = kit.fund()
    tx = kit.spend([op], [kit.out(900)], payload=GenesisAlloc(b"o2o-test"))
    with pytest.raises(TxInvalid) as e:
        check_tx_not_empty(tx)
    assert e.value.reason == "bad-cb-has-inputs"


# ---------------------------------------------------------------------------
# check_no_duplicate_inputs
# ---------------------------------------------------------------------------


def test_distinct_inputs_are_valid_even_from_one_txid(kit):
    txid = sha256(b"parent")
    tx = kit.unsigned([Outpoint(txid, 0), Outpoint(txid, 1)], [kit.out(1)])
    check_no_duplicate_inputs(tx)


def test_duplicate_input_is_rejected(kit, params):
    op = kit.fund()
    other = kit.fund()
    tx = kit.spend([op, other, op], [kit.out(1)])
    with pytest.raises(TxInvalid) as e:
        check_no_duplicate_inputs(tx)
    assert e.value.reason == "bad-txns-duplicate-input"
    with pytest.raises(TxInvalid) as e:
        check_transaction(tx, params)
    assert e.value.reason == "bad-txns-duplicate-input"


# ---------------------------------------------------------------------------
# check_output_amounts
# ---------------------------------------------------------------------------


def test_output_amounts_at_both_bounds_are_valid(kit):
    op = kit.fund()
    check_output_amounts(kit.unsigned([op], [kit.out(1), kit.out(MAX_AMOUNT - 1)]))
    check_output_amounts(kit.unsigned([op], [kit.out(MAX_AMOUNT)]))


def test_zero_amount_output_is_rejected(kit, params):
    op = kit.fund()
    tx = kit.spend([op], [kit.out(5), kit.out(0)])
    with pytest.raises(TxInvalid) as e:
        check_output_amounts(tx)
    assert e.value.reason == "bad-txns-vout-zero"
    with pytest.raises(TxInvalid) as e:
        check_transaction(tx, params)
    assert e.value.reason == "bad-txns-vout-zero"


@pytest.mark.parametrize("amount", [MAX_AMOUNT + 1, MAX_U64])
def test_output_amount_above_max_is_rejected(kit, amount):
    op = kit.fund()
    with pytest.raises(TxInvalid) as e:
        check_output_amounts(kit.unsigned([op], [kit.out(amount)]))
    assert e.value.reason == "bad-txns-vout-toolarge"


def test_token_output_amount_above_max_is_rejected(kit):
    op = kit.fund()
    with pytest.raises(TxInvalid) as e:
        check_output_amounts(kit.unsigned([op], [kit.out(MAX_AMOUNT + 1, asset=TOKEN)]))
    assert e.value.reason == "bad-txns-vout-toolarge"


def test_per_asset_output_sum_overflow_is_rejected(kit):
    op = kit.fund()
    tx = kit.unsigned([op], [kit.out(MAX_AMOUNT - 1), kit.out(1), kit.out(1)])
    with pytest.raises(TxInvalid) as e:
        check_output_amounts(tx)
    assert e.value.reason == "bad-txns-txouttotal-toolarge"


def test_per_asset_token_sum_overflow_is_rejected(kit):
    op = kit.fund()
    outs = [kit.out(MAX_AMOUNT, asset=TOKEN), kit.out(1, asset=TOKEN)]
    with pytest.raises(TxInvalid) as e:
        check_output_amounts(kit.unsigned([op], outs))
    assert e.value.reason == "bad-txns-txouttotal-toolarge"


def test_output_sums_are_per_asset(kit):
    op = kit.fund()
    outs = [
        kit.out(MAX_AMOUNT),
        kit.out(MAX_AMOUNT, asset=TOKEN),
        kit.out(MAX_AMOUNT, asset=OTHER_TOKEN),
    ]
    check_output_amounts(kit.unsigned([op], outs))


# ---------------------------------------------------------------------------
# check_payload_placement
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FuturePayload:
    """A payload type no rule knows yet (as a later feature would add)."""

    TAG: ClassVar[int] = 0x7F

    def _encode_body(self, w):
        pass


def test_ordinary_payload_and_native_fee_claim_are_placed_validly(kit):
    check_payload_placement(simple_spend(kit))
    check_payload_placement(kit.claim(3, 10, 20))


def test_genesis_alloc_outside_genesis_is_rejected(kit, params):
    tx = Tx((), (kit.out(100),), payload=GenesisAlloc(b"o2o-test"))
    with pytest.raises(TxInvalid) as e:
        check_payload_placement(tx)
    assert e.value.reason == "bad-txns-genesis-payload"
    with pytest.raises(TxInvalid) as e:
        check_transaction(tx, params)
    assert e.value.reason == "bad-txns-genesis-payload"


def test_fee_claim_with_token_output_is_rejected(kit, params):
    tx = Tx((), (kit.out(10), kit.out(10, asset=TOKEN)), payload=Coinbase(3))
    assert tx.is_coinbase
    with pytest.raises(TxInvalid) as e:
        check_payload_placement(tx)
    assert e.value.reason == "bad-cb-asset"
    with pytest.raises(TxInvalid) as e:
        check_transaction(tx, params)
    assert e.value.reason == "bad-cb-asset"


def test_fee_claim_payload_with_witness_is_rejected(kit):
    op = kit.fund()
    tx = kit.spend([op], [kit.out(10)], payload=Coinbase(3))
    with pytest.raises(TxInvalid) as e:
        check_payload_placement(tx)
    assert e.value.reason == "bad-cb-witness"


def test_unknown_payload_type_is_rejected(kit):
    op = kit.fund()
    tx = Tx((TxIn(op),), (kit.out(10),), payload=FuturePayload())  # type: ignore[arg-type]
    with pytest.raises(TxInvalid) as e:
        check_payload_placement(tx)
    assert e.value.reason == "bad-txns-payload"


# ---------------------------------------------------------------------------
# check_transaction
# ---------------------------------------------------------------------------


def test_check_transaction_accepts_valid_spend_and_fee_claim(kit, params):
    check_transaction(simple_spend(kit), params)
    check_transaction(kit.claim(7, 1, 2), params)


def test_check_transaction_reports_cheapest_rule_first(kit, params):
    op = kit.fund()
    tx = kit.spend([op, op], [], version=2)
    with pytest.raises(TxInvalid) as e:
        check_transaction(tx, params)
    assert e.value.reason == "bad-txns-version"


# ---------------------------------------------------------------------------
# resolve_inputs
# ---------------------------------------------------------------------------


def test_resolve_inputs_returns_spent_coins_in_input_order(kit, view):
    a = kit.fund(10)
    b = kit.fund(20, asset=TOKEN)
    tx = kit.spend([b, a], [kit.out(5)])
    assert resolve_inputs(tx, view) == [view[b], view[a]]


def test_missing_input_is_rejected(kit, view):
    a = kit.fund()
    tx = kit.spend([a, Outpoint(sha256(b"nowhere"), 0)], [kit.out(5)])
    with pytest.raises(TxInvalid) as e:
        resolve_inputs(tx, view)
    assert e.value.reason == "bad-txns-inputs-missingorspent"


def test_spent_input_is_rejected(kit, view, params):
    tx = simple_spend(kit)
    validate_transaction(tx, view, 1, params)
    del view[tx.inputs[0].prevout]  # spent by an earlier transaction
    with pytest.raises(TxInvalid) as e:
        resolve_inputs(tx, view)
    assert e.value.reason == "bad-txns-inputs-missingorspent"
    with pytest.raises(TxInvalid) as e:
        validate_transaction(tx, view, 1, params)
    assert e.value.reason == "bad-txns-inputs-missingorspent"


# ---------------------------------------------------------------------------
# check_lock_height
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("lock_height", "height"), [(0, 0), (0, 10), (9, 10), (10, 10)])
def test_lock_height_reached_is_valid(kit, lock_height, height):
    op = kit.fund()
    check_lock_height(kit.spend([op], [kit.out(1)], lock_height=lock_height), height)


@pytest.mark.parametrize(("lock_height", "height"), [(11, 10), (1, 0), (2**32 - 1, 2**32 - 2)])
def test_lock_height_in_the_future_is_rejected(kit, lock_height, height):
    op = kit.fund()
    with pytest.raises(TxInvalid) as e:
        check_lock_height(kit.spend([op], [kit.out(1)], lock_height=lock_height), height)
    assert e.value.reason == "bad-txns-premature"


def test_validate_transaction_applies_lock_height(kit, view, params):
    op = kit.fund(1_000)
    tx = kit.spend([op], [kit.out(900)], lock_height=10)
    assert validate_transaction(tx, view, 10, params) == 100
    with pytest.raises(TxInvalid) as e:
        validate_transaction(tx, view, 9, params)
    assert e.value.reason == "bad-txns-premature"


# ---------------------------------------------------------------------------
# check_asset_conservation
# ---------------------------------------------------------------------------


def coins_of(kit, tx):
    return [kit.view[txin.prevout] for txin in tx.inputs]


def test_native_surplus_is_the_fee(kit):
    a, b = kit.fund(600), kit.fund(500)
    tx = kit.unsigned([a, b], [kit.out(700), kit.out(250)])
    assert check_asset_conservation(tx, coins_of(kit, tx)) == 150


def test_exact_native_balance_is_a_zero_fee(kit):
    a = kit.fund(600)
    tx = kit.unsigned([a], [kit.out(600)])
    assert check_asset_conservation(tx, coins_of(kit, tx)) == 0


def test_native_outputs_exceeding_inputs_are_rejected(kit):
    a = kit.fund(600)
    tx = kit.unsigned([a], [kit.out(300), kit.out(301)])
    with pytest.raises(TxInvalid) as e:
        check_asset_conservation(tx, coins_of(kit, tx))
    assert e.value.reason == "bad-txns-in-belowout"


def test_balanced_token_transfer_without_native_fee_is_valid(kit):
    a = kit.fund(500, asset=TOKEN)
    tx = kit.unsigned([a], [kit.out(200, asset=TOKEN), kit.out(300, asset=TOKEN)])
    assert check_asset_conservation(tx, coins_of(kit, tx)) == 0


def test_mixed_native_and_token_fee_is_the_native_surplus(kit, view, params):
    n = kit.fund(1_000)
    t = kit.fund(500, asset=TOKEN)
    u = kit.fund(70, asset=OTHER_TOKEN)
    outs = [
        kit.out(300, asset=TOKEN),
        kit.out(950),
        kit.out(70, asset=OTHER_TOKEN),
        kit.out(200, asset=TOKEN),
    ]
    tx = kit.spend([t, n, u], outs)
    assert check_asset_conservation(tx, coins_of(kit, tx)) == 50
    assert validate_transaction(tx, view, 1, params) == 50


def test_token_outputs_exceeding_inputs_are_rejected(kit):
    n = kit.fund(1_000)
    t = kit.fund(500, asset=TOKEN)
    tx = kit.unsigned([n, t], [kit.out(1_000), kit.out(501, asset=TOKEN)])
    with pytest.raises(TxInvalid) as e:
        check_asset_conservation(tx, coins_of(kit, tx))
    assert e.value.reason == "bad-txns-in-belowout"


def test_minting_a_token_from_nothing_is_rejected(kit):
    n = kit.fund(1_000)
    tx = kit.unsigned([n], [kit.out(900), kit.out(1, asset=TOKEN)])
    with pytest.raises(TxInvalid) as e:
        check_asset_conservation(tx, coins_of(kit, tx))
    assert e.value.reason == "bad-txns-in-belowout"


def test_native_surplus_cannot_pay_for_token_outputs(kit):
    n = kit.fund(1_000)
    t = kit.fund(500, asset=TOKEN)
    tx = kit.unsigned([n, t], [kit.out(400), kit.out(600, asset=TOKEN)])
    with pytest.raises(TxInvalid) as e:
        check_asset_conservation(tx, coins_of(kit, tx))
    assert e.value.reason == "bad-txns-in-belowout"


def test_token_outputs_below_inputs_are_rejected(kit):
    n = kit.fund(1_000)
    t = kit.fund(500, asset=TOKEN)
    tx = kit.unsigned([n, t], [kit.out(1_000), kit.out(499, asset=TOKEN)])
    with pytest.raises(TxInvalid) as e:
        check_asset_conservation(tx, coins_of(kit, tx))
    assert e.value.reason == "bad-txns-asset-unbalanced"


def test_burning_all_of_a_token_is_rejected(kit):
    n = kit.fund(1_000)
    t = kit.fund(500, asset=TOKEN)
    tx = kit.unsigned([n, t], [kit.out(1_000)])
    with pytest.raises(TxInvalid) as e:
        check_asset_conservation(tx, coins_of(kit, tx))
    assert e.value.reason == "bad-txns-asset-unbalanced"


@pytest.mark.parametrize("asset", [NATIVE_ASSET, TOKEN])
def test_input_sum_overflow_is_rejected(kit, asset):
    a = kit.fund(MAX_AMOUNT, asset=asset)
    b = kit.fund(1, asset=asset)
    tx = kit.unsigned([a, b], [kit.out(MAX_AMOUNT, asset=asset)])
    with pytest.raises(TxInvalid) as e:
        check_asset_conservation(tx, coins_of(kit, tx))
    assert e.value.reason == "bad-txns-inputvalues-outofrange"


# ---------------------------------------------------------------------------
# check_pay_to_address
# ---------------------------------------------------------------------------


def test_pay_to_address_one_pair_from_the_owner_is_valid(kit):
    key = kit.keys[0]
    digest = sha256(b"d")
    pairs = witness([key], digest)
    assert check_pay_to_address(kit.p2a(0), pairs) == [(pairs[0].pubkey, pairs[0].signature)]


@pytest.mark.parametrize("n_pairs", [0, 2, 3])
def test_pay_to_address_pair_count_other_than_one_is_rejected(kit, n_pairs):
    pairs = witness([kit.keys[0]] * n_pairs, sha256(b"d"))
    with pytest.raises(TxInvalid) as e:
        check_pay_to_address(kit.p2a(0), pairs)
    assert e.value.reason == "bad-txns-witness-count"


def test_pay_to_address_wrong_key_is_rejected(kit):
    with pytest.raises(TxInvalid) as e:
        check_pay_to_address(kit.p2a(0), witness([kit.keys[1]], sha256(b"d")))
    assert e.value.reason == "bad-txns-wrong-key"


def test_pay_to_address_valid_spend_validates(kit, view, params):
    assert validate_transaction(simple_spend(kit), view, 1, params) == 100


@pytest.mark.parametrize("n_pairs", [0, 2])
def test_pay_to_address_bad_pair_count_fails_validation(kit, view, params, n_pairs):
    op = kit.fund()
    tx = kit.spend([op], [kit.out(900)], [[kit.keys[0]] * n_pairs])
    with pytest.raises(TxInvalid) as e:
        validate_transaction(tx, view, 1, params)
    assert e.value.reason == "bad-txns-witness-count"


def test_pay_to_address_signed_by_wrong_key_fails_validation(kit, view, params):
    op = kit.fund()
    tx = kit.spend([op], [kit.out(900)], [[kit.keys[1]]])
    with pytest.raises(TxInvalid) as e:
        validate_transaction(tx, view, 1, params)
    assert e.value.reason == "bad-txns-wrong-key"


def test_signature_over_a_different_digest_is_rejected(kit, view, params):
    tx = simple_spend(kit)
    key = kit.keys[0]
    forged = with_witness(tx, 0, witness([key], sha256(b"some other message")))
    with pytest.raises(TxInvalid) as e:
        validate_transaction(forged, view, 1, params)
    assert e.value.reason == "bad-txns-signature"


def test_signature_from_another_transaction_is_rejected(kit, view, params):
    op = kit.fund(1_000)
    tx = kit.spend([op], [kit.out(900)])
    # same input, more to the payee: the old signature does not cover the new outputs
    stolen = tx.inputs[0].witness
    changed = kit.unsigned([op], [kit.out(990)]).with_witnesses([stolen])
    assert validate_transaction(tx, view, 1, params) == 100
    with pytest.raises(TxInvalid) as e:
        validate_transaction(changed, view, 1, params)
    assert e.value.reason == "bad-txns-signature"


@pytest.mark.parametrize("bit", [0, 7, 255, 256, 300, 511])
def test_signature_with_a_flipped_bit_is_rejected(kit, view, params, bit):
    tx = simple_spend(kit)
    pair = tx.inputs[0].witness[0]
    sig = bytearray(pair.signature)
    sig[bit // 8] ^= 0x80 >> (bit % 8)
    bad = with_witness(tx, 0, [SigPair(pair.pubkey, bytes(sig))])
    with pytest.raises(TxInvalid) as e:
        validate_transaction(bad, view, 1, params)
    assert e.value.reason == "bad-txns-signature"


def test_high_s_signature_is_rejected(kit, view, params):
    tx = simple_spend(kit)
    pair = tx.inputs[0].witness[0]
    s = int.from_bytes(pair.signature[32:], "big")
    assert s <= SECP256K1_HALF_N  # signer produces low-S
    high = pair.signature[:32] + (SECP256K1_N - s).to_bytes(32, "big")
    digest = tx.sighash(params.chain_id)
    # the malleated signature is mathematically valid: only the low-S rule rejects it
    assert DEFAULT_BACKEND.verify(pair.pubkey, high, digest, require_low_s=False)
    bad = with_witness(tx, 0, [SigPair(pair.pubkey, high)])
    assert bad.txid == tx.txid
    with pytest.raises(TxInvalid) as e:
        validate_transaction(bad, view, 1, params)
    assert e.value.reason == "bad-txns-signature"


def test_signature_for_another_chain_is_rejected(kit, view, params):
    op = kit.fund(1_000)
    unsigned = kit.unsigned([op], [kit.out(900)])
    replayed = kit.sign(unsigned, [[kit.keys[0]]], chain_id="other")
    # valid on its own chain ...
    assert validate_transaction(replayed, view, 1, ConsensusParams("other")) == 100
    # ... and not on this one
    with pytest.raises(TxInvalid) as e:
        validate_transaction(replayed, view, 1, params)
    assert e.value.reason == "bad-txns-signature"


def test_bad_signature_on_a_later_input_is_rejected(kit, view, params):
    ops = [kit.fund(500), kit.fund(500), kit.fund(500)]
    tx = kit.spend(ops, [kit.out(1_400)])
    assert validate_transaction(tx, view, 1, params) == 100
    bad = with_witness(tx, 2, witness([kit.keys[0]], sha256(b"elsewhere")))
    with pytest.raises(TxInvalid) as e:
        validate_transaction(bad, view, 1, params)
    assert e.value.reason == "bad-txns-signature"


# ---------------------------------------------------------------------------
# check_multisig
# ---------------------------------------------------------------------------


@pytest.fixture
def ms3(kit):
    """Three keys in lock order and their 2-of-3 lock."""
    members = kit.sorted_keys(3, start=4)
    return members, kit.multisig(2, members)


@pytest.mark.parametrize("chosen", [(0, 1), (0, 2), (1, 2)])
def test_multisig_2_of_3_in_lock_order_is_valid(kit, view, params, ms3, chosen):
    members, lock = ms3
    signers = [members[i] for i in chosen]
    pairs = witness(signers, sha256(b"d"))
    assert check_multisig(lock, pairs) == [(p.pubkey, p.signature) for p in pairs]
    op = kit.fund(1_000, lock)
    tx = kit.spend([op], [kit.out(990)], [signers])
    assert validate_transaction(tx, view, 1, params) == 10


@pytest.mark.parametrize("chosen", [(0,), (0, 1, 2)])
def test_multisig_wrong_signature_count_is_rejected(kit, view, params, ms3, chosen):
    members, lock = ms3
    signers = [members[i] for i in chosen]
    with pytest.raises(TxInvalid) as e:
        check_multisig(lock, witness(signers, sha256(b"d")))
    assert e.value.reason == "bad-txns-witness-count"
    op = kit.fund(1_000, lock)
    with pytest.raises(TxInvalid) as e:
        validate_transaction(kit.spend([op], [kit.out(990)], [signers]), view, 1, params)
    assert e.value.reason == "bad-txns-witness-count"


@pytest.mark.parametrize("chosen", [(0, 0), (2, 2)])
def test_multisig_same_key_twice_is_rejected(kit, view, params, ms3, chosen):
    members, lock = ms3
    signers = [members[i] for i in chosen]
    with pytest.raises(TxInvalid) as e:
        check_multisig(lock, witness(signers, sha256(b"d")))
    assert e.value.reason == "bad-txns-multisig-order"
    op = kit.fund(1_000, lock)
    with pytest.raises(TxInvalid) as e:
        validate_transaction(kit.spend([op], [kit.out(990)], [signers]), view, 1, params)
    assert e.value.reason == "bad-txns-multisig-order"


@pytest.mark.parametrize("chosen", [(1, 0), (2, 0), (2, 1)])
def test_multisig_out_of_lock_order_is_rejected(kit, view, params, ms3, chosen):
    members, lock = ms3
    signers = [members[i] for i in chosen]
    with pytest.raises(TxInvalid) as e:
        check_multisig(lock, witness(signers, sha256(b"d")))
    assert e.value.reason == "bad-txns-multisig-order"
    op = kit.fund(1_000, lock)
    with pytest.raises(TxInvalid) as e:
        validate_transaction(kit.spend([op], [kit.out(990)], [signers]), view, 1, params)
    assert e.value.reason == "bad-txns-multisig-order"


@pytest.mark.parametrize("position", [0, 1])
def test_multisig_non_member_key_is_rejected(kit, view, params, ms3, position):
    members, lock = ms3
    signers = [members[0], members[2]]
    signers[position] = kit.keys[0]  # not one of keys[4:7]
    with pytest.raises(TxInvalid) as e:
        check_multisig(lock, witness(signers, sha256(b"d")))
    assert e.value.reason == "bad-txns-wrong-key"
    op = kit.fund(1_000, lock)
    with pytest.raises(TxInvalid) as e:
        validate_transaction(kit.spend([op], [kit.out(990)], [signers]), view, 1, params)
    assert e.value.reason == "bad-txns-wrong-key"


@pytest.mark.parametrize("bad", [0, 1])
def test_multisig_one_bad_signature_is_rejected(kit, view, params, ms3, bad):
    members, lock = ms3
    op = kit.fund(1_000, lock)
    tx = kit.spend([op], [kit.out(990)], [[members[0], members[2]]])
    pairs = list(tx.inputs[0].witness)
    signer = members[0] if bad == 0 else members[2]
    pairs[bad] = SigPair(pairs[bad].pubkey, signer.sign(sha256(b"not the sighash")))
    bad_tx = with_witness(tx, 0, pairs)
    with pytest.raises(TxInvalid) as e:
        validate_transaction(bad_tx, view, 1, params)
    assert e.value.reason == "bad-txns-signature"


def test_multisig_1_of_1_is_valid_and_needs_its_key(kit, view, params):
    key = kit.keys[9]
    lock = kit.multisig(1, [key])
    assert lock == Multisig(1, (key.public_key.hash160(),))
    op = kit.fund(1_000, lock)
    assert validate_transaction(kit.spend([op], [kit.out(999)], [[key]]), view, 1, params) == 1
    with pytest.raises(TxInvalid) as e:
        validate_transaction(kit.spend([op], [kit.out(999)], [[kit.keys[8]]]), view, 1, params)
    assert e.value.reason == "bad-txns-wrong-key"


def test_multisig_15_of_15_is_valid(kit, view, params):
    members = kit.sorted_keys(15, start=1)
    lock = kit.multisig(15, members)
    op = kit.fund(1_000, lock)
    tx = kit.spend([op], [kit.out(1_000)], [members])
    assert len(tx.inputs[0].witness) == 15
    assert validate_transaction(tx, view, 1, params) == 0


def test_multisig_15_of_15_missing_one_signature_is_rejected(kit):
    members = kit.sorted_keys(15, start=1)
    lock = kit.multisig(15, members)
    with pytest.raises(TxInvalid) as e:
        check_multisig(lock, witness(members[:14], sha256(b"d")))
    assert e.value.reason == "bad-txns-witness-count"


# ---------------------------------------------------------------------------
# lock_signature_checks
# ---------------------------------------------------------------------------


def test_lock_dispatch_routes_each_lock_type(kit, ms3):
    members, lock = ms3
    digest = sha256(b"d")
    p2a_pairs = witness([kit.keys[0]], digest)
    ms_pairs = witness(members[1:], digest)
    assert lock_signature_checks(kit.p2a(0), p2a_pairs) == [
        (p2a_pairs[0].pubkey, p2a_pairs[0].signature)
    ]
    assert lock_signature_checks(lock, ms_pairs) == [(p.pubkey, p.signature) for p in ms_pairs]
    with pytest.raises(TxInvalid) as e:
        lock_signature_checks(lock, p2a_pairs)
    assert e.value.reason == "bad-txns-witness-count"


@dataclass(frozen=True)
class FutureLock:
    """A lock type with no spending rule yet."""

    TAG: ClassVar[int] = 0x7F


def test_lock_without_a_rule_is_rejected(kit):
    with pytest.raises(TxInvalid) as e:
        lock_signature_checks(FutureLock(), witness([kit.keys[0]], sha256(b"d")))  # type: ignore[arg-type]
    assert e.value.reason == "bad-txns-unknown-lock"


# ---------------------------------------------------------------------------
# collect_signature_checks / check_tx_inputs
# ---------------------------------------------------------------------------


def test_signature_checks_cover_every_pair_over_the_sighash(kit, params, ms3):
    members, lock = ms3
    a = kit.fund(100)
    b = kit.fund(100, lock)
    tx = kit.spend([a, b], [kit.out(150)], [[kit.keys[0]], [members[0], members[1]]])
    digest = tx.sighash(params.chain_id)
    expected = [(p.pubkey, p.signature, digest) for txin in tx.inputs for p in txin.witness]
    assert len(expected) == 3
    assert collect_signature_checks(tx, coins_of(kit, tx), params) == expected
    fee, checks = check_tx_inputs(tx, coins_of(kit, tx), 1, params)
    assert (fee, checks) == (50, expected)


def test_lock_failure_names_the_input(kit, params):
    a, b = kit.fund(100), kit.fund(100)
    tx = kit.spend([a, b], [kit.out(150)], [[kit.keys[0]], [kit.keys[1]]])
    with pytest.raises(TxInvalid) as e:
        collect_signature_checks(tx, coins_of(kit, tx), params)
    assert e.value.reason == "bad-txns-wrong-key"
    assert e.value.message.startswith("input 1:")


def test_check_tx_inputs_checks_lock_height_first(kit, params):
    a = kit.fund(100)
    tx = kit.spend([a], [kit.out(150)], [[kit.keys[1]]], lock_height=5)
    with pytest.raises(TxInvalid) as e:
        check_tx_inputs(tx, coins_of(kit, tx), 4, params)
    assert e.value.reason == "bad-txns-premature"
    with pytest.raises(TxInvalid) as e:
        check_tx_inputs(tx, coins_of(kit, tx), 5, params)
    assert e.value.reason == "bad-txns-in-belowout"


# ---------------------------------------------------------------------------
# validate_transaction
# ---------------------------------------------------------------------------


def test_validate_transaction_returns_the_fee(kit, view, params):
    ops = [kit.fund(400), kit.fund(700, lock=kit.p2a(2))]
    tx = kit.spend(ops, [kit.out(600), kit.out(450)], [[kit.keys[0]], [kit.keys[2]]])
    assert validate_transaction(tx, view, 0, params) == 50


def test_validate_transaction_rejects_a_standalone_fee_claim(kit, view, params):
    with pytest.raises(TxInvalid) as e:
        validate_transaction(kit.claim(1, 100), view, 1, params)
    assert e.value.reason == "bad-txns-coinbase"


def test_validate_transaction_runs_context_free_rules(kit, view, params):
    op = kit.fund(1_000)
    tx = kit.spend([op], [kit.out(0)])
    with pytest.raises(TxInvalid) as e:
        validate_transaction(tx, view, 1, params)
    assert e.value.reason == "bad-txns-vout-zero"


def test_validate_transaction_uses_the_given_verifier(kit, view, params):
    tx = simple_spend(kit)
    calls = []

    def rejecting(checks):
        calls.append(list(checks))
        return len(checks) - 1

    with pytest.raises(TxInvalid) as e:
        validate_transaction(tx, view, 1, params, verifier=rejecting)
    assert e.value.reason == "bad-txns-signature"
    pair = tx.inputs[0].witness[0]
    assert calls == [[(pair.pubkey, pair.signature, tx.sighash(params.chain_id))]]


def test_validate_transaction_does_not_touch_the_view(kit, view, params):
    tx = simple_spend(kit)
    before = dict(view)
    validate_transaction(tx, view, 1, params)
    assert view == before


def test_native_only_fast_path_agrees_with_the_general_rule(kit):
    """check_asset_conservation has a fast path for native-only txs without
    payload deltas; on random native and mixed txs it gives the general
    path's fee or reason and message (an unused delta forces the general path)."""
    import os
    import random

    seed = int(os.environ.get("O2O_TEST_SEED", "20"))
    rng = random.Random(seed)
    unused = {b"\x77" * 32: 0}
    for trial in range(200):
        def amount():
            return rng.choice([1, 5, 600, MAX_AMOUNT // 2, MAX_AMOUNT, MAX_AMOUNT + 1])

        assets = [NATIVE_ASSET] if rng.random() < 0.7 else [NATIVE_ASSET, TOKEN]
        ins = [kit.fund(amount(), asset=rng.choice(assets)) for _ in range(rng.randint(1, 3))]
        outs = [kit.out(amount(), asset=rng.choice(assets)) for _ in range(rng.randint(1, 3))]
        tx = kit.unsigned(ins, outs)
        results = []
        for deltas in (None, unused):
            try:
                results.append(check_asset_conservation(tx, coins_of(kit, tx), deltas))
            except TxInvalid as exc:
                results.append((exc.reason, exc.message))
        assert results[0] == results[1], (seed, trial)

"""Escrow lock (:class:`~o2ocli.core.locks.Escrow`) and its spending rules
(:mod:`o2ocli.consensus.escrow`) as applied by the tx and block rules.

Each path (release, reclaim, refund, dispute) gets its valid cases and one test
per way to break it; every failure is asserted by its stable ``reason``.  Every
witness signature is real (deterministic keys, the real sighash) and the UTXO
view is the ``kit``'s plain dict.

Roles: ``keys[0]`` is the payer, ``keys[1]`` and ``keys[2]`` are payees (60% / 40%
unless a test says otherwise), ``keys[3]`` the arbiter, ``keys[4]`` a stranger,
``keys[5]`` a third payee.
"""

from __future__ import annotations

import pytest
from o2o_helpers import decoded

from o2ocli.consensus.block import apply_block
from o2ocli.consensus.errors import BlockInvalid, TxInvalid
from o2ocli.consensus.escrow import (
    PATH_DISPUTE,
    PATH_RECLAIM,
    PATH_REFUND,
    PATH_RELEASE,
    escrow_allowance,
    release_shares,
)
from o2ocli.consensus.o2o import NO_EFFECT, ConsentRecord
from o2ocli.consensus.tx import (
    check_transaction,
    check_tx_contextual,
    resolve_inputs,
    serial_verifier,
    validate_transaction,
)
from o2ocli.core.block import BlockHeader
from o2ocli.core.encoding import DecodeError, Reader, Writer
from o2ocli.core.locks import (
    BPS_TOTAL,
    MAX_ESCROW_PAYEES,
    Escrow,
    Multisig,
    PayToAddress,
    decode_lock,
    encode_lock,
)
from o2ocli.core.payloads import ConsentGrant, consent_sig_digest
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, SigPair, Tx, TxIn
from o2ocli.crypto.hashes import sha256

CHAIN_ID = "o2o-test"
HEIGHT = 50
"""Height of the block the tested transactions would be mined in."""
TIMEOUT = 100
"""The escrows' timeout height (after HEIGHT: the release rules apply by default)."""
AMOUNT = 10_000
"""Native amount held by the default escrow (its fee allowance is 100)."""
TOKEN = sha256(b"escrow-rules/token")
"""A non-native asset id (plain transfers only need it balanced)."""

PAYER, PAYEE_A, PAYEE_B, ARBITER, STRANGER, PAYEE_C = 0, 1, 2, 3, 4, 5
SHARES = ((PAYEE_A, 6_000), (PAYEE_B, 4_000))


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def h160(kit, i):
    return kit.keys[i].public_key.hash160()


def escrow_lock(kit, shares=SHARES, *, payer=PAYER, arbiter=ARBITER, timeout=TIMEOUT):
    """An escrow of ``payer`` to ``shares`` ((key index, bps), ...); ``arbiter``
    may be None."""
    return Escrow(
        h160(kit, payer),
        tuple((h160(kit, i), bps) for i, bps in shares),
        None if arbiter is None else h160(kit, arbiter),
        timeout,
    )


def fund_escrow(kit, amount=AMOUNT, asset=NATIVE_ASSET, **lock_args):
    """Put an escrow coin into the view; returns its outpoint."""
    return kit.fund(amount, escrow_lock(kit, **lock_args), asset)


def pay(kit, i, amount, asset=NATIVE_ASSET):
    """An output of ``amount`` to the plain address of ``keys[i]``."""
    return kit.out(amount, kit.p2a(i), asset)


def spend(kit, prevouts, outputs, signers):
    """``prevouts`` spent into ``outputs``; input ``j`` signed by the key indexes
    ``signers[j]`` (in that order)."""
    return kit.spend(prevouts, outputs, [[kit.keys[i] for i in s] for s in signers])


def contextual(kit, tx, height=HEIGHT):
    """Stage 2 of ``tx`` against the kit's view: (fee, checks, effect)."""
    return check_tx_contextual(tx, resolve_inputs(tx, kit.view), height, kit.params)


def accept(kit, tx, height=HEIGHT):
    """Both stages and the signatures pass; returns (fee, effect)."""
    check_transaction(tx, kit.params)
    fee, checks, effect = contextual(kit, tx, height)
    assert serial_verifier(checks) is None
    assert validate_transaction(tx, kit.view, height, kit.params) == fee
    return fee, effect


def refuse(kit, tx, reason, height=HEIGHT):
    """Stage 1 passes, stage 2 fails with ``reason`` (so does the full validation)."""
    check_transaction(tx, kit.params)
    with pytest.raises(TxInvalid) as e:
        contextual(kit, tx, height)
    assert e.value.reason == reason
    with pytest.raises(TxInvalid) as e:
        validate_transaction(tx, kit.view, height, kit.params)
    assert e.value.reason == reason


def path_of(effect, outpoint, tx):
    """The path recorded for ``outpoint`` in ``effect`` (checking the txid)."""
    txid, path = decoded(effect).escrows[outpoint]
    assert txid == tx.txid
    return path


# ---------------------------------------------------------------------------
# The lock: constructor, encoding, decoder refusals
# ---------------------------------------------------------------------------


def raw_escrow(payer, payees, arbiter, timeout, *, flag=None, count=None):
    """The tagged encoding of an escrow lock written field by field (so bodies
    the constructor refuses can be built)."""
    w = Writer()
    w.u8(Escrow.TAG)
    w.raw(payer)
    w.u8(len(payees) if count is None else count)
    for pkh, bps in payees:
        w.raw(pkh)
        w.u16(bps)
    w.u8((0 if arbiter is None else 1) if flag is None else flag)
    if arbiter is not None:
        w.raw(arbiter)
    w.u32(timeout)
    return w.getvalue()


def decode(data):
    r = Reader(data)
    lock = decode_lock(r)
    r.finish("lock")
    return lock


def test_escrow_encoding_round_trip_and_layout(kit):
    lock = escrow_lock(kit)
    w = Writer()
    encode_lock(lock, w)
    data = w.getvalue()
    assert data == raw_escrow(h160(kit, PAYER), [(h160(kit, PAYEE_A), 6_000),
                                                (h160(kit, PAYEE_B), 4_000)],
                              h160(kit, ARBITER), TIMEOUT)
    assert data[0] == 0x03
    assert len(data) == 1 + 20 + 1 + 2 * 22 + 1 + 20 + 4
    assert decode(data) == lock
    assert lock.addresses() == (h160(kit, PAYER), h160(kit, PAYEE_A), h160(kit, PAYEE_B),
                                h160(kit, ARBITER))


def test_escrow_without_arbiter_round_trip(kit):
    lock = escrow_lock(kit, ((PAYEE_A, BPS_TOTAL),), arbiter=None, timeout=0xFFFF_FFFF)
    w = Writer()
    encode_lock(lock, w)
    assert decode(w.getvalue()) == lock
    assert lock.addresses() == (h160(kit, PAYER), h160(kit, PAYEE_A))


def test_escrow_with_the_most_payees_round_trips(kit):
    shares = tuple((6 + i, BPS_TOTAL // MAX_ESCROW_PAYEES) for i in range(MAX_ESCROW_PAYEES))
    lock = escrow_lock(kit, shares)
    w = Writer()
    encode_lock(lock, w)
    assert decode(w.getvalue()) == lock


def test_escrow_output_round_trips_inside_a_tx(kit):
    tx = kit.unsigned([kit.fund()], [kit.out(900, escrow_lock(kit))])
    assert Tx.from_bytes(tx.to_bytes()).outputs[0].lock == escrow_lock(kit)


@pytest.mark.parametrize("bps", [(6_000, 3_999), (6_000, 4_001), (5_000, 5_000, 1)])
def test_escrow_shares_must_add_up_to_10000(kit, bps):
    shares = tuple((1 + i, b) for i, b in enumerate(bps))
    with pytest.raises(ValueError):
        escrow_lock(kit, shares)
    payees = [(h160(kit, i), b) for i, b in shares]
    with pytest.raises(DecodeError):
        decode(raw_escrow(h160(kit, PAYER), payees, h160(kit, ARBITER), TIMEOUT))


@pytest.mark.parametrize("bps", [0, BPS_TOTAL + 1])
def test_escrow_share_must_be_1_to_10000(kit, bps):
    with pytest.raises(ValueError):
        escrow_lock(kit, ((PAYEE_A, bps), (PAYEE_B, BPS_TOTAL - bps)))


@pytest.mark.parametrize(
    "shares, arbiter",
    [
        (((PAYER, 5_000), (PAYEE_B, 5_000)), ARBITER),  # a payee is the payer
        (((PAYEE_A, 5_000), (PAYEE_A, 5_000)), ARBITER),  # a payee twice
        (SHARES, PAYER),  # the arbiter is the payer
        (SHARES, PAYEE_B),  # the arbiter is a payee
    ],
    ids=["payee-is-payer", "payee-twice", "arbiter-is-payer", "arbiter-is-payee"],
)
def test_escrow_parties_must_be_distinct(kit, shares, arbiter):
    with pytest.raises(ValueError):
        escrow_lock(kit, shares, arbiter=arbiter)
    payees = [(h160(kit, i), b) for i, b in shares]
    with pytest.raises(DecodeError):
        decode(raw_escrow(h160(kit, PAYER), payees, h160(kit, arbiter), TIMEOUT))


@pytest.mark.parametrize("n", [0, MAX_ESCROW_PAYEES + 1])
def test_escrow_needs_1_to_8_payees(kit, n):
    bps = [BPS_TOTAL // n] * n if n else []
    if n:
        bps[-1] += BPS_TOTAL - sum(bps)
    shares = tuple((6 + i, b) for i, b in enumerate(bps))
    with pytest.raises(ValueError):
        escrow_lock(kit, shares)
    payees = [(h160(kit, i), b) for i, b in shares]
    with pytest.raises(DecodeError):
        decode(raw_escrow(h160(kit, PAYER), payees, h160(kit, ARBITER), TIMEOUT))


@pytest.mark.parametrize("timeout", [-1, 0x1_0000_0000])
def test_escrow_timeout_must_be_a_u32(kit, timeout):
    with pytest.raises(ValueError):
        escrow_lock(kit, timeout=timeout)


@pytest.mark.parametrize("field", ["payer", "payee", "arbiter"])
def test_escrow_party_must_be_20_bytes(kit, field):
    payer, payee, arbiter = h160(kit, PAYER), h160(kit, PAYEE_A), h160(kit, ARBITER)
    short = bytes(19)
    with pytest.raises(ValueError):
        Escrow(short if field == "payer" else payer,
               ((short if field == "payee" else payee, BPS_TOTAL),),
               short if field == "arbiter" else arbiter, TIMEOUT)


def test_escrow_decoder_refuses_an_arbiter_flag_above_1(kit):
    data = raw_escrow(h160(kit, PAYER), [(h160(kit, PAYEE_A), BPS_TOTAL)], None, TIMEOUT, flag=2)
    with pytest.raises(DecodeError):
        decode(data)


def test_escrow_decoder_refuses_a_truncated_body(kit):
    data = raw_escrow(h160(kit, PAYER), [(h160(kit, PAYEE_A), BPS_TOTAL)], None, TIMEOUT)
    with pytest.raises(DecodeError):
        decode(data[:-1])
    # A payee count larger than the payees present runs out of data.
    with pytest.raises(DecodeError):
        decode(raw_escrow(h160(kit, PAYER), [(h160(kit, PAYEE_A), BPS_TOTAL)], None, TIMEOUT,
                          count=2))


# ---------------------------------------------------------------------------
# Helpers of the rule module
# ---------------------------------------------------------------------------


def test_allowance_is_the_fee_up_to_1_percent_of_a_native_escrow():
    assert escrow_allowance(NATIVE_ASSET, AMOUNT, 0) == 0
    assert escrow_allowance(NATIVE_ASSET, AMOUNT, 40) == 40
    assert escrow_allowance(NATIVE_ASSET, AMOUNT, 100) == 100
    assert escrow_allowance(NATIVE_ASSET, AMOUNT, 101) == 100
    assert escrow_allowance(NATIVE_ASSET, 199, 5) == 1
    assert escrow_allowance(NATIVE_ASSET, 99, 5) == 0
    assert escrow_allowance(TOKEN, AMOUNT, 100) == 0


def test_release_shares_are_floored(kit):
    lock = escrow_lock(kit, ((PAYEE_A, 3_333), (PAYEE_B, 3_333), (PAYEE_C, 3_334)))
    assert [s for _, s in release_shares(lock, 9_900)] == [3_299, 3_299, 3_300]
    assert [s for _, s in release_shares(lock, 10_001)] == [3_333, 3_333, 3_334]


# ---------------------------------------------------------------------------
# Release: the payer alone, before the timeout
# ---------------------------------------------------------------------------


def test_release_paying_the_exact_shares_without_fee(kit):
    op = fund_escrow(kit)
    tx = spend(kit, [op], [pay(kit, PAYEE_A, 6_000), pay(kit, PAYEE_B, 4_000)], [[PAYER]])
    fee, effect = accept(kit, tx)
    assert fee == 0
    assert decoded(effect).escrows == {op: (tx.txid, PATH_RELEASE)}


def test_release_may_take_a_fee_of_1_percent_from_the_escrow(kit):
    op = fund_escrow(kit)
    tx = spend(kit, [op], [pay(kit, PAYEE_A, 5_940), pay(kit, PAYEE_B, 3_960)], [[PAYER]])
    fee, effect = accept(kit, tx)
    assert fee == 100
    assert path_of(effect, op, tx) == PATH_RELEASE


def test_release_with_a_fee_under_1_percent(kit):
    op = fund_escrow(kit)
    # fee 50: the shares are of 9,950.
    tx = spend(kit, [op], [pay(kit, PAYEE_A, 5_970), pay(kit, PAYEE_B, 3_980)], [[PAYER]])
    assert accept(kit, tx)[0] == 50


def test_release_paying_more_than_the_shares_is_valid(kit):
    op = fund_escrow(kit)
    extra = kit.fund(1_000, kit.p2a(PAYER))
    tx = spend(kit, [op, extra], [pay(kit, PAYEE_A, 6_500), pay(kit, PAYEE_B, 4_400)],
               [[PAYER], [PAYER]])
    assert accept(kit, tx)[0] == 100


def test_release_with_the_fee_paid_by_another_input(kit):
    op = fund_escrow(kit)
    extra = kit.fund(1_000, kit.p2a(PAYER))
    outs = [pay(kit, PAYEE_A, 6_000), pay(kit, PAYEE_B, 4_000), pay(kit, PAYER, 900)]
    fee, effect = accept(kit, spend(kit, [op, extra], outs, [[PAYER], [PAYER]]))
    assert fee == 100
    assert list(decoded(effect).escrows) == [op]


def test_release_with_a_fee_above_1_percent_leaves_the_shares_short(kit):
    op = fund_escrow(kit)
    # fee 200, paid pro rata: the allowance is only 100, so the shares are of 9,900.
    tx = spend(kit, [op], [pay(kit, PAYEE_A, 5_880), pay(kit, PAYEE_B, 3_920)], [[PAYER]])
    refuse(kit, tx, "bad-escrow-release-short")


def test_release_with_a_fee_of_101_leaves_a_share_short(kit):
    op = fund_escrow(kit)
    tx = spend(kit, [op], [pay(kit, PAYEE_A, 5_940), pay(kit, PAYEE_B, 3_959)], [[PAYER]])
    refuse(kit, tx, "bad-escrow-release-short")


@pytest.mark.parametrize("short", [PAYEE_A, PAYEE_B])
def test_release_short_by_one_unit_for_one_payee_is_refused(kit, short):
    op = fund_escrow(kit)
    amounts = {PAYEE_A: 5_940, PAYEE_B: 3_960}
    amounts[short] -= 1
    # The unit goes to the payer, so the fee stays 100 (the allowance).
    outs = [pay(kit, PAYEE_A, amounts[PAYEE_A]), pay(kit, PAYEE_B, amounts[PAYEE_B]),
            pay(kit, PAYER, 1)]
    refuse(kit, spend(kit, [op], outs, [[PAYER]]), "bad-escrow-release-short")


def test_release_without_any_fee_short_by_one_unit_is_refused(kit):
    op = fund_escrow(kit)
    outs = [pay(kit, PAYEE_A, 5_999), pay(kit, PAYEE_B, 4_000), pay(kit, STRANGER, 1)]
    refuse(kit, spend(kit, [op], outs, [[PAYER]]), "bad-escrow-release-short")


def test_release_share_may_be_split_over_several_outputs(kit):
    op = fund_escrow(kit)
    outs = [pay(kit, PAYEE_A, 3_000), pay(kit, PAYEE_B, 3_960), pay(kit, PAYEE_A, 2_940)]
    assert accept(kit, spend(kit, [op], outs, [[PAYER]]))[0] == 100


def test_release_counts_only_plain_address_outputs(kit):
    op = fund_escrow(kit)
    to_a = Multisig.of(1, [h160(kit, PAYEE_A)])
    outs = [kit.out(5_940, to_a), pay(kit, PAYEE_B, 3_960)]
    refuse(kit, spend(kit, [op], outs, [[PAYER]]), "bad-escrow-release-short")


def test_release_paying_nobody_is_refused(kit):
    op = fund_escrow(kit)
    refuse(kit, spend(kit, [op], [pay(kit, STRANGER, 9_900)], [[PAYER]]),
           "bad-escrow-release-short")


def test_release_of_a_small_escrow_has_no_fee_allowance(kit):
    op = fund_escrow(kit, 99, shares=((PAYEE_A, BPS_TOTAL),))
    refuse(kit, spend(kit, [op], [pay(kit, PAYEE_A, 98)], [[PAYER]]), "bad-escrow-release-short")
    extra = kit.fund(10, kit.p2a(PAYER))
    tx = spend(kit, [op, extra], [pay(kit, PAYEE_A, 99)], [[PAYER], [PAYER]])
    assert accept(kit, tx)[0] == 10


def test_release_rounding_floors_the_shares_and_the_remainder_goes_anywhere(kit):
    shares = ((PAYEE_A, 3_333), (PAYEE_B, 3_333), (PAYEE_C, 3_334))
    op = fund_escrow(kit, shares=shares)
    # fee 100 → shares of 9,900: 3,299.67 / 3,299.67 / 3,300.66, floored; 2 units left over.
    outs = [pay(kit, PAYEE_A, 3_299), pay(kit, PAYEE_B, 3_299), pay(kit, PAYEE_C, 3_300),
            pay(kit, STRANGER, 2)]
    assert accept(kit, spend(kit, [op], outs, [[PAYER]]))[0] == 100


def test_release_rounding_remainder_may_go_to_the_payer(kit):
    shares = ((PAYEE_A, 3_333), (PAYEE_B, 3_333), (PAYEE_C, 3_334))
    op = fund_escrow(kit, 10_001, shares=shares)
    outs = [pay(kit, PAYEE_A, 3_333), pay(kit, PAYEE_B, 3_333), pay(kit, PAYEE_C, 3_334),
            pay(kit, PAYER, 1)]
    assert accept(kit, spend(kit, [op], outs, [[PAYER]]))[0] == 0


def test_release_rounding_does_not_excuse_a_missing_unit(kit):
    shares = ((PAYEE_A, 3_333), (PAYEE_B, 3_333), (PAYEE_C, 3_334))
    op = fund_escrow(kit, shares=shares)
    outs = [pay(kit, PAYEE_A, 3_299), pay(kit, PAYEE_B, 3_299), pay(kit, PAYEE_C, 3_299),
            pay(kit, STRANGER, 3)]
    refuse(kit, spend(kit, [op], outs, [[PAYER]]), "bad-escrow-release-short")


def test_token_escrow_release_with_the_fee_from_a_native_input(kit):
    op = fund_escrow(kit, 1_000, TOKEN)
    fee_op = kit.fund(1_000, kit.p2a(PAYER))
    outs = [pay(kit, PAYEE_A, 600, TOKEN), pay(kit, PAYEE_B, 400, TOKEN), pay(kit, PAYER, 900)]
    fee, effect = accept(kit, spend(kit, [op, fee_op], outs, [[PAYER], [PAYER]]))
    assert fee == 100
    assert decoded(effect).escrows == {op: (decoded(effect).escrows[op][0], PATH_RELEASE)}


def test_token_escrow_has_no_fee_allowance(kit):
    op = fund_escrow(kit, 1_000, TOKEN)
    fee_op = kit.fund(1_000, kit.p2a(PAYER))
    # 1% of the tokens kept back (to the payer): short although the tx pays a fee of 100.
    outs = [pay(kit, PAYEE_A, 594, TOKEN), pay(kit, PAYEE_B, 396, TOKEN),
            pay(kit, PAYER, 10, TOKEN), pay(kit, PAYER, 900)]
    refuse(kit, spend(kit, [op, fee_op], outs, [[PAYER], [PAYER]]), "bad-escrow-release-short")


def test_token_escrow_release_paid_in_native_coin_is_short(kit):
    op = fund_escrow(kit, 1_000, TOKEN)
    fee_op = kit.fund(2_000, kit.p2a(PAYER))
    outs = [pay(kit, PAYEE_A, 600), pay(kit, PAYEE_B, 400), pay(kit, PAYER, 1_000, TOKEN)]
    refuse(kit, spend(kit, [op, fee_op], outs, [[PAYER], [PAYER]]), "bad-escrow-release-short")


# ---------------------------------------------------------------------------
# Refund: one payee alone, at any time
# ---------------------------------------------------------------------------


def test_payee_alone_taking_the_money_early_is_a_short_refund(kit):
    op = fund_escrow(kit)
    tx = spend(kit, [op], [pay(kit, PAYEE_A, 9_900)], [[PAYEE_A]])
    refuse(kit, tx, "bad-escrow-refund-short")


def test_payee_alone_paying_its_release_share_is_a_short_refund(kit):
    op = fund_escrow(kit)
    outs = [pay(kit, PAYEE_A, 5_940), pay(kit, PAYEE_B, 3_960)]
    refuse(kit, spend(kit, [op], outs, [[PAYEE_B]]), "bad-escrow-refund-short")


@pytest.mark.parametrize("payee", [PAYEE_A, PAYEE_B])
def test_refund_by_one_payee_paying_the_payer_amount_minus_allowance(kit, payee):
    op = fund_escrow(kit)
    tx = spend(kit, [op], [pay(kit, PAYER, 9_900)], [[payee]])
    fee, effect = accept(kit, tx)
    assert fee == 100
    assert decoded(effect).escrows == {op: (tx.txid, PATH_REFUND)}


def test_refund_of_everything_without_fee(kit):
    op = fund_escrow(kit)
    assert accept(kit, spend(kit, [op], [pay(kit, PAYER, AMOUNT)], [[PAYEE_A]]))[0] == 0


def test_refund_one_unit_short_is_refused(kit):
    op = fund_escrow(kit)
    outs = [pay(kit, PAYER, 9_899), pay(kit, PAYEE_A, 1)]
    refuse(kit, spend(kit, [op], outs, [[PAYEE_A]]), "bad-escrow-refund-short")


def test_refund_with_a_fee_above_1_percent_is_short(kit):
    op = fund_escrow(kit)
    refuse(kit, spend(kit, [op], [pay(kit, PAYER, 9_899)], [[PAYEE_A]]),
           "bad-escrow-refund-short")


def test_refund_after_the_timeout_still_pays_the_payer(kit):
    op = fund_escrow(kit)
    refuse(kit, spend(kit, [op], [pay(kit, PAYEE_A, 9_900)], [[PAYEE_A]]),
           "bad-escrow-refund-short", height=TIMEOUT + 5)
    tx = spend(kit, [op], [pay(kit, PAYER, 9_900)], [[PAYEE_A]])
    assert path_of(accept(kit, tx, TIMEOUT + 5)[1], op, tx) == PATH_REFUND


def test_token_refund_must_return_every_token(kit):
    op = fund_escrow(kit, 1_000, TOKEN)
    fee_op = kit.fund(1_000, kit.p2a(PAYEE_A))
    ok = spend(kit, [op, fee_op], [pay(kit, PAYER, 1_000, TOKEN), pay(kit, PAYEE_A, 900)],
               [[PAYEE_A], [PAYEE_A]])
    assert accept(kit, ok)[0] == 100
    short = spend(kit, [op, fee_op],
                  [pay(kit, PAYER, 990, TOKEN), pay(kit, PAYEE_A, 10, TOKEN),
                   pay(kit, PAYEE_A, 900)],
                  [[PAYEE_A], [PAYEE_A]])
    refuse(kit, short, "bad-escrow-refund-short")


# ---------------------------------------------------------------------------
# Reclaim: the payer alone, from the timeout on
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("height", [TIMEOUT, TIMEOUT + 1, 10 * TIMEOUT])
def test_payer_reclaims_anything_from_the_timeout(kit, height):
    op = fund_escrow(kit)
    tx = spend(kit, [op], [pay(kit, STRANGER, 5_000)], [[PAYER]])
    fee, effect = accept(kit, tx, height)
    assert fee == 5_000
    assert decoded(effect).escrows == {op: (tx.txid, PATH_RECLAIM)}


def test_payer_cannot_reclaim_one_block_before_the_timeout(kit):
    op = fund_escrow(kit)
    tx = spend(kit, [op], [pay(kit, PAYER, 9_900)], [[PAYER]])
    refuse(kit, tx, "bad-escrow-release-short", height=TIMEOUT - 1)
    assert path_of(accept(kit, tx, TIMEOUT)[1], op, tx) == PATH_RECLAIM


def test_escrow_with_timeout_0_is_always_reclaimable(kit):
    op = fund_escrow(kit, timeout=0)
    tx = spend(kit, [op], [pay(kit, PAYER, 9_000)], [[PAYER]])
    assert path_of(accept(kit, tx, 1)[1], op, tx) == PATH_RECLAIM


# ---------------------------------------------------------------------------
# Dispute: the arbiter and one other party
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "signers",
    [(ARBITER, PAYER), (PAYER, ARBITER), (ARBITER, PAYEE_A), (PAYEE_B, ARBITER)],
    ids=["arbiter+payer", "payer+arbiter", "arbiter+payee", "payee+arbiter"],
)
@pytest.mark.parametrize("height", [HEIGHT, TIMEOUT + 1])
def test_dispute_ruling_may_send_the_money_anywhere(kit, signers, height):
    op = fund_escrow(kit)
    tx = spend(kit, [op], [pay(kit, STRANGER, 7_000), pay(kit, ARBITER, 2_000)], [signers])
    fee, effect = accept(kit, tx, height)
    assert fee == 1_000
    assert decoded(effect).escrows == {op: (tx.txid, PATH_DISPUTE)}


def test_arbiter_alone_is_refused(kit):
    op = fund_escrow(kit)
    tx = spend(kit, [op], [pay(kit, PAYER, AMOUNT)], [[ARBITER]])
    refuse(kit, tx, "bad-escrow-arbiter-alone")
    refuse(kit, tx, "bad-escrow-arbiter-alone", height=TIMEOUT + 1)


@pytest.mark.parametrize(
    "signers, arbiter",
    [
        ((PAYER, PAYEE_A), ARBITER),
        ((PAYEE_A, PAYEE_B), ARBITER),
        ((PAYER, PAYEE_B), None),
        ((PAYEE_B, PAYEE_A), None),
    ],
    ids=["payer+payee", "two-payees", "payer+payee-no-arbiter", "two-payees-no-arbiter"],
)
def test_two_signatures_without_the_arbiter_are_refused(kit, signers, arbiter):
    op = fund_escrow(kit, arbiter=arbiter)
    # Even a tx that would satisfy both the release and the refund rules.
    tx = spend(kit, [op], [pay(kit, PAYEE_A, 6_000), pay(kit, PAYEE_B, 4_000)], [signers])
    refuse(kit, tx, "bad-escrow-signers")


@pytest.mark.parametrize(
    "signers",
    [(STRANGER,), (ARBITER, STRANGER), (STRANGER, PAYER)],
    ids=["stranger", "arbiter+stranger", "stranger+payer"],
)
def test_a_stranger_signature_is_refused(kit, signers):
    op = fund_escrow(kit)
    tx = spend(kit, [op], [pay(kit, PAYEE_A, 6_000), pay(kit, PAYEE_B, 4_000)], [signers])
    refuse(kit, tx, "bad-escrow-signers")


@pytest.mark.parametrize("party", [PAYER, PAYEE_A, ARBITER])
def test_the_same_party_signing_twice_is_refused(kit, party):
    op = fund_escrow(kit)
    tx = spend(kit, [op], [pay(kit, PAYEE_A, 6_000), pay(kit, PAYEE_B, 4_000)], [[party, party]])
    refuse(kit, tx, "bad-escrow-signers")


def test_three_signatures_are_refused(kit):
    op = fund_escrow(kit)
    tx = spend(kit, [op], [pay(kit, PAYEE_A, 6_000), pay(kit, PAYEE_B, 4_000)],
               [[ARBITER, PAYER, PAYEE_A]])
    refuse(kit, tx, "bad-escrow-signers")


def test_no_signature_is_refused(kit):
    op = fund_escrow(kit)
    tx = spend(kit, [op], [pay(kit, PAYEE_A, 6_000), pay(kit, PAYEE_B, 4_000)], [[]])
    refuse(kit, tx, "bad-escrow-signers")


# ---------------------------------------------------------------------------
# Several escrow inputs
# ---------------------------------------------------------------------------


def test_two_escrow_inputs_with_a_release_are_refused(kit):
    first, second = fund_escrow(kit), fund_escrow(kit)
    outs = [pay(kit, PAYEE_A, 12_000), pay(kit, PAYEE_B, 8_000)]
    refuse(kit, spend(kit, [first, second], outs, [[PAYER], [PAYER]]), "bad-escrow-multiple")


def test_a_release_with_a_disputed_escrow_is_refused(kit):
    first, second = fund_escrow(kit), fund_escrow(kit)
    outs = [pay(kit, PAYEE_A, 12_000), pay(kit, PAYEE_B, 8_000)]
    tx = spend(kit, [first, second], outs, [[ARBITER, PAYEE_A], [PAYER]])
    refuse(kit, tx, "bad-escrow-multiple")


def test_a_refund_with_a_reclaimed_escrow_is_refused(kit):
    first, second = fund_escrow(kit), fund_escrow(kit, timeout=HEIGHT)
    tx = spend(kit, [first, second], [pay(kit, PAYER, 20_000)], [[PAYEE_A], [PAYER]])
    refuse(kit, tx, "bad-escrow-multiple")


def test_two_disputed_escrows_in_one_tx_are_valid(kit):
    first = fund_escrow(kit)
    second = fund_escrow(kit, 5_000, shares=((PAYEE_C, BPS_TOTAL),))
    tx = spend(kit, [first, second], [pay(kit, STRANGER, 14_000)],
               [[ARBITER, PAYER], [PAYEE_C, ARBITER]])
    fee, effect = accept(kit, tx)
    assert fee == 1_000
    assert decoded(effect).escrows == {first: (tx.txid, PATH_DISPUTE),
                                       second: (tx.txid, PATH_DISPUTE)}


def test_a_disputed_and_a_reclaimed_escrow_in_one_tx_are_valid(kit):
    first, second = fund_escrow(kit), fund_escrow(kit, timeout=HEIGHT)
    tx = spend(kit, [first, second], [pay(kit, PAYER, 19_000)], [[ARBITER, PAYEE_B], [PAYER]])
    _, effect = accept(kit, tx)
    assert decoded(effect).escrows == {first: (tx.txid, PATH_DISPUTE),
                                       second: (tx.txid, PATH_RECLAIM)}


# ---------------------------------------------------------------------------
# Signatures are verified
# ---------------------------------------------------------------------------


def forge(tx, input_index, pair_index, signature):
    """``tx`` with one witness signature replaced (same pubkey)."""
    inputs = list(tx.inputs)
    witness = list(inputs[input_index].witness)
    witness[pair_index] = SigPair(witness[pair_index].pubkey, signature)
    inputs[input_index] = TxIn(inputs[input_index].prevout, tuple(witness))
    return Tx(tuple(inputs), tx.outputs, tx.lock_height, tx.payload, tx.version)


def bad_signature(kit, tx, height=HEIGHT):
    """Every rule but a witness signature passes; returns the failing check's index."""
    check_transaction(tx, kit.params)
    _, checks, _ = contextual(kit, tx, height)
    failed = serial_verifier(checks)
    assert failed is not None
    with pytest.raises(TxInvalid) as e:
        validate_transaction(tx, kit.view, height, kit.params)
    assert e.value.reason == "bad-txns-signature"
    return failed


def test_a_release_signature_by_another_key_under_the_payer_pubkey_fails(kit):
    op = fund_escrow(kit)
    tx = spend(kit, [op], [pay(kit, PAYEE_A, 6_000), pay(kit, PAYEE_B, 4_000)], [[PAYER]])
    forged = forge(tx, 0, 0, kit.keys[STRANGER].sign(tx.sighash(CHAIN_ID)))
    assert bad_signature(kit, forged) == 0


def test_a_payer_signature_over_another_tx_fails(kit):
    op = fund_escrow(kit)
    tx = spend(kit, [op], [pay(kit, PAYEE_A, 6_000), pay(kit, PAYEE_B, 4_000)], [[PAYER]])
    other = spend(kit, [op], [pay(kit, PAYEE_A, 6_001), pay(kit, PAYEE_B, 3_999)], [[PAYER]])
    forged = forge(tx, 0, 0, other.inputs[0].witness[0].signature)
    assert bad_signature(kit, forged) == 0


def test_a_forged_arbiter_signature_fails(kit):
    op = fund_escrow(kit)
    tx = spend(kit, [op], [pay(kit, STRANGER, 9_000)], [[PAYEE_A, ARBITER]])
    forged = forge(tx, 0, 1, kit.keys[PAYEE_A].sign(tx.sighash(CHAIN_ID)))
    assert bad_signature(kit, forged) == 1


def test_a_signature_for_another_chain_fails(kit):
    op = fund_escrow(kit)
    unsigned = kit.unsigned([op], [pay(kit, PAYEE_A, 6_000), pay(kit, PAYEE_B, 4_000)])
    tx = kit.sign(unsigned, [[kit.keys[PAYER]]], chain_id="another-chain")
    assert bad_signature(kit, tx) == 0


# ---------------------------------------------------------------------------
# The effect and the block rules
# ---------------------------------------------------------------------------


def test_a_payment_without_escrow_records_nothing(kit):
    tx = kit.spend([kit.fund()], [kit.out(900)])
    assert accept(kit, tx)[1] is NO_EFFECT


def test_escrow_spend_in_a_payload_tx_is_recorded_with_the_payload_effect(kit):
    op = fund_escrow(kit, timeout=HEIGHT)
    user = kit.keys[PAYER]
    unsigned = ConsentGrant(h160(kit, STRANGER), b"purchase-history", HEIGHT + 10,
                            user.public_key.to_bytes(), bytes(64))
    grant = ConsentGrant(unsigned.grantee, unsigned.scope, unsigned.until, unsigned.pubkey,
                         user.sign(consent_sig_digest(unsigned, CHAIN_ID,
                                                      [op.txid + op.index.to_bytes(4, "little")])))
    tx = kit.spend([op], [pay(kit, PAYER, 9_900)], [[user]], payload=grant)
    fee, effect = accept(kit, tx)
    assert fee == 100
    assert decoded(effect).escrows == {op: (tx.txid, PATH_RECLAIM)}
    assert decoded(effect).consents == {tx.txid: ConsentRecord(h160(kit, PAYER),
                                                               h160(kit, STRANGER),
                                                      "purchase-history", HEIGHT + 10, HEIGHT)}


def test_escrow_rules_apply_to_a_tx_with_a_payload(kit):
    op = fund_escrow(kit)
    user = kit.keys[PAYEE_A]
    unsigned = ConsentGrant(h160(kit, STRANGER), b"purchase-history", HEIGHT + 10,
                            user.public_key.to_bytes(), bytes(64))
    grant = ConsentGrant(unsigned.grantee, unsigned.scope, unsigned.until, unsigned.pubkey,
                         user.sign(consent_sig_digest(unsigned, CHAIN_ID,
                                                      [op.txid + op.index.to_bytes(4, "little")])))
    tx = kit.spend([op], [pay(kit, PAYEE_A, 9_900)], [[user]], payload=grant)
    refuse(kit, tx, "bad-escrow-refund-short")


PARENT = BlockHeader(HEIGHT - 1, sha256(b"escrow-rules/parent"), bytes(32), 1_700_000_000, 2)


def test_block_records_escrow_spends_including_one_created_in_the_block(kit):
    old = fund_escrow(kit)
    release = spend(kit, [old], [pay(kit, PAYEE_A, 5_940), pay(kit, PAYEE_B, 3_960)], [[PAYER]])
    lock = escrow_lock(kit)
    create = kit.spend([kit.fund(5_000, kit.p2a(PAYER))], [kit.out(4_900, lock)])
    new = Outpoint(create.txid, 0)
    refund = spend(kit, [new], [pay(kit, PAYER, 4_851)], [[PAYEE_B]])
    block = kit.block(PARENT, [release, create, refund])
    effects = apply_block(block, kit.view, kit.params, serial_verifier)
    assert effects.fees == 100 + 100 + 49
    assert decoded(effects.o2o).escrows == {old: (release.txid, PATH_RELEASE),
                                   new: (refund.txid, PATH_REFUND)}


def test_block_refuses_a_short_release(kit):
    op = fund_escrow(kit)
    good = kit.spend([kit.fund()], [kit.out(900)])
    short = spend(kit, [op], [pay(kit, PAYEE_A, 5_939), pay(kit, PAYEE_B, 3_961)], [[PAYER]])
    with pytest.raises(BlockInvalid) as e:
        apply_block(kit.block(PARENT, [good, short]), kit.view, kit.params, serial_verifier)
    assert e.value.reason == "bad-escrow-release-short"
    assert "tx 1 " in e.value.message


def test_payer_lock_is_not_an_escrow(kit):
    """A plain coin of the payer is not subject to the escrow rules."""
    op = kit.fund(AMOUNT, PayToAddress(h160(kit, PAYER)))
    tx = spend(kit, [op], [pay(kit, STRANGER, 9_000)], [[PAYER]])
    assert accept(kit, tx)[1] is NO_EFFECT


def test_release_after_the_timeout_is_recorded_as_a_release(kit):
    """After the timeout the payer alone may do anything, but a spend that pays
    every payee its share is a release (the escrow's state says so), not a reclaim."""
    op = fund_escrow(kit)
    tx = spend(kit, [op], [pay(kit, PAYEE_A, 6_000), pay(kit, PAYEE_B, 4_000)], [[PAYER]])
    assert path_of(accept(kit, tx, TIMEOUT + 5)[1], op, tx) == PATH_RELEASE
    short = spend(kit, [op], [pay(kit, PAYEE_A, 6_000), pay(kit, PAYER, 3_900)], [[PAYER]])
    assert path_of(accept(kit, short, TIMEOUT + 5)[1], op, short) == PATH_RECLAIM

"""Coin selection, fees and change (o2ocli.wallet.builder), checked against real signatures
and the consensus transaction rules."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from o2ocli.chainspec import load_spec
from o2ocli.consensus.params import ConsensusParams
from o2ocli.consensus.tx import validate_transaction
from o2ocli.core.locks import PayToAddress
from o2ocli.core.tx import NATIVE_ASSET, Coin, Outpoint, SigPair, Tx, TxOut
from o2ocli.crypto.keys import PrivateKey
from o2ocli.wallet.builder import (
    DEFAULT_MAX_INPUTS,
    InsufficientFunds,
    Spendable,
    TooManyInputs,
    plan_payment,
    split_amount,
)

SPEC = load_spec("devnet")
PARAMS = ConsensusParams(SPEC.chain_id)
COIN = 10**SPEC.native_decimals
TOKEN = hashlib.sha256(b"test token").digest()

KEYS = [PrivateKey((i + 1).to_bytes(32, "big")) for i in range(3)]
KEY_BY_PKH = {k.public_key.hash160(): k for k in KEYS}
OWNERS = list(KEY_BY_PKH)
PAYEE = PayToAddress(hashlib.new("ripemd160", b"payee").digest())
PAYEE2 = PayToAddress(hashlib.new("ripemd160", b"payee 2").digest())
PAYEE3 = PayToAddress(hashlib.new("ripemd160", b"payee 3").digest())
CHANGE = PayToAddress(hashlib.new("ripemd160", b"change").digest())


def coin(
    amount: int, n: int, *, confirmed: bool = True, asset: bytes = NATIVE_ASSET, owner: int = 0
) -> Spendable:
    pkh = OWNERS[owner % len(OWNERS)]
    outpoint = Outpoint(hashlib.sha256(b"funding %d" % n).digest(), n % 3)
    return Spendable(outpoint, TxOut(asset, amount, PayToAddress(pkh)), confirmed, pkh)


def coins_of(*amounts: int, confirmed: bool = True, asset: bytes = NATIVE_ASSET,
             start: int = 0) -> list[Spendable]:
    return [
        coin(a, start + i, confirmed=confirmed, asset=asset, owner=i)
        for i, a in enumerate(amounts)
    ]


def pay(amount: int, lock: PayToAddress = PAYEE, asset: bytes = NATIVE_ASSET) -> TxOut:
    return TxOut(asset, amount, lock)


def sign(tx: Tx, spent: tuple[Spendable, ...]) -> Tx:
    digest = tx.sighash(SPEC.chain_id)
    witnesses = []
    for s in spent:
        key = KEY_BY_PKH[s.owner]
        witnesses.append((SigPair(key.public_key.to_bytes(), key.sign(digest)),))
    return tx.with_witnesses(witnesses)


def view_of(coins: list[Spendable]) -> dict[Outpoint, Coin]:
    return {c.outpoint: Coin(c.output, 1) for c in coins}


def required_fee(fee_rate: int, size: int) -> int:
    return -(-fee_rate * size // 1000)


def totals(outputs: tuple[TxOut, ...] | list[TxOut], asset: bytes = NATIVE_ASSET) -> int:
    return sum(o.amount for o in outputs if o.asset == asset)


def spent_amounts(plan_spent: tuple[Spendable, ...]) -> list[int]:
    return [s.output.amount for s in plan_spent]


def check_plan(plan, coins: list[Spendable], outputs: list[TxOut]) -> Tx:
    """Common invariants; returns the signed tx (already validated by consensus)."""
    assert [txin.prevout for txin in plan.tx.inputs] == [s.outpoint for s in plan.spent]
    assert all(txin.witness == () for txin in plan.tx.inputs)
    assert list(plan.tx.outputs[: len(outputs)]) == list(outputs)
    assert plan.tx.outputs[len(outputs):] == plan.change
    assert all(o.lock == CHANGE for o in plan.change)
    spent_outputs = [s.output for s in plan.spent]
    assert totals(spent_outputs) - totals(plan.tx.outputs) == plan.fee
    signed = sign(plan.tx, plan.spent)
    assert signed.txid == plan.tx.txid
    assert validate_transaction(signed, view_of(coins), 2, PARAMS) == plan.fee
    return signed


# --------------------------------------------------------------------------- split_amount


def test_split_70_20_10_of_ten_coins_is_exact():
    assert split_amount(10 * COIN, [70, 20, 10]) == [7 * COIN, 2 * COIN, 1 * COIN]


def test_split_without_remainder():
    assert split_amount(100, [33, 33, 34]) == [33, 33, 34]


@pytest.mark.parametrize(
    ("total", "percents", "expected"),
    [
        (101, [33, 33, 34], [34, 33, 34]),
        (10, [33, 33, 34], [4, 3, 3]),
        (7, [50, 50], [4, 3]),
        (999, [10, 90], [100, 899]),
    ],
)
def test_split_remainder_goes_to_first_recipient(total, percents, expected):
    shares = split_amount(total, percents)
    assert shares == expected
    assert sum(shares) == total


@pytest.mark.parametrize(
    "percents",
    [[], [50, 40], [50, 60], [100, 0], [110, -10], [0, 100], [-50, 150], [101]],
)
def test_split_rejects_bad_percentages(percents):
    with pytest.raises(ValueError):
        split_amount(10 * COIN, percents)


@pytest.mark.parametrize(
    ("total", "percents"), [(1, [50, 50]), (2, [99, 1]), (3, [25, 25, 25, 25]), (0, [100])]
)
def test_split_rejects_total_too_small_for_a_share(total, percents):
    with pytest.raises(ValueError, match="too small"):
        split_amount(total, percents)


@given(
    total=st.integers(1, 10**15),
    cuts=st.lists(st.integers(1, 99), min_size=0, max_size=6, unique=True),
)
def test_split_property(total, cuts):
    bounds = [0, *sorted(cuts), 100]
    percents = [b - a for a, b in zip(bounds, bounds[1:], strict=False)]
    floors = [total * p // 100 for p in percents]
    if min(floors[1:] + [floors[0] + total - sum(floors)]) <= 0:
        with pytest.raises(ValueError):
            split_amount(total, percents)
        return
    shares = split_amount(total, percents)
    assert sum(shares) == total
    assert shares[1:] == floors[1:]
    assert 0 <= shares[0] - floors[0] < len(percents)


# --------------------------------------------------------------------------- fees


@pytest.mark.parametrize("fee_rate", [1, 1_000, 12_345, 250_000])
@pytest.mark.parametrize("n_inputs", [1, 3])
def test_fee_is_exact_for_signed_size_and_change_returned(fee_rate, n_inputs):
    coins = coins_of(*([COIN] * 5))
    amount = (n_inputs - 1) * COIN + COIN // 2
    outputs = [pay(amount)]
    plan = plan_payment(coins, outputs, CHANGE, fee_rate=fee_rate)
    assert len(plan.spent) == n_inputs
    signed = check_plan(plan, coins, outputs)
    assert plan.fee == required_fee(fee_rate, signed.size)
    assert len(plan.change) == 1
    change = plan.change[0]
    assert change.lock == CHANGE and change.asset == NATIVE_ASSET
    assert totals([s.output for s in plan.spent]) - amount - change.amount == plan.fee
    assert change.amount == n_inputs * COIN - amount - plan.fee


def test_fee_rate_zero_means_no_fee():
    coins = coins_of(COIN)
    plan = plan_payment(coins, [pay(COIN // 4)], CHANGE, fee_rate=0)
    check_plan(plan, coins, [pay(COIN // 4)])
    assert plan.fee == 0
    assert plan.change[0].amount == COIN - COIN // 4


def test_fixed_fee_is_used_exactly_whatever_the_rate():
    coins = coins_of(COIN, 2 * COIN)
    outputs = [pay(COIN // 2)]
    plan = plan_payment(coins, outputs, CHANGE, fee_rate=10**7, fixed_fee=12_345)
    check_plan(plan, coins, outputs)
    assert plan.fee == 12_345
    assert plan.change == (TxOut(NATIVE_ASSET, COIN - COIN // 2 - 12_345, CHANGE),)


def test_fixed_fee_counts_towards_selection():
    coins = coins_of(COIN, 3 * COIN)
    # 1 COIN alone would cover the payment but not payment + fixed fee.
    plan = plan_payment(coins, [pay(COIN - 500)], CHANGE, fee_rate=0, fixed_fee=1_000)
    assert spent_amounts(plan.spent) == [3 * COIN]
    assert plan.fee == 1_000


# --------------------------------------------------------------------------- dust


def test_dust_change_is_not_created_and_goes_to_fee():
    coins = coins_of(100_000)
    outputs = [pay(98_500)]
    plan = plan_payment(coins, outputs, CHANGE, fee_rate=0, fixed_fee=1_000, dust=1_000)
    check_plan(plan, coins, outputs)
    assert plan.change == ()
    assert plan.tx.outputs == tuple(outputs)
    assert plan.fee == 1_500


def test_change_of_exactly_dust_is_created():
    coins = coins_of(100_000)
    outputs = [pay(98_000)]
    plan = plan_payment(coins, outputs, CHANGE, fee_rate=0, fixed_fee=1_000, dust=1_000)
    check_plan(plan, coins, outputs)
    assert plan.change == (TxOut(NATIVE_ASSET, 1_000, CHANGE),)
    assert plan.fee == 1_000


def test_dust_change_with_fee_rate():
    coins = coins_of(COIN)
    outputs = [pay(COIN - 10_000)]
    plan = plan_payment(coins, outputs, CHANGE, fee_rate=1_000, dust=10_000)
    signed = check_plan(plan, coins, outputs)
    assert plan.change == ()
    assert plan.fee == 10_000
    assert plan.fee >= required_fee(1_000, signed.size)


# --------------------------------------------------------------------------- selection


def test_smallest_single_coin_that_covers_is_used():
    coins = coins_of(COIN, 3 * COIN, 5 * COIN, 10 * COIN)
    plan = plan_payment(coins, [pay(2 * COIN)], CHANGE, fee_rate=1_000)
    assert spent_amounts(plan.spent) == [3 * COIN]
    plan = plan_payment(coins, [pay(4 * COIN)], CHANGE, fee_rate=1_000)
    assert spent_amounts(plan.spent) == [5 * COIN]
    check_plan(plan, coins, [pay(4 * COIN)])


def test_single_coin_must_also_cover_the_fee():
    coins = coins_of(COIN, 2 * COIN, 5 * COIN)
    # 2 COIN exactly would pay the amount but not the fee: the next coin up is used.
    plan = plan_payment(coins, [pay(2 * COIN)], CHANGE, fee_rate=1_000)
    assert spent_amounts(plan.spent) == [5 * COIN]


def test_largest_first_when_no_single_coin_covers():
    coins = coins_of(COIN, 2 * COIN, 3 * COIN, 4 * COIN)
    outputs = [pay(6 * COIN)]
    plan = plan_payment(coins, outputs, CHANGE, fee_rate=1_000)
    assert spent_amounts(plan.spent) == [4 * COIN, 3 * COIN]
    check_plan(plan, coins, outputs)

    outputs = [pay(8 * COIN)]
    plan = plan_payment(coins, outputs, CHANGE, fee_rate=1_000)
    assert spent_amounts(plan.spent) == [4 * COIN, 3 * COIN, 2 * COIN]
    check_plan(plan, coins, outputs)


def test_confirmed_preferred_over_better_fitting_unconfirmed():
    confirmed = coins_of(10 * COIN)
    unconfirmed = coins_of(COIN + COIN // 100, confirmed=False, start=10)
    coins = unconfirmed + confirmed
    outputs = [pay(COIN)]
    plan = plan_payment(coins, outputs, CHANGE, fee_rate=1_000)
    assert [s.outpoint for s in plan.spent] == [confirmed[0].outpoint]
    check_plan(plan, coins, outputs)


def test_confirmed_accumulation_preferred_over_single_unconfirmed():
    confirmed = coins_of(COIN, COIN, COIN)
    unconfirmed = coins_of(5 * COIN, confirmed=False, start=10)
    coins = unconfirmed + confirmed
    plan = plan_payment(coins, [pay(2 * COIN)], CHANGE, fee_rate=1_000)
    assert all(s.confirmed for s in plan.spent)
    assert len(plan.spent) == 3


def test_unconfirmed_used_only_when_confirmed_insufficient():
    confirmed = coins_of(COIN)
    unconfirmed = coins_of(5 * COIN, 2 * COIN, COIN // 2, confirmed=False, start=10)
    coins = confirmed + unconfirmed
    outputs = [pay(2 * COIN)]
    plan = plan_payment(coins, outputs, CHANGE, fee_rate=1_000)
    # All confirmed first, then the smallest unconfirmed coin covering the rest (+ fee).
    assert [s.outpoint for s in plan.spent] == [confirmed[0].outpoint, unconfirmed[1].outpoint]
    check_plan(plan, coins, outputs)


# --------------------------------------------------------------------------- failures


def test_insufficient_funds_reports_available_total():
    coins = coins_of(COIN, 2 * COIN) + coins_of(COIN // 2, confirmed=False, start=10)
    with pytest.raises(InsufficientFunds) as info:
        plan_payment(coins, [pay(5 * COIN)], CHANGE, fee_rate=1_000)
    assert info.value.asset == NATIVE_ASSET
    assert info.value.available == 3 * COIN + COIN // 2
    assert info.value.needed >= 5 * COIN


def test_insufficient_funds_when_only_the_fee_is_missing():
    coins = coins_of(COIN, COIN)
    with pytest.raises(InsufficientFunds) as info:
        plan_payment(coins, [pay(2 * COIN)], CHANGE, fee_rate=1_000)
    assert info.value.available == 2 * COIN
    assert info.value.needed > 2 * COIN
    # Without a fee the same payment works and spends everything.
    plan = plan_payment(coins, [pay(2 * COIN)], CHANGE, fee_rate=0)
    assert plan.fee == 0 and plan.change == ()


def test_no_coins_is_insufficient_funds():
    with pytest.raises(InsufficientFunds) as info:
        plan_payment([], [pay(1)], CHANGE, fee_rate=1_000)
    assert info.value.available == 0


def test_nothing_to_pay_is_an_error():
    with pytest.raises(ValueError):
        plan_payment(coins_of(COIN), [], CHANGE, fee_rate=1_000)


def test_too_many_inputs():
    coins = coins_of(*([10_000] * 10))
    outputs = [pay(55_000)]
    with pytest.raises(TooManyInputs):
        plan_payment(coins, outputs, CHANGE, fee_rate=1_000, max_inputs=5)
    plan = plan_payment(coins, outputs, CHANGE, fee_rate=1_000, max_inputs=6)
    assert len(plan.spent) == 6
    check_plan(plan, coins, outputs)
    assert DEFAULT_MAX_INPUTS >= 6


# --------------------------------------------------------------------------- outputs


def test_multiple_recipients_kept_in_order():
    coins = coins_of(COIN, 2 * COIN, 4 * COIN)
    outputs = [pay(3 * COIN, PAYEE3), pay(12_345, PAYEE), pay(COIN, PAYEE2), pay(7, PAYEE3)]
    plan = plan_payment(coins, outputs, CHANGE, fee_rate=2_000)
    signed = check_plan(plan, coins, outputs)
    assert plan.tx.outputs[:4] == tuple(outputs)
    assert len(plan.change) == 1
    assert plan.fee == required_fee(2_000, signed.size)


# --------------------------------------------------------------------------- tokens


def test_token_payment_conserves_tokens_and_pays_fee_in_native():
    token_coins = coins_of(700, 500, 100, asset=TOKEN, start=20)
    native = coins_of(COIN, start=30)
    coins = token_coins + native
    outputs = [pay(900, asset=TOKEN)]
    plan = plan_payment(coins, outputs, CHANGE, fee_rate=1_000)
    signed = check_plan(plan, coins, outputs)
    token_in = [s for s in plan.spent if s.output.asset == TOKEN]
    native_in = [s for s in plan.spent if s.output.asset == NATIVE_ASSET]
    assert spent_amounts(tuple(token_in)) == [700, 500]
    assert [s.outpoint for s in native_in] == [native[0].outpoint]
    token_change = [o for o in plan.change if o.asset == TOKEN]
    assert token_change == [TxOut(TOKEN, 300, CHANGE)]
    assert totals(signed.outputs, TOKEN) == 1200 == totals([s.output for s in token_in], TOKEN)
    native_change = [o for o in plan.change if o.asset == NATIVE_ASSET]
    assert len(native_change) == 1
    assert native_change[0].amount == COIN - plan.fee
    assert plan.fee == required_fee(1_000, signed.size)


def test_token_exact_amount_has_no_token_change():
    coins = coins_of(400, asset=TOKEN, start=20) + coins_of(COIN, start=30)
    outputs = [pay(400, asset=TOKEN)]
    plan = plan_payment(coins, outputs, CHANGE, fee_rate=1_000)
    check_plan(plan, coins, outputs)
    assert [o.asset for o in plan.change] == [NATIVE_ASSET]


def test_token_and_native_in_one_payment():
    coins = coins_of(1_000, asset=TOKEN, start=20) + coins_of(COIN, 2 * COIN, start=30)
    outputs = [pay(250, PAYEE, TOKEN), pay(COIN + 1, PAYEE2)]
    plan = plan_payment(coins, outputs, CHANGE, fee_rate=3_000)
    signed = check_plan(plan, coins, outputs)
    assert totals(signed.outputs, TOKEN) == 1_000
    assert plan.fee == required_fee(3_000, signed.size)


def test_token_insufficient_reports_token_available():
    coins = coins_of(700, 500, asset=TOKEN, start=20) + coins_of(100 * COIN, start=30)
    with pytest.raises(InsufficientFunds) as info:
        plan_payment(coins, [pay(2_000, asset=TOKEN)], CHANGE, fee_rate=1_000)
    assert info.value.asset == TOKEN
    assert info.value.available == 1_200
    assert info.value.needed == 2_000


def test_token_payment_without_native_coins_cannot_pay_fee():
    coins = coins_of(700, asset=TOKEN, start=20)
    with pytest.raises(InsufficientFunds) as info:
        plan_payment(coins, [pay(500, asset=TOKEN)], CHANGE, fee_rate=1_000)
    assert info.value.asset == NATIVE_ASSET
    assert info.value.available == 0


# --------------------------------------------------------------------------- property


coin_specs = st.lists(
    st.tuples(st.integers(1, 2 * 10**6), st.booleans()), min_size=0, max_size=8
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    specs=coin_specs,
    amounts=st.lists(st.integers(1, 3 * 10**6), min_size=1, max_size=3),
    fee_rate=st.integers(0, 50_000),
    dust=st.integers(1, 5_000),
    max_inputs=st.integers(1, 10),
)
def test_plan_property(specs, amounts, fee_rate, dust, max_inputs):
    coins = [coin(a, i, confirmed=c, owner=i) for i, (a, c) in enumerate(specs)]
    outputs = [pay(a) for a in amounts]
    total = sum(a for a, _ in specs)
    try:
        plan = plan_payment(
            coins, outputs, CHANGE, fee_rate=fee_rate, dust=dust, max_inputs=max_inputs
        )
    except InsufficientFunds as exc:
        assert exc.available == total
        assert exc.needed > exc.available
        assert exc.needed >= sum(amounts)
        return
    except TooManyInputs:
        assert len(coins) > max_inputs
        return
    signed = check_plan(plan, coins, outputs)
    assert len(plan.spent) <= max_inputs
    assert len({s.outpoint for s in plan.spent}) == len(plan.spent)
    spent = sum(s.output.amount for s in plan.spent)
    assert spent == sum(amounts) + sum(o.amount for o in plan.change) + plan.fee
    assert plan.fee >= required_fee(fee_rate, signed.size)
    assert all(o.amount >= dust for o in plan.change)
    if plan.change:
        assert plan.fee == required_fee(fee_rate, signed.size)
    else:
        # Dust left to the fee, on top of at most the fee of one (dropped) change output.
        change_output_size = 30
        assert plan.fee < required_fee(fee_rate, signed.size + change_output_size) + dust

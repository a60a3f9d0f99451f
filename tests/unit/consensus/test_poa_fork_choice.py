"""EIP-3436 fork choice (:func:`prefer_chain`, :func:`fork_choice_key`).

Order of preference: most total difficulty, then lowest height, then the
smallest ``(height - signer_index) % validator_count``, then the lowest hash
as an unsigned 256-bit integer.  A node switches only to a strictly better
head, so two nodes that see the same two heads always end on the same one.

The deadlock scenarios are built as real sealed chains: every block goes
through ``validate_header`` (honest difficulty from ``Snapshot.in_turn``, the
recently-signed rule enforced), and the fork-choice data is read off the
resulting heads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from poa_helpers import (
    NO_ADDRESS,
    PARAMS,
    Tip,
    address,
    child_header,
    extend,
    extend_many,
    genesis_tip,
    sorted_keys,
)

from o2ocli.consensus.errors import BlockInvalid
from o2ocli.consensus.poa import ForkChoiceKey, fork_choice_key, prefer_chain, validate_header
from o2ocli.core.block import VOTE_NONE
from o2ocli.crypto.keys import PrivateKey

Rule = Callable[[ForkChoiceKey, ForkChoiceKey], bool]
HASH_LOW = bytes(31) + b"\x05"
HASH_HIGH = b"\xff" * 32


def key(td: int, height: int, index: int = 0, count: int = 8, hash_: bytes = HASH_LOW):
    return ForkChoiceKey(td, height, index, count, hash_)


def plain_clique(candidate: ForkChoiceKey, current: ForkChoiceKey) -> bool:
    """Higher total difficulty only; on a tie keep the current (first seen) head."""
    return candidate.total_difficulty > current.total_difficulty


def geth_clique(candidate: ForkChoiceKey, current: ForkChoiceKey) -> bool:
    """Geth's 2021 rule: higher total difficulty, then shorter chain, then keep current."""
    if candidate.total_difficulty != current.total_difficulty:
        return candidate.total_difficulty > current.total_difficulty
    return candidate.height < current.height


def head_after_seeing(own: Tip, others: Iterable[Tip], rule: Rule = prefer_chain) -> Tip:
    """The head a node holding ``own`` ends on after hearing of ``others`` in order."""
    current = own
    for candidate in others:
        if rule(candidate.fork_key(), current.fork_key()):
            current = candidate
    return current


# ---------------------------------------------------------------------------
# the four rules, in order
# ---------------------------------------------------------------------------


def test_key_is_the_documented_tuple():
    k = key(41, 17, index=4, count=8, hash_=HASH_HIGH)
    assert fork_choice_key(k) == (-41, 17, (17 - 4) % 8, 2**256 - 1)


def test_higher_total_difficulty_wins_over_everything_else():
    heavy = key(10, 30, index=0, count=8, hash_=HASH_HIGH)  # longer, worse slot, worse hash
    light = key(9, 5, index=5, count=8, hash_=HASH_LOW)
    assert prefer_chain(heavy, light)
    assert not prefer_chain(light, heavy)


def test_equal_difficulty_lower_height_wins():
    short = key(12, 9, index=2, count=8, hash_=HASH_HIGH)  # (9-2)%8 = 7: worst slot
    long_ = key(12, 10, index=2, count=8, hash_=HASH_LOW)  # (10-2)%8 = 0: best slot
    assert prefer_chain(short, long_)
    assert not prefer_chain(long_, short)


def test_equal_difficulty_and_height_smallest_in_turn_distance_wins():
    # (17 - 4) % 8 = 5 beats (17 - 2) % 8 = 7, whatever the hashes.
    a = key(12, 17, index=4, count=8, hash_=HASH_HIGH)
    b = key(12, 17, index=2, count=8, hash_=HASH_LOW)
    assert prefer_chain(a, b)
    assert not prefer_chain(b, a)


def test_in_turn_distance_wraps_modulo_the_set_size():
    # (3 - 5) % 8 = 6 (not -2): index 2 with (3 - 2) % 8 = 1 wins.
    a = key(5, 3, index=5, count=8, hash_=HASH_LOW)
    b = key(5, 3, index=2, count=8, hash_=HASH_HIGH)
    assert fork_choice_key(a)[2] == 6
    assert prefer_chain(b, a)
    assert not prefer_chain(a, b)


def test_in_turn_sealer_has_distance_zero_and_loses_the_slot_tie():
    """The head whose sealer was in turn (distance 0) sorts first among equal
    TD and height; validator_count comes from the set that authorised the head."""
    a = key(7, 9, index=1, count=4, hash_=HASH_HIGH)  # 9 % 4 == 1: in turn, distance 0
    b = key(7, 9, index=0, count=4, hash_=HASH_LOW)  # distance 1
    assert prefer_chain(a, b)


def test_then_the_lowest_hash_as_uint256_wins():
    low = key(12, 17, index=4, hash_=bytes(31) + b"\xff")  # 255
    high = key(12, 17, index=4, hash_=b"\x01" + bytes(31))  # 2**248
    assert prefer_chain(low, high)
    assert not prefer_chain(high, low)


def test_identical_heads_are_never_preferred():
    a = key(12, 17, index=4, hash_=HASH_HIGH)
    assert not prefer_chain(a, a)
    assert not prefer_chain(a, key(12, 17, index=4, hash_=HASH_HIGH))


def test_same_key_with_other_index_and_count_is_still_a_tie():
    """Only (height - index) % count matters, not index or count themselves."""
    a = key(12, 17, index=1, count=8)  # 0
    b = key(12, 17, index=2, count=5)  # 0
    assert fork_choice_key(a) == fork_choice_key(b)
    assert not prefer_chain(a, b) and not prefer_chain(b, a)


small_keys = st.builds(
    ForkChoiceKey,
    st.integers(0, 4),
    st.integers(0, 4),
    st.integers(0, 3),
    st.integers(1, 4),
    st.sampled_from([bytes(32), HASH_LOW, b"\x01" + bytes(31), HASH_HIGH]),
)


@settings(max_examples=300, deadline=None)
@given(a=small_keys, b=small_keys)
def test_prefer_chain_is_antisymmetric_and_total(a, b):
    """Never both ways (no flip-flopping); exactly one way unless the keys tie."""
    assert not (prefer_chain(a, b) and prefer_chain(b, a))
    if fork_choice_key(a) != fork_choice_key(b):
        assert prefer_chain(a, b) != prefer_chain(b, a)


@settings(max_examples=150, deadline=None)
@given(a=small_keys, b=small_keys, c=small_keys)
def test_prefer_chain_is_transitive(a, b, c):
    if prefer_chain(a, b) and prefer_chain(b, c):
        assert prefer_chain(a, c)


@settings(max_examples=100, deadline=None)
@given(
    heads=st.lists(small_keys, min_size=1, max_size=6, unique_by=fork_choice_key), data=st.data()
)
def test_arrival_order_does_not_matter(heads, data):
    """Nodes hearing the same heads in any order end on the same one: the minimum key."""
    order = data.draw(st.permutations(heads))
    current = order[0]
    for candidate in order[1:]:
        if prefer_chain(candidate, current):
            current = candidate
    assert current == min(heads, key=fork_choice_key)


# ---------------------------------------------------------------------------
# EIP-3436 Rationale: 8 validators, sorted by address and numbered 1..8
# (validator k has index k - 1 and is in turn at heights h with h % 8 == k - 1)
# ---------------------------------------------------------------------------

EIGHT = sorted_keys(b"poa-fork-eight", 8)


def val(k: int) -> PrivateKey:
    """Validator number ``k`` (1-based, in address order)."""
    return EIGHT[k - 1]


def in_order_chain(last_height: int) -> Tip:
    """Genesis, then every block 1..last_height sealed in turn."""
    tip = genesis_tip([address(k) for k in EIGHT])
    tip = extend_many(tip, [EIGHT[h % 8] for h in range(1, last_height + 1)])
    assert tip.total_difficulty == 2 * last_height
    return tip


def fork(base: Tip, validators: list[int]) -> Tip:
    return extend_many(base, [val(k) for k in validators])


def can_extend(tip: Tip, key_: PrivateKey) -> bool:
    """True if ``key_`` may seal the next block on ``tip``."""
    try:
        tip.snapshot.apply(tip.height + 1, address(key_), VOTE_NONE, NO_ADDRESS, PARAMS.epoch)
    except BlockInvalid as exc:
        assert exc.reason == "bad-poa-recently-signed"
        return False
    return True


def test_scenario_1_forks_of_different_length():
    """Validator 8 has just sealed in turn; 5, 7 and 8 go offline.  Fork A:
    validator 1 in turn, then 3 out of turn.  Fork B: 2, 4, 6 in order, all out
    of turn.  Both weigh 3 more than the common ancestor; A is shorter."""
    base = in_order_chain(15)
    assert base.sealers[-1] == (15, address(val(8))) and base.header.difficulty == 2
    a = fork(base, [1, 3])
    b = fork(base, [2, 4, 6])
    assert [t.header.difficulty for t in (a, b)] == [1, 1]
    assert a.total_difficulty - base.total_difficulty == 2 + 1
    assert b.total_difficulty - base.total_difficulty == 1 + 1 + 1
    assert (a.height, b.height) == (17, 18)

    # Plain Clique (TD, then first seen) splits the network for good.
    assert head_after_seeing(a, [b], plain_clique) is a
    assert head_after_seeing(b, [a], plain_clique) is b
    # EIP-3436: both sides pick the shorter fork A.
    assert head_after_seeing(a, [b]) is a
    assert head_after_seeing(b, [a]) is a
    # The reunited network goes on: validator 2 (on B before) extends A.
    assert extend(a, val(2)).height == 18


def test_scenario_2_as_written_in_the_eip_cannot_happen():
    """Validator 7 has just sealed in turn; 7 and 8 go offline; forks 1,3,5
    and 2,4,6.  Validator 6 sealed block 13, four blocks before its fork block
    17, inside the 5-block window of 8 validators, so the 2,4,6 fork is invalid
    (the EIP's example breaks the recently-signed rule)."""
    base = in_order_chain(14)
    assert base.sealers[-1] == (14, address(val(7)))
    odd = fork(base, [1, 3, 5])
    even = fork(base, [2, 4])
    assert not can_extend(even, val(6))
    with pytest.raises(BlockInvalid) as info:
        extend(even, val(6))
    assert info.value.reason == "bad-poa-recently-signed"
    # After two blocks each the forks do tie (TD and height), and EIP-3436
    # breaks the tie the same way on both sides ...
    odd2 = fork(base, [1, 3])
    assert (odd2.total_difficulty, odd2.height) == (even.total_difficulty, even.height)
    assert head_after_seeing(odd2, [even]) is head_after_seeing(even, [odd2]) is even
    # ... but that tie is not a deadlock: the odd side can still seal (validator 5).
    assert odd.total_difficulty > even.total_difficulty


def test_scenario_2_deadlock_with_equal_difficulty_and_length():
    """The valid form of scenario 2 (from the EIP's discussion): validators 1..7
    seal in order, 7 last; then validator 6 goes offline and the rest split into
    {1, 3, 4} and {2, 5, 7, 8}.  Fork X: 1, 4, 3; fork Y: 2, 8, 5.  Each adds 3
    (all out of turn) over 3 blocks, and afterwards no online validator may
    seal on its own side.  TD, then shortest chain, would halt for good."""
    base = in_order_chain(14)
    assert base.sealers[-1] == (14, address(val(7)))
    side_x, side_y = [1, 3, 4], [2, 5, 7, 8]
    x = fork(base, [1, 4, 3])
    y = fork(base, [2, 8, 5])
    assert x.total_difficulty == y.total_difficulty == base.total_difficulty + 3
    assert x.height == y.height == 17
    assert not any(can_extend(x, val(k)) for k in side_x)
    assert not any(can_extend(y, val(k)) for k in side_y)

    for rule in (plain_clique, geth_clique):
        assert head_after_seeing(x, [y], rule) is x
        assert head_after_seeing(y, [x], rule) is y

    # EIP-3436: (17 - 2) % 8 = 7 for X's head (validator 3), (17 - 4) % 8 = 5
    # for Y's head (validator 5): everyone takes Y, whichever head it held.
    assert (x.signer_index, y.signer_index) == (2, 4)
    assert head_after_seeing(x, [y]) is y
    assert head_after_seeing(y, [x]) is y
    assert head_after_seeing(y, [y, x, x]) is y
    # and X's validators can then extend it.
    assert all(can_extend(y, val(k)) for k in side_x)
    assert extend(y, val(1)).height == 18


# ---------------------------------------------------------------------------
# A 4-validator split that deadlocks under plain Clique
# ---------------------------------------------------------------------------

FOUR = sorted_keys(b"poa-fork-four", 4)


def four_genesis() -> Tip:
    return genesis_tip([address(k) for k in FOUR])


def test_four_validator_split_with_equal_difficulty_and_length():
    """Validators 0..3 (index order; limit 3) split into {0, 1} and {2, 3} from
    genesis.  P: 1 by validator 1 (in turn, 2), 2 by validator 0 (1).  Q: 1 by
    validator 3 (1), 2 by validator 2 (in turn, 2).  Both weigh 3 at height 2,
    and neither half may seal a third block on its own branch."""
    half_p, half_q = FOUR[:2], FOUR[2:]
    p = extend_many(four_genesis(), [FOUR[1], FOUR[0]])
    q = extend_many(four_genesis(), [FOUR[3], FOUR[2]])
    assert [b.header.difficulty for b in (p, q)] == [1, 2]
    assert p.total_difficulty == q.total_difficulty == 3
    assert p.height == q.height == 2
    assert not any(can_extend(p, k) for k in half_p)
    assert not any(can_extend(q, k) for k in half_q)

    # Plain Clique (and geth's shortest-chain rule): each half keeps its own head
    # and can never add a block to it, so the chain halts.
    for rule in (plain_clique, geth_clique):
        assert head_after_seeing(p, [q], rule) is p
        assert head_after_seeing(q, [p], rule) is q

    # EIP-3436: P's head (validator 0 at 2) has distance 2, Q's (validator 2 at 2)
    # distance 0: both halves adopt Q, and P's validators can extend it.
    assert [fork_choice_key(t.fork_key())[2] for t in (p, q)] == [2, 0]
    assert head_after_seeing(p, [q]) is q
    assert head_after_seeing(q, [p]) is q
    assert all(can_extend(q, k) for k in half_p)
    merged = extend(q, FOUR[0])
    assert merged.height == 3 and merged.total_difficulty == 4


def test_four_validator_split_after_an_in_order_run():
    """After blocks 1..4 in turn, halves {1, 0} and {2, 3}: P seals 5 in turn
    (weight 2); Q seals 5 and 6 out of turn (weight 2).  Equal TD, so plain
    Clique keeps both halves apart while both are stuck; EIP-3436 (and geth's
    shortest-chain rule) pick P."""
    base = extend_many(four_genesis(), [FOUR[h % 4] for h in range(1, 5)])
    p = extend(base, FOUR[1])
    q = extend_many(base, [FOUR[2], FOUR[3]])
    assert p.total_difficulty == q.total_difficulty == base.total_difficulty + 2
    assert not any(can_extend(p, k) for k in (FOUR[0], FOUR[1]))
    assert not any(can_extend(q, k) for k in (FOUR[2], FOUR[3]))
    assert head_after_seeing(p, [q], plain_clique) is p
    assert head_after_seeing(q, [p], plain_clique) is q
    assert head_after_seeing(p, [q]) is head_after_seeing(q, [p]) is p
    assert extend(p, FOUR[2]).header.difficulty == 2  # in turn at 6


def test_two_heads_at_the_same_slot_fall_back_to_the_lowest_hash():
    """Two different blocks sealed by the same validator on the same parent
    (different times): equal TD, height and slot, so the lower hash wins,
    identically on both sides."""
    base = extend(four_genesis(), FOUR[1])
    a = extend(base, FOUR[2])
    header = child_header(base.header, base.snapshot, FOUR[2], time=base.header.time + 60)
    assert validate_header(header, base.header, base.snapshot, PARAMS, header.time) == a.snapshot
    b = Tip(header, a.snapshot, a.total_difficulty, a.signer_index, a.validator_count)
    assert a.header.hash != b.header.hash
    low, high = sorted((a, b), key=lambda t: int.from_bytes(t.header.hash, "big"))
    assert head_after_seeing(low, [high]) is low
    assert head_after_seeing(high, [low]) is low

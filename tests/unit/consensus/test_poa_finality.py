"""Finality (:func:`finalized_height`) and the reorganisation bound
(:func:`check_reorg_depth`).

A block is final once ``floor(N/2) + 1`` distinct validators have sealed at or
above it; a competing branch must fork at or above the finalized height.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from poa_helpers import address, extend_many, genesis_tip, sorted_keys

from o2ocli.consensus.errors import BlockInvalid
from o2ocli.consensus.poa import check_reorg_depth, finalized_height, signer_limit

A, B, C, D, E = (bytes([i]) * 20 for i in range(1, 6))


def test_single_validator_finalizes_the_tip():
    assert finalized_height([(7, A), (6, A), (5, A)], 1) == 7
    assert finalized_height([(1, A)], 1) == 1


@pytest.mark.parametrize(
    ("sealers", "final"),
    [
        ([(10, A), (9, B)], 9),
        ([(10, A), (9, A), (8, B), (7, C)], 8),
        ([(10, A), (9, A), (8, A), (7, A), (6, C)], 6),
        ([(10, B), (9, A), (8, B)], 9),
    ],
)
def test_three_validators_need_two_distinct_sealers(sealers, final):
    assert signer_limit(3) == 2
    assert finalized_height(sealers, 3) == final


@pytest.mark.parametrize(
    ("sealers", "final"),
    [
        ([(10, A), (9, B), (8, C)], 8),
        ([(10, A), (9, B), (8, A), (7, B), (6, D)], 6),
        ([(10, A), (9, B), (8, C), (7, D)], 8),
    ],
)
def test_four_validators_need_three_distinct_sealers(sealers, final):
    assert signer_limit(4) == 3
    assert finalized_height(sealers, 4) == final


def test_five_validators_need_three_distinct_sealers():
    assert finalized_height([(20, A), (19, B), (18, C), (17, D), (16, E)], 5) == 18


@pytest.mark.parametrize(
    ("sealers", "n"),
    [
        ([], 1),
        ([], 3),
        ([(10, A), (9, A)], 3),
        ([(10, A), (9, B), (8, A), (7, B)], 4),
        ([(3, A), (2, B)], 5),
    ],
)
def test_list_running_out_leaves_only_genesis_final(sealers, n):
    assert finalized_height(sealers, n) == 0


def test_accepts_a_lazy_iterable_of_sealers():
    sealers = iter([(10, A), (9, B), (8, C), (7, D)])
    assert finalized_height(sealers, 4) == 8


def test_finality_on_a_real_sealed_chain():
    keys = sorted_keys(b"poa-finality", 3)
    tip = extend_many(genesis_tip([address(k) for k in keys]), [keys[h % 3] for h in range(1, 11)])
    from_tip = list(reversed(tip.sealers))
    assert from_tip[0] == (10, address(keys[1]))
    assert finalized_height(from_tip, 3) == 9


signer_lists = st.lists(st.sampled_from([A, B, C, D, E]), max_size=25)


@settings(max_examples=200, deadline=None)
@given(signers=signer_lists, n=st.integers(1, 9), new=st.sampled_from([A, B, C, D, E]))
def test_finalized_height_never_decreases_as_the_chain_grows(signers, n, new):
    """Heights 1..len ascending; adding a block on top never un-finalizes anything,
    and the finalized height is never above the tip."""
    chain = list(enumerate(signers, start=1))
    before = finalized_height(list(reversed(chain)), n)
    grown = [*chain, (len(chain) + 1, new)]
    after = finalized_height(list(reversed(grown)), n)
    assert 0 <= before <= len(chain)
    assert before <= after <= len(grown)


@settings(max_examples=200, deadline=None)
@given(signers=signer_lists, n=st.integers(1, 9))
def test_finalized_height_matches_its_definition(signers, n):
    """The highest h such that the blocks at or above h have at least
    floor(n/2)+1 distinct sealers (0 if there is none)."""
    chain = list(enumerate(signers, start=1))
    expected = max(
        (h for h, _ in chain if len({s for hh, s in chain if hh >= h}) >= signer_limit(n)),
        default=0,
    )
    assert finalized_height(list(reversed(chain)), n) == expected


# ---------------------------------------------------------------------------
# check_reorg_depth
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("fork", "final"), [(9, 9), (10, 9), (0, 0), (5, 0)])
def test_fork_at_or_above_finalized_height_is_allowed(fork, final):
    check_reorg_depth(fork, final)


@pytest.mark.parametrize(("fork", "final"), [(8, 9), (0, 9), (0, 1)])
def test_fork_below_finalized_height_is_rejected(fork, final):
    with pytest.raises(BlockInvalid) as info:
        check_reorg_depth(fork, final)
    assert info.value.reason == "bad-fork-below-finalized"


def test_reorg_bound_on_a_real_chain():
    """3 validators in turn to height 10: block 9 is final, so a branch may fork
    from block 9 (replacing only 10) but not from block 8."""
    keys = sorted_keys(b"poa-finality", 3)
    tip = extend_many(genesis_tip([address(k) for k in keys]), [keys[h % 3] for h in range(1, 11)])
    final = finalized_height(list(reversed(tip.sealers)), len(tip.snapshot.validators))
    assert final == 9
    check_reorg_depth(9, final)
    with pytest.raises(BlockInvalid) as info:
        check_reorg_depth(8, final)
    assert info.value.reason == "bad-fork-below-finalized"

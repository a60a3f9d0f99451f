"""The reorganisation bound (:func:`check_reorg_depth`): a competing branch
must fork at or above the finalized height.

Finality itself comes from signed votes (tests in ``test_finality_rules.py``);
sealing a block is not a vote, so no sealer count makes anything final.
"""

from __future__ import annotations

import pytest

from o2ocli.consensus import poa
from o2ocli.consensus.errors import BlockInvalid
from o2ocli.consensus.poa import check_reorg_depth


def test_seals_are_not_finality():
    """The old rule (final once floor(N/2)+1 distinct validators sealed at or
    above) is gone: a validator may seal a block and later leave it."""
    assert not hasattr(poa, "finalized_height")


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

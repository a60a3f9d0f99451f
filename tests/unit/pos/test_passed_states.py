"""An invoice noticed late (its payment first seen in a block, or already
final) still reports every state it passed, in order."""

from o2ocli.pos.server import PROGRESS, passed_states


def test_skipped_states_are_filled_in_order() -> None:
    assert passed_states("new", "confirmed") == ("seen",)
    assert passed_states("new", "final") == ("seen", "confirmed")
    assert passed_states("seen", "final") == ("confirmed",)


def test_a_step_of_one_or_a_side_state_adds_nothing() -> None:
    for a, b in zip(PROGRESS, PROGRESS[1:], strict=False):
        assert passed_states(a, b) == ()
    assert passed_states("new", "expired") == ()
    assert passed_states("new", "underpaid") == ()
    assert passed_states(None, "seen") == ()
    assert passed_states("final", "seen") == ()

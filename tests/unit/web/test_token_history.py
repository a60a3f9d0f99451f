"""The token page's history: mint-authority steps and burns merged newest
first, and cut to the heights both lists cover when either was capped."""

from __future__ import annotations

from o2ocli.web.pages import merged_history


def step(kind: str, height: int, amount: str | None = None) -> dict:
    row = {"txid": f"{kind}-{height}", "height": height, "type": kind, "final": height < 5}
    if amount is not None:
        row["amount"] = amount
    return row


def burn(height: int, amount: str) -> dict:
    return {"txid": f"burn-{height}", "height": height, "amount": amount,
            "amount_units": 0, "final": height < 5}


def kinds(rows: list[dict]) -> list[tuple[str, int, str]]:
    return [(r["type"], r["height"], r["amount"]) for r in rows]


def test_steps_and_burns_are_merged_newest_first():
    steps = [step("token-freeze", 9), step("token-mint", 4, "5"), step("token-issue", 2)]
    rows, complete = merged_history(steps, False, [burn(6, "1.5"), burn(4, "2")], False)
    assert complete
    assert kinds(rows) == [("token-freeze", 9, ""), ("token-burn", 6, "1.5"),
                           ("token-mint", 4, "5"), ("token-burn", 4, "2"),
                           ("token-issue", 2, "")]
    assert [r["final"] for r in rows] == [False, False, True, True, True]
    assert rows[1]["txid"] == "burn-6"


def test_a_burn_that_also_moved_the_authority_is_listed_once():
    steps = [step("token-burn", 7, "3"), step("token-issue", 2)]
    both = dict(burn(7, "3"), txid="token-burn-7")
    rows, _ = merged_history(steps, False, [both], False)
    assert kinds(rows) == [("token-burn", 7, "3"), ("token-issue", 2, "")]


def test_a_capped_list_cuts_the_other_at_the_heights_it_covers():
    steps = [step("token-mint", h, "1") for h in (9, 3, 1)]
    rows, complete = merged_history(steps, False, [burn(8, "1"), burn(5, "1")], True)
    assert not complete
    assert kinds(rows) == [("token-mint", 9, "1"), ("token-burn", 8, "1"),
                           ("token-burn", 5, "1")]  # no mint older than the oldest burn shown
    rows, complete = merged_history(steps, True, [burn(8, "1"), burn(2, "1")], False)
    assert not complete and [r["height"] for r in rows] == [9, 8, 3, 2, 1]
    rows, _ = merged_history(steps[:2], True, [burn(8, "1"), burn(2, "1")], False)
    assert [r["height"] for r in rows] == [9, 8, 3]

"""Initial sync as ``node status`` shows it: headers vs blocks, progress, ETA."""

from __future__ import annotations

import pytest

from o2ocli.node.syncstatus import SyncTracker, format_eta


def test_eta_comes_from_the_connect_rate_of_the_last_minute():
    tracker = SyncTracker(window=60)
    assert tracker.report(0, 1000, syncing=True)["sync_eta_seconds"] is None  # no rate yet
    for second in range(11):
        tracker.sample(100.0 + second, 20 * second)  # 20 blocks/s
    report = tracker.report(200, 1000, syncing=True)
    assert report == {"header_height": 1000, "block_height": 200,
                      "verification_progress": 0.2, "sync_eta_seconds": 40.0}


def test_old_samples_leave_the_window_and_the_rate_follows():
    tracker = SyncTracker(window=10)
    for second in range(10):
        tracker.sample(float(second), 100 * second)  # fast at first
    for second in range(10, 40):
        tracker.sample(float(second), 900 + (second - 9))  # then 1 block/s
    assert tracker.rate() == pytest.approx(1.0)
    assert tracker.report(930, 1030, syncing=True)["sync_eta_seconds"] == 100.0


def test_no_eta_when_not_syncing_and_a_reorg_restarts_the_rate():
    tracker = SyncTracker()
    tracker.sample(0.0, 50)
    tracker.sample(5.0, 60)
    assert tracker.report(60, 60, syncing=False) == {
        "header_height": 60, "block_height": 60, "verification_progress": 1.0,
        "sync_eta_seconds": None}
    tracker.sample(6.0, 40)  # the height went down: the old rate means nothing
    assert tracker.rate() is None
    # headers below the blocks (no peer yet) count as the blocks
    assert tracker.report(40, 0, syncing=False)["header_height"] == 40


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "unknown"), (42.4, "42s"), (185, "3m05s"), (3720, "1h02m"), (0, "0s")])
def test_format_eta(seconds, text):
    assert format_eta(seconds) == text


def test_a_new_sync_long_after_the_last_one_starts_a_new_rate():
    tracker = SyncTracker(window=60)
    tracker.sample(0.0, 0)
    tracker.sample(10.0, 1000)  # an earlier sync
    tracker.sample(3600.0, 1000)  # syncing again an hour later
    assert tracker.rate() is None  # not 1000 blocks over an hour
    tracker.sample(3602.0, 1010)
    assert tracker.rate() == pytest.approx(5.0)

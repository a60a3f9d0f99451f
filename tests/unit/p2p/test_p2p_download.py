"""Block download scheduling: per-peer windows, stall detection and adaptive
timeouts, head-of-line reassignment, preference, and which peers may be asked
for which block (only those that have shown they have it).

The downloader is pure bookkeeping with the clock passed in, so these tests
drive it with explicit times.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from o2ocli.core.block import BlockHeader
from o2ocli.crypto.hashes import sha256d
from o2ocli.p2p import download as dl
from o2ocli.p2p.download import (
    MAX_STRIKES,
    MIN_STALL_TIMEOUT,
    NO_PROGRESS_SECONDS,
    STALL_FACTOR,
    WINDOW,
    BlockDownloader,
)
from o2ocli.p2p.peer import KnownSet
from o2ocli.p2p.sync import BlockSync

GOOD, SILENT, OTHER = 1, 2, 3


def h(n: int) -> bytes:
    return sha256d(n.to_bytes(4, "big"))


def fill(d: BlockDownloader, peers: list[int], first: int, count: int, now: float) -> dict:
    """Assign blocks first..first+count-1 the way BlockSync.schedule does."""
    got: dict[int, list[int]] = {p: [] for p in peers}
    for n in range(first, first + count):
        pid = d.choose(peers, now)
        if pid is None:
            break
        d.assign(pid, h(n), now)
        got[pid].append(n)
    return got


def test_window_bounds_blocks_in_flight_per_peer():
    d = BlockDownloader()
    d.add_peer(GOOD)
    d.add_peer(OTHER)
    got = fill(d, [GOOD, OTHER], 0, 3 * WINDOW, now=0.0)
    assert len(got[GOOD]) == len(got[OTHER]) == WINDOW  # fresh peers share the work
    assert d.slots(GOOD, 0.0) == d.slots(OTHER, 0.0) == 0
    assert d.choose([GOOD, OTHER], 0.0) is None
    assert d.in_flight() == 2 * WINDOW
    # One delivery frees one slot (and, the window being at its maximum, only one).
    assert d.delivered(GOOD, h(got[GOOD][0]), 0.1) is True
    assert d.slots(GOOD, 0.1) == 1
    assert d.choose([GOOD, OTHER], 0.1) == GOOD


def test_peer_that_delivered_is_preferred_and_faster_peer_gets_more():
    d = BlockDownloader()
    for pid in (GOOD, SILENT, OTHER):
        d.add_peer(pid)
    d.assign(GOOD, h(0), 0.0)
    d.delivered(GOOD, h(0), 0.01)
    d.assign(OTHER, h(1), 0.0)
    d.delivered(OTHER, h(1), 0.1)
    # SILENT never delivered: last choice while the others have room.
    assert d.choose([SILENT, OTHER, GOOD], 1.0) == GOOD
    got = fill(d, [SILENT, OTHER, GOOD], 10, 40, now=1.0)
    assert len(got[GOOD]) > len(got[OTHER]) > len(got[SILENT])


def test_timeout_adapts_to_the_peers_delivery_rate():
    d = BlockDownloader()
    d.add_peer(GOOD)
    d.add_peer(OTHER)
    assert d.timeout(GOOD) == MIN_STALL_TIMEOUT  # nothing known yet
    now = 0.0
    for n in range(20):  # a slow but steady peer: one block per 0.5 s
        d.assign(OTHER, h(n), now)
        now += 0.5
        assert d.delivered(OTHER, h(n), now)
    assert d.peers[OTHER].per_block == pytest.approx(0.5)
    assert d.timeout(OTHER) == pytest.approx(STALL_FACTOR * 0.5)
    # A fast peer keeps the minimum.
    d.assign(GOOD, h(100), now)
    assert d.delivered(GOOD, h(100), now + 0.01)
    assert d.timeout(GOOD) == MIN_STALL_TIMEOUT
    # The slow peer is not stalling between its deliveries, only past its own timeout.
    d.assign(OTHER, h(200), now)
    assert d.find_stalls(now + 3.9, lambda pid: True) == []
    [stall] = d.find_stalls(now + 4.1, lambda pid: True)
    assert stall.peer_id == OTHER and stall.released == (h(200),)


def test_silent_peer_loses_its_blocks_quickly_then_probation_then_disconnect():
    d = BlockDownloader()
    d.add_peer(GOOD)
    d.add_peer(SILENT)
    got = fill(d, [GOOD, SILENT], 0, 2 * WINDOW, now=0.0)
    assert got[SILENT]
    for n in got[GOOD]:
        d.delivered(GOOD, h(n), 0.5)
    assert d.find_stalls(MIN_STALL_TIMEOUT - 0.1, lambda pid: True) == []
    [stall] = d.find_stalls(MIN_STALL_TIMEOUT + 0.1, lambda pid: True)
    assert stall.peer_id == SILENT and stall.strikes == 1 and not stall.disconnect
    assert stall.released == tuple(h(n) for n in got[SILENT])
    assert all(h(n) not in d.owner for n in got[SILENT])  # free for the others
    assert d.base == 2 * MIN_STALL_TIMEOUT  # the network may be slow: next time, wait longer
    now = MIN_STALL_TIMEOUT + 0.1
    # Cooling down: nothing for it, not even forced.
    assert d.slots(SILENT, now) == 0
    assert d.choose([SILENT], now, force=True) is None
    # Then probation: one block at a time, last choice.
    later = d.peers[SILENT].cooldown_until
    assert d.slots(SILENT, later) == 1
    assert d.peers[SILENT].probation
    assert d.choose([SILENT, GOOD], later, force=True) == GOOD
    strikes = 1
    while strikes < MAX_STRIKES:
        d.assign(SILENT, h(1000 + strikes), later)
        later += d.timeout(SILENT) + 0.1
        [stall] = d.find_stalls(later, lambda pid: True)
        strikes += 1
        assert stall.strikes == strikes
        later = d.peers[SILENT].cooldown_until
    assert stall.disconnect  # repeated stalls: the caller drops it (no points, no ban)


def test_deliveries_forgive_strikes_and_decay_the_base_timeout():
    d = BlockDownloader()
    d.add_peer(OTHER)
    d.add_peer(GOOD, strikes=1, now=0.0)  # carried over from an earlier connection
    state = d.peers[GOOD]
    assert state.probation and state.window == 1 and d.slots(GOOD, 0.0) == 0
    now = state.cooldown_until
    d.base = 16.0
    for n in range(dl.STRIKE_DECAY):
        assert d.slots(GOOD, now) >= 1
        d.assign(GOOD, h(n), now)
        now += 0.01
        assert d.delivered(GOOD, h(n), now)
    assert state.strikes == 0 and not state.probation
    assert state.window == min(WINDOW, 1 + dl.STRIKE_DECAY)
    assert d.base == MIN_STALL_TIMEOUT


def test_no_alternative_means_no_strike_until_no_progress_at_all():
    d = BlockDownloader()
    d.add_peer(SILENT)
    d.assign(SILENT, h(0), 0.0)
    assert d.find_stalls(10.0, lambda pid: False) == []  # the only source: wait
    [stall] = d.find_stalls(NO_PROGRESS_SECONDS + 0.1, lambda pid: False)
    assert stall.disconnect and stall.released == (h(0),)


def test_our_own_lag_is_not_blamed_on_peers():
    d = BlockDownloader()
    d.add_peer(GOOD)
    d.assign(GOOD, h(0), 0.0)
    d.note_lag(5.0)  # we were busy connecting a big block until t=5
    assert d.find_stalls(5.0 + MIN_STALL_TIMEOUT - 0.1, lambda pid: True) == []
    assert d.find_stalls(5.0 + MIN_STALL_TIMEOUT + 0.1, lambda pid: True)


def test_head_of_line_block_is_reassigned_when_overdue():
    d = BlockDownloader()
    d.add_peer(GOOD)
    d.add_peer(OTHER)
    head = h(0)
    d.assign(OTHER, head, 0.0)
    for n in range(1, WINDOW):
        d.assign(OTHER, h(n), 0.0)
    assert not d.head_overdue(head, 1.0)
    # OTHER keeps delivering other blocks (so it is not stalling) but not the head.
    for n in range(1, 30):
        d.delivered(OTHER, h(n), 0.1 * n)
    assert d.find_stalls(3.0, lambda pid: True) == []
    assert d.head_overdue(head, MIN_STALL_TIMEOUT + 0.1)
    window = d.peers[OTHER].window
    assert d.reassign_head(head, [GOOD, OTHER], MIN_STALL_TIMEOUT + 0.1) == GOOD
    assert d.owner[head] == GOOD and head not in d.peers[OTHER].inflight
    assert d.peers[OTHER].window == window // 2
    # Whoever delivers it first, no request for it stays behind.
    assert d.delivered(OTHER, head, 3.0) is False
    assert head not in d.owner and head not in d.peers[GOOD].inflight


def test_head_held_by_a_peer_on_probation_moves_at_once_even_if_windows_are_full():
    d = BlockDownloader()
    d.add_peer(GOOD)
    d.add_peer(SILENT, strikes=1, now=0.0)
    now = d.peers[SILENT].cooldown_until
    d.assign(SILENT, h(0), now)
    fill(d, [GOOD], 1, WINDOW, now)
    assert d.slots(GOOD, now) == 0
    assert d.head_overdue(h(0), now)
    assert d.reassign_head(h(0), [GOOD, SILENT], now) == GOOD  # beyond its window
    assert len(d.peers[GOOD].inflight) == WINDOW + 1
    # An unrequested head is always overdue; with no other holder it stays put.
    d.release(h(0))
    assert d.head_overdue(h(0), now)
    assert d.reassign_head(h(0), [], now) is None


def test_head_taken_from_a_slow_peer_never_goes_to_one_on_probation():
    d = BlockDownloader()
    d.add_peer(OTHER)
    d.add_peer(SILENT, strikes=1, now=0.0)
    now = d.peers[SILENT].cooldown_until
    d.assign(OTHER, h(0), now)
    later = now + MIN_STALL_TIMEOUT + 0.1
    assert d.head_overdue(h(0), later)
    assert d.reassign_head(h(0), [OTHER, SILENT], later) is None  # no bouncing
    assert d.owner[h(0)] == OTHER
    # Unrequested, it may go to the peer on probation if that is the only holder.
    d.release(h(0))
    assert d.reassign_head(h(0), [SILENT], later) == SILENT


def test_remove_peer_releases_what_it_owed():
    d = BlockDownloader()
    d.add_peer(GOOD)
    d.add_peer(SILENT)
    got = fill(d, [GOOD, SILENT], 0, 10, 0.0)
    released = d.remove_peer(SILENT)
    assert set(released) == {h(n) for n in got[SILENT]}
    assert d.in_flight() == len(got[GOOD])
    assert d.choose([SILENT], 0.0) is None


# ------------------------------------------------------ what a peer has shown


def header_chain(parent: BlockHeader, count: int, salt: int = 0) -> list[BlockHeader]:
    out = []
    for _ in range(count):
        parent = BlockHeader(parent.height + 1, parent.hash, sha256d(bytes([salt])),
                             parent.time + 1, 2)
        out.append(parent)
    return out


def test_peers_are_asked_only_for_blocks_they_have_shown():
    sync = BlockSync(manager=None)
    base = BlockHeader(10, bytes(32), bytes(32), 1000, 2)  # a stored block
    main = header_chain(base, 8)
    fork = header_chain(main[2], 3, salt=1)  # forks after main[2]
    on_fork = header_chain(fork[-1], 2, salt=2)
    for header in main + fork + on_fork:
        sync._add_pending(header, None, header.height)
    shows_main = SimpleNamespace(id=1, known_blocks=KnownSet())
    shows_fork = SimpleNamespace(id=2, known_blocks=KnownSet())
    claims_only = SimpleNamespace(id=3, known_blocks=KnownSet(), best_height=10**6)
    sync._note_shown(shows_main, main[5].hash)
    sync._note_shown(shows_fork, on_fork[-1].hash)

    def has(peer, headers):
        return [sync.has_block(peer, x.hash) for x in headers]

    assert has(shows_main, main) == [True] * 6 + [False] * 2
    assert has(shows_main, fork + on_fork) == [False] * 5
    assert has(shows_fork, main) == [True] * 3 + [False] * 5
    assert has(shows_fork, fork + on_fork) == [True] * 5
    # A high self-declared height proves nothing.
    assert has(claims_only, main + fork) == [False] * 11
    # An announcement (inv) does.
    claims_only.known_blocks.add(main[7].hash)
    assert has(claims_only, main[6:]) == [False, True]
    # A lower header later does not shrink what a peer has shown.
    sync._note_shown(shows_main, main[1].hash)
    assert sync.has_block(shows_main, main[5].hash)

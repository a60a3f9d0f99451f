"""The misbehaviour policy: who may be discouraged, score decay, the future
pool, receiver-dependent reasons and inbound eviction."""

from __future__ import annotations

import random

import pytest

from o2ocli.consensus.o2o import STATE_DEPENDENT_REASONS
from o2ocli.p2p.misbehaviour import (
    DISCONNECT_SCORE,
    SCORE_HALF_LIFE,
    DecayingScore,
    Discouraged,
    EvictionCandidate,
    FuturePool,
    is_local,
    netgroup,
    punishable,
    select_eviction,
)


@pytest.mark.parametrize("host", [
    "127.0.0.1", "127.0.0.66", "::1", "10.1.2.3", "172.16.0.9", "192.168.1.20",
    "169.254.10.1", "fe80::1", "fd00::5", "100.64.3.4", "0.0.0.0", "::ffff:127.0.0.1",
    "localhost",
])
def test_local_addresses_are_never_discouraged(host):
    assert is_local(host)


@pytest.mark.parametrize("host", ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888",
                                  "::ffff:8.8.4.4", "203.0.114.7"])
def test_public_addresses_can_be_discouraged(host):
    assert not is_local(host)


def test_an_address_of_this_host_counts_as_local():
    assert not is_local("8.8.8.8")
    assert is_local("8.8.8.8", own_hosts=("8.8.8.8",))


def test_netgroups():
    assert netgroup("8.8.8.8") == netgroup("8.8.200.1") == "8.8.0.0/16"
    assert netgroup("8.9.8.8") != netgroup("8.8.8.8")
    # Loopback is grouped by /16 like any IPv4 address (the tests use that).
    assert netgroup("127.0.0.1") == netgroup("127.0.9.9") != netgroup("127.1.0.1")
    assert netgroup("2001:db8:1::1") == netgroup("2001:db8:ffff::2") == "2001:db8::/32"
    assert netgroup("::ffff:8.8.1.1") == "8.8.0.0/16"


def test_score_decays_so_occasional_points_never_add_up():
    score = DecayingScore()
    assert score.add(60, now=0) == 60
    assert score.value(SCORE_HALF_LIFE) == pytest.approx(30)
    # 10 points every 5 minutes forever stays well below the threshold.
    now, total = 0.0, 0.0
    for _ in range(1000):
        now += 300
        total = score.add(10, now)
    assert total < DISCONNECT_SCORE / 2
    # A burst still reaches it.
    burst = DecayingScore()
    for i in range(10):
        total = burst.add(10, now=float(i))
    assert total >= DISCONNECT_SCORE - 1


def test_discouragement_expires_and_is_bounded():
    d = Discouraged(seconds=100, limit=3)
    d.add("8.8.8.8", now=0)
    assert d.contains("8.8.8.8", 50) and not d.contains("8.8.4.4", 50)
    assert not d.contains("8.8.8.8", 100)
    for i in range(5):
        d.add(f"1.1.1.{i}", now=200)
    assert len(d) == 3
    assert not d.contains("1.1.1.0", 201) and d.contains("1.1.1.4", 201)
    assert [e["host"] for e in d.listing(201)] == ["1.1.1.2", "1.1.1.3", "1.1.1.4"]


def test_receiver_dependent_reasons_are_not_punished():
    for reason in ("bad-poa-time-future", "bad-fork-below-finalized",
                   "bad-txns-inputs-missingorspent", *STATE_DEPENDENT_REASONS):
        assert not punishable(reason), reason
    for reason in ("bad-poa-seal", "bad-poa-unauthorized", "bad-txnmrklroot",
                   "bad-poa-time-too-early", "bad-txns-signature", "duplicate-invalid"):
        assert punishable(reason), reason


def test_future_pool_is_bounded_and_hands_items_back_when_due():
    pool = FuturePool(per_peer=2, total=3, horizon=60)
    assert pool.add(10, 1, "a", now=0) and pool.add(5, 1, "b", now=0)
    assert not pool.add(6, 1, "c", now=0)  # peer 1's share is used up
    assert not pool.add(61, 2, "far", now=0)  # beyond the horizon
    assert pool.add(20, 2, "d", now=0)
    assert not pool.add(30, 3, "later", now=0)  # full, and it is the latest
    assert pool.add(7, 3, "e", now=0)  # full: replaces the latest ("d")
    assert len(pool) == 3
    assert pool.take_due(4) == []
    assert pool.take_due(7) == [(1, "b"), (3, "e")]
    assert pool.take_due(100) == [(1, "a")] and len(pool) == 0


def _idle(peer_id: int, group: str = "127.0.0.0/16", **kw) -> EvictionCandidate:
    return EvictionCandidate(peer_id, connected_at=float(peer_id), netgroup=group, **kw)


def test_eviction_picks_the_youngest_idle_peer_of_the_largest_group():
    peers = [_idle(i) for i in range(1, 7)] + [_idle(7, "127.1.0.0/16")]
    assert select_eviction(peers, max_inbound=7) == 6


def test_eviction_protects_recent_block_and_tx_relayers_and_low_pings():
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    for _ in range(50):
        n = rng.randrange(4, 40)
        peers = [_idle(i, f"10.{rng.randrange(3)}.0.0/16",
                       min_ping=rng.choice([None, rng.uniform(0.01, 1)])) for i in range(n)]
        block_peer = rng.randrange(n)
        tx_peer = rng.randrange(n)
        peers[block_peer] = _idle(block_peer, peers[block_peer].netgroup, last_block=5.0)
        peers[tx_peer] = _idle(tx_peer, peers[tx_peer].netgroup, last_tx=7.0)
        victim = select_eviction(peers, max_inbound=n, salt=b"x")
        assert victim is not None, f"seed {seed}"
        assert victim not in (block_peer, tx_peer), f"seed {seed}"
        fastest = min((p for p in peers if p.min_ping is not None and p.peer_id != victim),
                      key=lambda p: p.min_ping, default=None)
        victim_ping = next(p.min_ping for p in peers if p.peer_id == victim)
        if fastest is not None and n >= 4 and victim_ping is not None:
            assert victim_ping >= fastest.min_ping, f"seed {seed}"


def test_eviction_prefers_discouraged_peers_and_may_refuse():
    peers = [_idle(i) for i in range(1, 9)]
    assert select_eviction(peers, max_inbound=8) == 8  # the youngest
    # A discouraged peer goes first, even one that would be protected.
    peers[1] = _idle(2, discouraged=True, last_block=9.0, min_ping=0.001)
    assert select_eviction(peers, max_inbound=8) == 2
    # One peer, protected as the block relayer: nobody to evict.
    assert select_eviction([_idle(1, last_block=1.0)], max_inbound=1) is None

"""The bucketed address manager: bounds, buckets, eviction, rate limit,
selection and persistence (seeded, no network)."""

from __future__ import annotations

import json
import random

import pytest

from o2ocli.p2p.addrman import (
    ADDR_BURST,
    BUCKET_SIZE,
    MAX_ENTRIES,
    MAX_PER_SOURCE_GROUP,
    NEW_BUCKETS_PER_SOURCE_GROUP,
    TIME_PENALTY,
    AddrMan,
    AddrRateLimiter,
    AddrStore,
    netgroup,
    parse_ip,
)
from o2ocli.storage.db import Database

NOW = 1_800_000_000
SEED = 20261206


def book(seed: int = SEED) -> AddrMan:
    rng = random.Random(seed)
    return AddrMan(rng.randbytes(32), random.Random(seed + 1))


def flood_address(i: int) -> str:
    """Attacker-claimed addresses spread over many /16 groups."""
    return f"{11 + i % 200}.{(i // 200) % 250}.{(i // 7) % 250}.{1 + i % 250}"


# ------------------------------------------------------------ addresses
@pytest.mark.parametrize("host", ["example.com", "localhost", "127.1", "1.2.3", "", "::g",
                                  "1.2.3.4.5", "0x7f.0.0.1"])
def test_only_numeric_ip_addresses_are_parsed(host):
    assert parse_ip(host) is None


def test_network_groups():
    assert netgroup(parse_ip("203.0.113.9")) == netgroup(parse_ip("203.0.7.1")) == "4:203.0"
    assert netgroup(parse_ip("203.1.113.9")) != netgroup(parse_ip("203.0.113.9"))
    assert netgroup(parse_ip("2001:db8:1::1")) == netgroup(parse_ip("2001:db8:ffff::2"))
    assert netgroup(parse_ip("2001:db9::1")) != netgroup(parse_ip("2001:db8::1"))
    # IPv4-mapped IPv6 is the IPv4 address.
    assert parse_ip("::ffff:203.0.113.9") == parse_ip("203.0.113.9")
    # Each loopback address is its own group.
    assert netgroup(parse_ip("127.0.0.1")) == "lo:127.0.0.1"
    assert netgroup(parse_ip("127.0.0.2")) != netgroup(parse_ip("127.0.0.1"))


@pytest.mark.parametrize("host,port", [
    ("seed.example.com", 18444), ("127.1", 18444), ("0.0.0.0", 18444), ("::", 18444),
    ("224.0.0.1", 18444), ("255.255.255.255", 18444), ("240.1.2.3", 18444),
    ("198.51.100.1", 0), ("198.51.100.1", 65536),
])
def test_bad_addresses_are_refused(host, port):
    b = book()
    assert not b.add(host, port, "203.0.113.9", NOW, NOW)
    assert len(b) == 0 and b.stats["invalid"] == 1


def test_loopback_addresses_only_from_a_loopback_source():
    b = book()
    assert not b.add("127.0.0.1", 18444, "203.0.113.9", NOW, NOW)
    assert b.add("127.0.0.1", 18444, "127.0.0.5", NOW, NOW)
    assert ("127.0.0.1", 18444) in b


def test_addresses_are_normalised():
    b = book()
    assert b.add("2001:0db8:0000::0001", 18444, "203.0.113.9", NOW, NOW)
    assert ("2001:db8::1", 18444) in b
    assert not b.add("[2001:db8::1]", 18444, "203.0.113.9", NOW, NOW)  # same address
    assert len(b) == 1 and b.get("2001:db8:0::1", 18444) is not None


# ------------------------------------------------------------- last_seen
def test_last_seen_is_clamped_and_penalised():
    b = book()
    b.add("198.51.100.1", 1, "203.0.113.9", NOW + 10**9, NOW)  # from the future
    b.add("198.51.100.2", 1, "203.0.113.9", NOW - 100, NOW)
    b.add("198.51.100.3", 1, "198.51.100.3", NOW, NOW)  # the address told us itself
    b.add("198.51.100.4", 1, "203.0.113.9", 2**63, NOW)
    assert b.get("198.51.100.1", 1).last_seen == NOW - TIME_PENALTY
    assert b.get("198.51.100.2", 1).last_seen == NOW - 100 - TIME_PENALTY
    assert b.get("198.51.100.3", 1).last_seen == NOW
    assert b.get("198.51.100.4", 1).last_seen == NOW - TIME_PENALTY
    assert all(e.last_seen <= NOW for e in b.entries.values())


def test_a_known_address_only_gets_fresher():
    b = book()
    b.add("198.51.100.1", 1, "203.0.113.9", NOW - 5000, NOW)
    assert not b.add("198.51.100.1", 1, "203.0.113.9", NOW - 9000, NOW)
    assert b.get("198.51.100.1", 1).last_seen == NOW - 5000 - TIME_PENALTY
    assert not b.add("198.51.100.1", 1, "203.0.113.9", NOW, NOW)
    assert b.get("198.51.100.1", 1).last_seen == NOW - TIME_PENALTY
    assert len(b) == 1


# ------------------------------------------------------------ the bounds
def test_one_source_group_fills_few_buckets_and_at_most_its_cap():
    b = book()
    added = sum(b.add(flood_address(i), 18444, "203.0.113.9", NOW, NOW) for i in range(20_000))
    assert added == len(b) <= MAX_PER_SOURCE_GROUP
    assert len(b) > MAX_PER_SOURCE_GROUP // 2  # the cap, not an accident, stopped it
    buckets = {e.bucket for e in b.entries.values()}
    assert len(buckets) <= NEW_BUCKETS_PER_SOURCE_GROUP
    # Another host of the same /16 is the same source group: no more room.
    capped = b.stats["source_cap"]
    assert capped > 10_000
    assert not b.add("99.1.1.1", 18444, "203.0.200.1", NOW, NOW)
    assert b.stats["source_cap"] == capped + 1
    # Another source group still has room.
    assert b.add("99.1.1.1", 18444, "198.51.100.1", NOW, NOW)


def test_the_book_is_bounded_whatever_the_sources():
    b = book()
    rng = random.Random(SEED)
    for i in range(25_000):
        source = f"{rng.randrange(1, 224)}.{rng.randrange(256)}.1.1"
        b.add(flood_address(rng.randrange(10**6)), 1 + i % 60000, source, NOW, NOW)
    counts = b.counts()
    assert counts["new"] > 6000  # most of the 8192 new slots: collisions bite
    assert counts["total"] == len(b) <= MAX_ENTRIES
    assert all(len(slots) <= BUCKET_SIZE for slots in b.new_table.values())
    assert counts["new"] == sum(len(s) for s in b.new_table.values()) == len(b)
    assert sum(b.per_source.values()) == counts["new"]
    assert max(b.per_source.values()) <= MAX_PER_SOURCE_GROUP


def test_buckets_depend_on_the_secret():
    a, b = book(1), book(2)
    pairs = [(f"4:{i}.0", "4:203.0") for i in range(50)]
    assert [a.new_bucket(*p) for p in pairs] != [b.new_bucket(*p) for p in pairs]
    assert [a.new_bucket(*p) for p in pairs] == [book(1).new_bucket(*p) for p in pairs]


def colliding(b: AddrMan, source: str, count: int = 2) -> list[str]:
    """Addresses of one /16 that the same source puts in the same slot."""
    by_slot: dict[int, list[str]] = {}
    src = netgroup(parse_ip(source))
    for i in range(1, 5000):
        host = f"198.51.{i // 250}.{1 + i % 250}"
        bucket = b.new_bucket(netgroup(parse_ip(host)), src)
        by_slot.setdefault((bucket, b.position(False, bucket, (host, 1))), []).append(host)
        hosts = by_slot[(bucket, b.position(False, bucket, (host, 1)))]
        if len(hosts) == count and len({netgroup(parse_ip(h)) for h in hosts}) == 1:
            return hosts
    raise AssertionError("no collision found")


def test_a_collision_keeps_the_fresher_entry():
    b = book()
    first, second = colliding(b, "203.0.113.9")
    assert b.add(first, 1, "203.0.113.9", NOW - 3600, NOW)
    assert not b.add(second, 1, "203.0.113.9", NOW - 7200, NOW)  # older: dropped
    assert b.stats["collision_dropped"] == 1 and (first, 1) in b
    assert b.add(second, 1, "203.0.113.9", NOW, NOW)  # fresher: evicts the old one
    assert (first, 1) not in b and (second, 1) in b and len(b) == 1
    assert b.stats["evicted"] == 1 and (first, 1) in b.removed


def test_a_collision_evicts_a_terrible_entry_even_if_fresher():
    b = book()
    first, second = colliding(b, "203.0.113.9")
    b.add(first, 1, "203.0.113.9", NOW, NOW)
    for _ in range(3):
        b.attempt(first, 1, NOW - 3600)  # never reached, three failures
    assert b.get(first, 1).is_terrible(NOW)
    assert b.add(second, 1, "203.0.113.9", NOW - 20 * 86400, NOW)
    assert (first, 1) not in b


def test_terrible_rules():
    b = book()
    b.add("198.51.100.1", 1, "198.51.100.1", NOW, NOW)
    e = b.get("198.51.100.1", 1)
    assert not e.is_terrible(NOW)
    assert e.is_terrible(NOW + 31 * 86400)  # not seen for a month
    b.attempt("198.51.100.1", 1, NOW)
    b.attempt("198.51.100.1", 1, NOW)
    b.attempt("198.51.100.1", 1, NOW)
    assert not e.is_terrible(NOW + 30)  # being tried right now
    assert e.is_terrible(NOW + 120)
    b.good("198.51.100.1", 1, NOW)
    assert not e.is_terrible(NOW + 120)


# ---------------------------------------------------------------- tried
def test_a_successful_handshake_moves_an_address_to_tried():
    b = book()
    b.add("198.51.100.1", 18444, "203.0.113.9", NOW - 100, NOW)
    b.attempt("198.51.100.1", 18444, NOW - 50)
    assert b.counts()["new"] == 1 and b.counts()["tried"] == 0
    assert b.good("198.51.100.1", 18444, NOW)
    e = b.get("198.51.100.1", 18444)
    assert e.tried and e.attempts == 0 and e.last_success == e.last_seen == NOW
    assert b.counts() == {"new": 0, "tried": 1, "total": 1, "capacity": MAX_ENTRIES,
                          "source_groups": 0}
    assert not b.good("198.51.100.2", 18444, NOW)  # unknown: nothing to move


def test_a_tried_collision_sends_the_old_entry_back_to_new():
    b = book()
    by_slot: dict[tuple[int, int], str] = {}
    for i in range(1, 5000):
        host = f"198.51.{i // 250}.{1 + i % 250}"
        key = (host, 1)
        bucket = b.tried_bucket(key, netgroup(parse_ip(host)))
        slot = (bucket, b.position(True, bucket, key))
        if slot in by_slot:
            first, second = by_slot[slot], host
            break
        by_slot[slot] = host
    b.add(first, 1, "203.0.113.9", NOW, NOW)
    b.add(second, 1, "192.0.2.7", NOW, NOW)
    b.good(first, 1, NOW)
    b.good(second, 1, NOW + 1)
    assert b.get(second, 1).tried
    old = b.get(first, 1)
    assert old is not None and not old.tried  # back in new, not lost
    assert b.counts()["tried"] == 1 and b.counts()["new"] == 1


# ------------------------------------------------------------- selection
def test_select_prefers_other_groups_but_falls_back():
    b = book()
    for host in ("198.51.100.1", "198.51.100.2", "192.0.2.1"):
        b.add(host, 1, "203.0.113.9", NOW, NOW)
    picks = {b.select(NOW, avoid_groups={"4:198.51"}).host for _ in range(20)}
    assert picks == {"192.0.2.1"}
    # Every group avoided: still an answer (loopback-only test networks).
    assert b.select(NOW, avoid_groups={"4:198.51", "4:192.0"}) is not None
    assert b.select(NOW, usable=lambda e: False) is None
    assert book().select(NOW) is None


def test_select_weighs_buckets_not_entries():
    """A flooder's hundreds of entries sit in a few buckets; one honest
    address in its own bucket is still picked often."""
    b = book()
    for i in range(5000):
        b.add(flood_address(i), 18444, "203.0.113.9", NOW, NOW)
    b.add("192.0.2.1", 18444, "198.51.100.20", NOW, NOW)
    assert len(b) > 200
    picks = sum(b.select(NOW).host == "192.0.2.1" for _ in range(1000))
    flood_buckets = len({e.bucket for e in b.entries.values()}) - 1
    assert picks > 1000 / (flood_buckets + 1) / 2, (picks, flood_buckets)


def test_recently_failed_addresses_are_picked_less():
    b = book()
    b.add("198.51.100.1", 1, "203.0.113.9", NOW, NOW)
    b.add("192.0.2.1", 1, "203.0.113.9", NOW, NOW)
    for _ in range(4):
        b.attempt("198.51.100.1", 1, NOW)
    picks = [b.select(NOW).host for _ in range(300)]
    assert picks.count("192.0.2.1") > 250


def test_get_addr_samples_good_entries_only():
    b = book()
    for i in range(1000):
        b.add(flood_address(i), 1, f"{1 + i % 200}.9.9.9", NOW, NOW)
    for i in range(10):
        b.add(f"192.0.2.{i + 1}", 1, "198.51.100.1", NOW - 40 * 86400, NOW)  # stale
    sample = b.get_addr(NOW)
    stale = sum(e.host.startswith("192.0.2.") for e in b.entries.values())
    assert stale > 0
    assert len(sample) == (len(b) - stale) * 23 // 100
    assert not any(e.host.startswith("192.0.2.") for e in sample)
    assert len({e.key for e in sample}) == len(sample)
    small = book()
    small.add("192.0.2.1", 1, "198.51.100.1", NOW, NOW)
    assert [e.host for e in small.get_addr(NOW)] == ["192.0.2.1"]


# ----------------------------------------------------------- rate limit
def test_rate_limiter_token_bucket():
    lim = AddrRateLimiter(0.0)
    assert lim.take(1000, 0.0) == 1 and lim.dropped == 999
    assert lim.take(10, 5.0) == 0  # 0.5 token
    assert lim.take(10, 10.0) == 1  # 0.1 per second
    lim.grant(ADDR_BURST)
    assert lim.take(2000, 10.0) == 1000
    assert lim.take(5, 10**6) == 5  # refilled, but only up to the burst
    assert lim.tokens == ADDR_BURST - 5
    assert lim.processed == 1007 and lim.dropped == 999 + 10 + 9 + 1000


# ------------------------------------------------- the scenario
def test_flood_of_20000_addresses_does_not_eclipse_the_node():
    """Issue 14: after 20,000 addresses from one peer (even one we asked,
    whose first 1000 are allowed), an honest address learned from another
    source is in the book and gets dialed, and the outbound slots go to
    distinct network groups."""
    seed = SEED
    b = book(seed)
    flooder = "203.0.113.9"
    limiter = AddrRateLimiter(0.0)
    limiter.grant(ADDR_BURST)  # we sent it getaddr
    now = NOW
    for msg in range(20):
        batch = [(flood_address(msg * 1000 + i), 18444, now + 3600) for i in range(1000)]
        for host, port, seen in batch[:limiter.take(len(batch), float(msg))]:
            b.add(host, port, flooder, seen, now)
    assert limiter.processed <= 1002 and limiter.dropped >= 18_998
    assert len(b) <= MAX_PER_SOURCE_GROUP
    # Honest nodes, each in its own /16, told about by two honest peers.
    honest = [f"{150 + i}.20.0.1" for i in range(12)]
    for i, host in enumerate(honest):
        assert b.add(host, 18444, f"198.{51 + i % 2}.100.20", now - 60, now), host
    assert b.get(honest[0], 18444) is not None  # learned after the flood

    # Dial like the node: 8 outbound slots, never two in one group unless
    # nothing else; flood addresses do not answer, honest ones do.
    outbound: list[str] = []
    dialed: list[str] = []
    for step in range(400):
        if len(outbound) == 8:
            break
        now += 1
        groups = {b.get(h, 18444).group for h in outbound}
        pick = b.select(now, usable=lambda e, t=now: e.host not in outbound
                        and t - e.last_try >= 60, avoid_groups=groups)
        assert pick is not None, f"seed {seed} step {step}: nothing to dial"
        dialed.append(pick.host)
        if pick.host in honest:
            b.good(pick.host, 18444, now)
            outbound.append(pick.host)
        else:
            b.attempt(pick.host, 18444, now)
    assert len(outbound) == 8, f"seed {seed}: only {outbound} after {len(dialed)} dials"
    assert len({b.get(h, 18444).group for h in outbound}) == 8
    assert set(outbound) <= set(honest) and outbound[0] in dialed
    assert b.counts()["tried"] == 8


# ----------------------------------------------------------- persistence
def test_the_book_survives_a_restart(tmp_path):
    with Database(tmp_path / "db") as db:
        store = AddrStore(db)
        b = store.load(NOW, random.Random(SEED))
        for i in range(3000):
            b.add(flood_address(i), 18444, f"{1 + i % 50}.7.7.7", NOW - i, NOW)
        b.add("192.0.2.1", 18444, "198.51.100.1", NOW, NOW)
        b.good("192.0.2.1", 18444, NOW)
        b.attempt(flood_address(0), 18444, NOW)
        assert store.save(b) == len(b) + b.stats["evicted"]  # rows put and deleted
        assert store.save(b) == 0  # nothing changed since
        before = {k: (e.last_seen, e.tried, e.attempts, e.bucket, e.pos, e.source_group)
                  for k, e in b.entries.items()}
    with Database(tmp_path / "db") as db:
        again = AddrStore(db).load(NOW, random.Random(SEED))
        after = {k: (e.last_seen, e.tried, e.attempts, e.bucket, e.pos, e.source_group)
                 for k, e in again.entries.items()}
        assert after == before and again.secret == b.secret
        assert again.get("192.0.2.1", 18444).tried
        assert again.counts() == b.counts()


def test_loading_drops_junk_and_keeps_old_rows(tmp_path):
    with Database(tmp_path / "db") as db:
        with db.write_batch() as batch:
            batch.put(b"n198.51.100.7:18444", json.dumps({"seen": NOW - 10}).encode())  # old format
            batch.put(b"nseed.example.com:18444", json.dumps({"seen": NOW}).encode())
            batch.put(b"n198.51.100.8:99999", b"{}")
            batch.put(b"n198.51.100.9:1", b"not json")
        b = AddrStore(db).load(NOW)
        assert list(b.entries) == [("198.51.100.7", 18444)]
        assert b.get("198.51.100.7", 18444).last_seen == NOW - 10
        keys = [k for k, _ in db.iterate(b"n")]
        assert sorted(keys) == [b"n\x00key", b"n198.51.100.7:18444"]
        assert len(db.get(b"n\x00key")) == 32


def test_stored_book_stays_bounded(tmp_path):
    """Rows beyond what the buckets hold (e.g. written by an older version
    with a 10,000-entry flat book, all from one source) are dropped."""
    with Database(tmp_path / "db") as db:
        with db.write_batch() as batch:
            for i in range(2000):
                batch.put(f"n{flood_address(i)}:18444".encode(),
                          json.dumps({"seen": NOW, "src": "4:203.0"}).encode())
        b = AddrStore(db).load(NOW)
        assert len(b) <= MAX_PER_SOURCE_GROUP
        assert sum(1 for _ in db.iterate(b"n")) == len(b) + 1

"""The peer manager's use of the address manager: manual and bootstrap
peers, rate-limited ``addr`` handling, outbound picks across network groups,
dial backoff and the book in a real LevelDB across restarts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from o2ocli.p2p.addrman import ADDR_BURST, MAX_PER_SOURCE_GROUP, AddrRateLimiter
from o2ocli.p2p.manager import PeerManager
from o2ocli.p2p.messages import Addr
from o2ocli.storage.db import Database


class Harness:
    """PeerManagers over one real database (a node that restarts)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db: Database | None = None
        self.manager: PeerManager | None = None

    def start(self, **kw) -> PeerManager:
        self.stop()
        self.db = Database(self.path)
        node = SimpleNamespace(
            spec=SimpleNamespace(network_magic=b"\xf0\x0d\xca\xfe", chain_id="test"),
            chain=SimpleNamespace(genesis=SimpleNamespace(hash=bytes(32))),
            db=self.db)
        self.manager = PeerManager(node, listen=None, **kw)
        return self.manager

    def stop(self) -> None:
        if self.manager is not None:
            self.manager.decode_pool.shutdown()
            self.manager = None
        if self.db is not None:
            self.db.close()
            self.db = None


@pytest.fixture
def harness(tmp_path) -> Iterator[Harness]:
    h = Harness(tmp_path / "chaindata")
    yield h
    h.stop()


def fake_peer(host: str, *, dialed: tuple[str, int] | None = None) -> SimpleNamespace:
    return SimpleNamespace(host=host, address=f"{host}:5555", addr_limiter=AddrRateLimiter(
        time.time()), dialed=dialed, inbound=dialed is None, closed=False,
        listen_address=dialed)


def flood(manager: PeerManager, peer: SimpleNamespace, messages: int = 20) -> None:
    now = int(time.time())
    for m in range(messages):
        manager._on_addr(peer, Addr(tuple(
            (f"{11 + i % 200}.{m}.{i // 200}.1", 18444, now + 3600) for i in range(1000))))


def test_manual_and_bootstrap_names_stay_out_of_the_address_manager(harness):
    m = harness.start(connect=[("localhost", 1), ("127.0.0.1", 2)],
                      bootstrap=[("seed.example.org", 3), ("198.51.100.1", 4)])
    assert {k: f.always for k, f in m.fixed.items()} == {
        ("localhost", 1): True, ("127.0.0.1", 2): True, ("seed.example.org", 3): False}
    assert list(m.addrman.entries) == [("198.51.100.1", 4)]
    assert m.addrman.get("198.51.100.1", 4).last_seen > time.time() - 60  # not aged
    assert m.add_address("203.0.113.5", 18444, manual=True)  # addpeer
    assert m.fixed[("203.0.113.5", 18444)].always
    assert ("203.0.113.5", 18444) not in m.addrman


def test_an_addr_flood_is_rate_limited_and_capped(harness):
    m = harness.start()
    inbound = fake_peer("203.0.113.9")
    flood(m, inbound)
    assert inbound.addr_limiter.processed == 1 and inbound.addr_limiter.dropped == 19_999
    assert len(m.addrman) == 1
    asked = fake_peer("198.51.100.7", dialed=("198.51.100.7", 18444))
    asked.addr_limiter.grant(ADDR_BURST)  # as on_ready does after sending getaddr
    flood(m, asked)
    assert asked.addr_limiter.processed == 1000
    assert len(m.addrman) <= 1 + MAX_PER_SOURCE_GROUP
    info = m.addrman_info()
    assert info["total"] == len(m.addrman) and info["rejected_source_cap"] > 0
    assert info["rate_limited"] == 19_999 + 19_000
    # Every stored last_seen was clamped and aged (the flood claimed the future).
    assert max(e.last_seen for e in m.addrman.entries.values()) <= time.time() - 7000


def test_the_book_survives_a_restart(harness):
    m = harness.start()
    asked = fake_peer("198.51.100.7", dialed=("198.51.100.7", 18444))
    asked.addr_limiter.grant(ADDR_BURST)
    flood(m, asked, messages=1)
    host, port = next(iter(m.addrman.entries))
    assert m.addrman.good(host, port, int(time.time()))
    m.book.save()
    before = {k: (e.tried, e.last_seen) for k, e in m.addrman.entries.items()}
    assert len(before) > 100
    m = harness.start()
    assert {k: (e.tried, e.last_seen) for k, e in m.addrman.entries.items()} == before
    assert m.addrman.counts()["tried"] == 1


def test_outbound_picks_avoid_groups_already_connected(harness):
    m = harness.start()
    now = int(time.time())

    def add_one(prefix: str) -> str:
        """The first host under ``prefix`` the book takes (placement is keyed
        per book, so a host can land on a taken slot and be dropped)."""
        for i in range(1, 50):
            host = f"{prefix}.{i}"
            if m.addrman.add(host, 18444, "100.64.0.1", now, now):
                return host
        raise AssertionError(f"no host under {prefix} was placed")

    first, second = add_one("198.51.1"), add_one("198.51.2")
    other_a, other_b = add_one("192.0.2"), add_one("203.0.113")
    m.peers = {1: fake_peer(first, dialed=(first, 18444))}
    connected = {(first, 18444)}
    # Picks are random and bucket placement is keyed per book, so one of the
    # two may be favoured: draw until both came (bounded), never another.
    wanted = {(other_a, 18444), (other_b, 18444)}
    picks: set = set()
    for _ in range(2000):
        picks.add(m.dialer.pick_outbound(connected))
        assert picks <= wanted, picks
        if picks == wanted:
            break
    assert picks == wanted
    # Those groups taken too: the same /16 is allowed (nothing else is left).
    m.peers[2] = fake_peer(other_a, dialed=(other_a, 18444))
    m.peers[3] = fake_peer(other_b, dialed=(other_b, 18444))
    connected |= wanted
    assert m.dialer.pick_outbound(connected) == (second, 18444)


def test_loopback_test_networks_still_dial(harness):
    """All nodes of a local test network listen on 127.0.0.1: one group."""
    m = harness.start()
    now = int(time.time())
    for port in (20001, 20002, 20003):
        m.addrman.add("127.0.0.1", port, "127.0.0.1", now, now)
    m.peers = {1: fake_peer("127.0.0.1", dialed=("127.0.0.1", 20001))}
    assert m.dialer.pick_outbound({("127.0.0.1", 20001)}) in {("127.0.0.1", 20002),
                                                          ("127.0.0.1", 20003)}


def test_a_failed_dial_backs_off_and_counts(harness):
    m = harness.start(bootstrap=[("198.51.100.1", 18444)])
    key = ("198.51.100.1", 18444)
    assert m.dialer.pick_outbound(set()) == key
    m.dialer.failed(key)
    assert m.addrman.get(*key).attempts == 1
    assert m.dialer.pick_outbound(set()) is None  # backing off
    m.dialer.retry_at[key] = 0.0
    assert m.dialer.pick_outbound(set()) == key
    m.ban("198.51.100.1", 60)
    assert m.dialer.pick_outbound(set()) is None  # banned hosts are not dialed


def test_a_bootstrap_name_is_dialed_only_when_the_book_offers_nothing(harness):
    m = harness.start(bootstrap=[("seed.example.org", 18444)])
    assert m.dialer.pick_outbound(set()) == ("seed.example.org", 18444)
    now = int(time.time())
    m.addrman.add("192.0.2.1", 18444, "198.51.100.1", now, now)
    assert m.dialer.pick_outbound(set()) == ("192.0.2.1", 18444)


def test_a_dial_round_that_raises_is_logged_and_the_next_one_runs(harness, monkeypatch,
                                                                   caplog):
    import asyncio

    from o2ocli.p2p import dialer as dialer_module

    m = harness.start()
    monkeypatch.setattr(dialer_module, "DIAL_ROUND_SECONDS", 0.01)
    calls: list[int] = []

    async def flaky_round() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise KeyError("a damaged book entry")

    m.dialer.round = flaky_round

    async def run() -> None:
        task = asyncio.create_task(m.dialer.loop())
        deadline = time.monotonic() + 10
        while len(calls) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert len(calls) >= 3  # the loop went on after the first round raised
    assert m.dialer.round_errors == 1
    assert "dial round failed" in caplog.text and "a damaged book entry" in caplog.text

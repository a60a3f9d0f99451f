"""Operator bans (o2ocli.p2p.bans) in a real LevelDB: kept across a restart
under the schema's PEER_BAN prefix, lifted when they expire or on unban."""

from __future__ import annotations

from o2ocli.p2p.bans import BanList
from o2ocli.storage.db import Database
from o2ocli.storage.schema import PEER_BAN

NOW = 1_800_000_000


def test_a_ban_survives_a_restart_and_expires(tmp_path):
    db = Database(tmp_path / "db")
    try:
        bans = BanList(db, default_seconds=3600, now=NOW)
        assert bans.ban("203.0.113.7", None, NOW) == NOW + 3600
        assert bans.ban("198.51.100.2", 60, NOW) == NOW + 60
        assert db.get(PEER_BAN + b"203.0.113.7") == (NOW + 3600).to_bytes(8, "big")

        again = BanList(db, default_seconds=3600, now=NOW + 120)  # a restart, 2 min later
        assert again.bans == {"203.0.113.7": NOW + 3600}  # the 60 s ban was not loaded
        assert again.banned("203.0.113.7", NOW + 120)
        assert not again.banned("192.0.2.1", NOW + 120)
        assert again.banned_list(NOW + 120) == [{"host": "203.0.113.7", "until": NOW + 3600}]

        assert not again.banned("203.0.113.7", NOW + 3600)  # expired: lifted, and deleted
        assert again.bans == {} and db.get(PEER_BAN + b"203.0.113.7") is None
    finally:
        db.close()


def test_unban_deletes_the_record(tmp_path):
    db = Database(tmp_path / "db")
    try:
        bans = BanList(db, default_seconds=3600, now=NOW)
        bans.ban("2001:db8::1", None, NOW)
        assert bans.unban("2001:db8::1") and not bans.unban("2001:db8::1")
        assert list(db.iterate(PEER_BAN)) == []
        assert BanList(db, default_seconds=3600, now=NOW).bans == {}
    finally:
        db.close()


def test_discouragement_is_listed_apart_from_bans(tmp_path):
    db = Database(tmp_path / "db")
    try:
        bans = BanList(db, default_seconds=3600, now=NOW)
        bans.discouraged.add("8.8.8.8", NOW)
        assert [d["host"] for d in bans.discouraged_list(NOW)] == ["8.8.8.8"]
        assert bans.banned_list(NOW) == [] and not bans.banned("8.8.8.8", NOW)
    finally:
        db.close()

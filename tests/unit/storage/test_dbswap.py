"""Dropping key spaces by copying the rest into a new directory: the result,
and what a crash at each stage of the swap leaves after the next open."""

from __future__ import annotations

import pytest

from o2ocli.node.chain import DERIVED_PREFIXES
from o2ocli.storage import Database, schema
from o2ocli.storage.db import DatabaseLocked
from o2ocli.storage.dbswap import MARKER, rebuild_keeping


class Crash(Exception):
    """Stands for the process dying at that point."""


def fill(path) -> dict[bytes, bytes]:
    with Database(path) as db:
        with db.write_batch() as batch:
            for i in range(300):
                batch.put(b"u" + i.to_bytes(4, "big"), b"coin%d" % i)
                batch.put(b"a" + i.to_bytes(4, "big"), b"")
                batch.put(b"b" + i.to_bytes(4, "big"), bytes(1000) + i.to_bytes(4, "big"))
            batch.put(b"!reindex", b"marker")
            batch.put(b"\x00", b"low")
            batch.put(b"\xff\xff", b"high")
        return dict(db.iterate(b""))


def kept(content: dict[bytes, bytes]) -> dict[bytes, bytes]:
    return {k: v for k, v in content.items() if k[:1] not in (b"u", b"a")}


def leftovers(path) -> list[str]:
    """Sibling directories of ``path`` (the swap's lock file stays, empty)."""
    return sorted(p.name for p in path.parent.iterdir()
                  if p.name not in (path.name, path.name + ".swap-lock"))


def test_drop_key_spaces_keeps_every_other_key_and_stays_open(tmp_path):
    path = tmp_path / "chaindata"
    before = fill(path)
    with Database(path) as db:
        db.drop_key_spaces(frozenset(b"ua"))
        assert dict(db.iterate(b"")) == kept(before)
        with db.write_batch() as batch:  # still usable
            batch.put(b"u1", b"new")
        assert db.get(b"u1") == b"new"
    assert leftovers(path) == []
    with Database(path) as db:
        assert dict(db.iterate(b"")) == {**kept(before), b"u1": b"new"}


@pytest.mark.parametrize("stage, survives", [
    ("mid-copy", "old"), ("move-old", "old"), ("move-new", "new"), ("remove-old", "new"),
])
def test_a_crash_at_any_stage_leaves_the_old_or_the_new_database(tmp_path, stage, survives):
    path = tmp_path / "chaindata"
    before = fill(path)
    db = Database(path)
    raw = db._db  # noqa: SLF001 - the swap is driven by hand here

    def items(first: int):
        for n, item in enumerate(raw.iterator(prefix=bytes([first]))):
            if stage == "mid-copy" and first == ord("b") and n == 150:
                raise Crash
            yield item

    def step(name: str) -> None:
        if name == stage:
            raise Crash

    with pytest.raises(Crash):
        rebuild_keeping(path, items, frozenset(b"ua"), close=raw.close, step=step)
    if not raw.closed:
        raw.close()  # the dead process's handle goes with it
    with Database(path) as again:
        content = dict(again.iterate(b""))
    assert content == (before if survives == "old" else kept(before))
    assert leftovers(path) == [] and not (path / MARKER).exists()


def test_directories_the_swap_did_not_make_are_left_alone(tmp_path):
    path = tmp_path / "chaindata"
    before = fill(path)
    for name in ("chaindata.old", "chaindata.swap-old"):  # an operator's backups, say
        (tmp_path / name).mkdir()
        (tmp_path / name / "CURRENT").write_text("mine")
    with Database(path) as db:
        assert dict(db.iterate(b"")) == before
        with pytest.raises(FileExistsError, match="swap-old is in the way"):
            db.drop_key_spaces(frozenset(b"ua"))
        assert dict(db.iterate(b"")) == before
    assert leftovers(path) == ["chaindata.old", "chaindata.swap-old"]
    assert (tmp_path / "chaindata.swap-old" / "CURRENT").read_text() == "mine"


def test_every_derived_key_space_is_one_prefix_byte():
    assert all(len(prefix) == 1 for prefix in DERIVED_PREFIXES)
    kept_spaces = (schema.BLOCK, schema.OWN_VOTE, schema.EVIDENCE, schema.PEER_ADDR,
                   schema.PEER_BAN, schema.REINDEX_MARKER[:1])
    assert not {p[0] for p in kept_spaces} & {p[0] for p in DERIVED_PREFIXES}


def test_an_open_during_another_process_swap_is_refused_as_locked(tmp_path):
    path = tmp_path / "chaindata"
    before = fill(path)
    db = Database(path)
    raw = db._db  # noqa: SLF001 - the swap is driven by hand here
    seen = []

    def step(name: str) -> None:
        if name == "move-new":  # PATH is gone, the copy not yet in place
            with pytest.raises(DatabaseLocked, match="being rebuilt by another process"):
                Database(path)
            seen.append(name)

    rebuild_keeping(path, lambda first: raw.iterator(prefix=bytes([first])), frozenset(b"ua"),
                    close=raw.close, step=step)
    assert seen == ["move-new"]
    with Database(path) as again:
        assert dict(again.iterate(b"")) == kept(before)

"""`o2ocli demo` end to end: three real validator processes, the whole story,
agreement on the UTXO set, clean shutdown."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_runs_the_whole_story_and_cleans_up(tmp_path):
    keep = tmp_path / "net"
    done = subprocess.run(
        [sys.executable, "-m", "o2ocli", "--json", "demo", "--keep", str(keep)],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)  # --json: one document on stdout, the story on stderr
    assert summary["nodes"] == 3
    assert len(summary["utxo_set_hash"]) == 64 and summary["height"] > 10
    story = done.stderr
    for step in ("token issue", "wallet send --amount 30 --split", "token reward BEANS",
                 "review write", "escrow open", "escrow release", "trace register",
                 "trace event", "consent grant", "chain of custody verified",
                 "granted until height", "All validators agree", "3 nodes stopped"):
        assert step in story, step
    assert "★★★★★" in story  # the review table
    # Every node process exited: each datadir's lock is free and node.json is gone
    # or points to a dead pid.
    for i in (1, 2, 3):
        datadir = keep / f"node-{i}"
        info_path = datadir / "node.json"
        if info_path.exists():
            pid = json.loads(info_path.read_text()).get("pid")
            assert pid is None or not _alive(pid)
        # The chain database was closed cleanly: it opens (no lock held) and its
        # tip is at least the height the demo reported.
        from o2ocli.storage import schema
        from o2ocli.storage.db import Database

        db = Database(datadir / "chaindata")
        try:
            tip = db.get(schema.META_TIP)
            assert tip is not None
            entry = db.get(schema.index_key(tip))
            assert entry is not None
        finally:
            db.close()


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.mark.slow
def test_demo_without_keep_removes_its_files(tmp_path):
    done = subprocess.run([sys.executable, "-m", "o2ocli", "--json", "demo"],
                          capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL, env={**__import__("os").environ,
                                                         "TMPDIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["nodes"] == 3
    assert not any(p.name.startswith("o2ocli-demo-") for p in tmp_path.iterdir())

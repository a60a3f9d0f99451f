"""LevelDB's compaction thread runs at a lower CPU priority than block connect
(storage/db.lower_compaction_priority, called after every flush of the UTXO
cache).  Each case runs in a child process, so niceness set here never
reaches the test runner's threads."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(),
                                reason="thread niceness is read from Linux's /proc")

PRELUDE = textwrap.dedent("""
    import os, sys, threading, time
    from o2ocli.storage import db as dbmod
    from o2ocli.storage.coincache import CachedDatabase
    from o2ocli.storage.db import Database

    def nice(tid):
        return os.getpriority(os.PRIO_PROCESS, tid)

    def native_threads():
        tids = {int(t) for t in os.listdir("/proc/self/task")}
        return tids - {t.native_id for t in threading.enumerate()}

    database = Database(sys.argv[1], write_buffer_size=64 * 1024)
    cache = CachedDatabase(database, 1 << 30)
    # Enough writes through the cache's flush for LevelDB to start compacting.
    deadline = time.monotonic() + 60
    n = 0
    while not native_threads():
        assert time.monotonic() < deadline, "LevelDB never started its background thread"
        with cache.cached_batch() as batch:
            for i in range(2000):
                batch.put(b"u" + os.urandom(36), os.urandom(40))
        cache.flush()
        n += 1
    cache.flush()  # the flush after the thread exists lowers it
    idle = threading.Event()
    helper = threading.Thread(target=idle.wait, daemon=True)  # a failed check exits at once
    helper.start()
""")


def run(tmp_path: Path, body: str) -> None:
    script = PRELUDE + textwrap.dedent(body) + "\nidle.set()\nhelper.join()\nprint('ok')\n"
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "db")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


def test_a_flush_lowers_leveldbs_thread_and_no_python_thread(tmp_path):
    run(tmp_path, """
        (compactor,) = native_threads()
        mine = nice(threading.get_native_id())
        assert nice(compactor) == mine + dbmod.COMPACTION_NICE, (nice(compactor), mine)
        assert nice(helper.native_id) == mine
        assert dbmod.lower_compaction_priority() == []  # already lowered, nothing else
        assert nice(compactor) == mine + dbmod.COMPACTION_NICE
    """)


def test_nothing_changes_while_a_python_thread_is_starting(tmp_path):
    run(tmp_path, """
        (compactor,) = native_threads()
        dbmod._lowered.clear()
        os.setpriority(os.PRIO_PROCESS, compactor, 5)
        starting = threading.Thread(target=lambda: None)
        threading._limbo[starting] = starting  # what Thread.start() does first
        try:
            assert dbmod.lower_compaction_priority() == []
            assert nice(compactor) == 5
        finally:
            del threading._limbo[starting]
        assert dbmod.lower_compaction_priority() == [compactor]
        assert nice(compactor) == nice(threading.get_native_id()) + dbmod.COMPACTION_NICE
    """)


def test_relative_to_a_node_started_nicer(tmp_path):
    """A node run under ``nice -n 12`` gets its compaction thread at 19 (the
    most), not raised to 10."""
    run(tmp_path, """
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 12)
        (compactor,) = native_threads()
        dbmod._lowered.clear()
        assert dbmod.lower_compaction_priority() == [compactor]
        assert nice(compactor) == 19, nice(compactor)
    """)


def test_a_python_thread_lowered_by_mistake_is_put_back(tmp_path):
    run(tmp_path, """
        mine = nice(threading.get_native_id())
        os.setpriority(os.PRIO_PROCESS, helper.native_id, dbmod.COMPACTION_NICE)
        dbmod._lowered.add(helper.native_id)  # as if it had been taken for LevelDB's
        dbmod.lower_compaction_priority()
        assert helper.native_id not in dbmod._lowered
        if os.geteuid() == 0:  # only a privileged process may lower a niceness
            assert nice(helper.native_id) == mine, nice(helper.native_id)
    """)

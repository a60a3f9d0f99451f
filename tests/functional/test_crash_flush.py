"""Crash safety of the UTXO cache's background flush: a process connecting
blocks with a tiny cache (a background flush after nearly every block) is
SIGKILLed while a flush is running.  Its writer announces each flush (with
the tip it writes) and then waits a while before writing: in "held" rounds
the flush the kill follows waits long enough that the kill lands before its
batch is written; otherwise every wait is short and random, and so is the
kill's delay, so it lands before, during or after the write.

After every kill the database's tip (read before anything reconnects) is the
one of the last flush that was announced or of the one before it, never
anything else; and the chainstate reopened on it reconnects the stored blocks
to exactly the LevelDB, UTXO commitment and full-scan UTXO hash of a
reference chainstate that connected the same blocks without a cache."""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from o2ocli.consensus.params import ConsensusParams
from o2ocli.storage import ChainState, Database, schema
from o2ocli.storage.utxocommit import verify_utxo_set
from o2ocli.testing.chaingen import ChainGenerator

SEED = int(os.environ.get("O2O_TEST_SEED", str(random.SystemRandom().randrange(1 << 30))))
ROUNDS = 6
BLOCKS = 30
HELD = 5.0
"""Seconds a held flush waits before it writes (the kill comes first)."""

CHILD = r"""
import random, sys, time
from o2ocli.consensus.params import ConsensusParams
from o2ocli.core.block import Block
from o2ocli.storage import ChainState, Database, schema
from o2ocli.storage import chainstate
from o2ocli.storage.coincache import CachedDatabase

path, blob_path, dbcache, hold_at, seed = sys.argv[1:6]
rng = random.Random(int(seed))
flushes = 0


def say(line):
    sys.stdout.write(line + "\n")  # one write: the writer thread says things too
    sys.stdout.flush()


class Announcing(CachedDatabase):
    def _before_write(self):
        global flushes
        flushes += 1
        tip = self._flushing.spaces[schema.META_TIP[0]][schema.META_TIP]
        say("flushing " + tip.hex())
        time.sleep(HELD if flushes == int(hold_at) else rng.uniform(0.0, 0.03))


chainstate.CachedDatabase = Announcing
blob = open(blob_path, "rb").read()
blocks, pos = [], 0
while pos < len(blob):
    n = int.from_bytes(blob[pos:pos + 4], "big")
    blocks.append(Block.from_bytes(blob[pos + 4:pos + 4 + n]))
    pos += 4 + n
state = ChainState(Database(path), ConsensusParams("o2o-test"), blocks[0], dbcache=int(dbcache))
say("open %d" % state.height)
for block in blocks[state.height + 1:]:
    state.add_block(block)
    say("connected %d" % state.height)
state.flush()
say("done")
""".replace("HELD", repr(HELD))


def dump(db: Database) -> dict[bytes, bytes]:
    return dict(db.iterate(b""))


def read_line(proc: subprocess.Popen, deadline: float) -> str | None:
    """The child's next stdout line, or None at EOF; fails past ``deadline``.

    The pipe is unbuffered (``bufsize=0``: ``readline`` reads a byte at a
    time), so no line waits in a Python buffer while ``select`` waits for the
    next one: with a buffer, a line read along with the one before it came
    out only after the child's next write, i.e. after a held flush had been
    written, and the kill landed late."""
    ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
    assert ready, f"child said nothing before the deadline (seed {SEED})"
    line = proc.stdout.readline()
    return line.decode().strip() if line else None


def test_sigkill_during_a_background_flush_leaves_the_old_or_new_flushed_tip(tmp_path: Path):
    print(f"seed {SEED} (set O2O_TEST_SEED to repeat)")
    rng = random.Random(SEED)
    gen = ChainGenerator("o2o-test", n_keys=20, coins_per_key=4, fee=1)
    chain = [gen.genesis] + [gen.next_block(rng.randint(5, 25), claim_fees=False)
                             for _ in range(BLOCKS)]
    heights = {block.hash: height for height, block in enumerate(chain)}
    blob = tmp_path / "chain.bin"
    blob.write_bytes(b"".join(len(b.to_bytes()).to_bytes(4, "big") + b.to_bytes()
                              for b in chain))
    params = ConsensusParams("o2o-test")
    reference: dict[int, tuple[dict[bytes, bytes], bytes]] = {}
    with Database(tmp_path / "ref") as ref_db:
        ref = ChainState(ref_db, params, gen.genesis)
        reference[0] = (dump(ref_db), ref.utxo_set_hash())
        for block in chain[1:]:
            ref.add_block(block)
            reference[ref.height] = (dump(ref_db), ref.utxo_set_hash())
    path = tmp_path / "db"
    disk_tip = 0  # the flushed tip the next child starts from
    mid_flush_kills = 0
    for round_ in range(ROUNDS + 1):
        last = round_ == ROUNDS
        held = not last and round_ % 2 == 0
        wanted = rng.randint(1, 3)  # kill at the wanted-th flush announced
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), str(blob), "20000",
             str(wanted if held else 0), str(rng.randrange(1 << 30))],
            stdout=subprocess.PIPE,
            bufsize=0,  # unbuffered: select() sees every line not yet read
        )
        lines: list[str] = []
        try:
            deadline = time.monotonic() + 120
            while (line := read_line(proc, deadline)) is not None:
                lines.append(line)
                if not last and sum(x.startswith("flushing") for x in lines) == wanted:
                    if not held:
                        time.sleep(rng.uniform(0.0, 0.03))
                    proc.send_signal(signal.SIGKILL)
                    break
            proc.wait(timeout=60)
            lines += [x.decode().strip() for x in proc.stdout.read().splitlines()]
        finally:
            proc.kill()
            proc.wait(timeout=60)
        assert lines and lines[0].startswith("open"), (SEED, round_, lines[:1])
        flushed = [disk_tip] + [heights[bytes.fromhex(x.split()[1])]
                                for x in lines if x.startswith("flushing")]
        connected = max([int(x.split()[1]) for x in lines if x.startswith("connected")],
                        default=0)
        with Database(path) as db:
            tip = heights[db.get(schema.META_TIP)]  # before anything reconnects
            finished = "done" in lines  # the last round; or the chain ended first
            assert finished or not last, (SEED, lines[-3:])
            if finished:
                assert tip == BLOCKS, (SEED, round_, tip)
            elif held:  # killed while the writer waited: the flush before it is the tip
                assert tip == flushed[-2], (SEED, round_, tip, flushed)
            else:
                assert tip in flushed[-2:], (SEED, round_, tip, flushed)
            mid_flush_kills += not finished and tip == flushed[-2]
            state = ChainState(db, params, gen.genesis)  # reconnects the stored blocks
            print(f"round {round_}: flushes announced at {flushed[1:]}, "
                  f"{'finished' if finished else 'killed'} with the disk at {tip}, "
                  f"reopened at {state.height} (child had {connected})")
            assert state.height >= connected, (SEED, round_, state.height, connected)
            assert dump(db) == reference[state.height][0], (SEED, round_, state.height)
            assert state.utxo_set_hash() == reference[state.height][1], (SEED, round_)
            check = verify_utxo_set(db)
            assert check.ok and check.height == state.height, (SEED, round_, check)
            disk_tip = state.height
    assert mid_flush_kills >= ROUNDS // 2, (SEED, mid_flush_kills)

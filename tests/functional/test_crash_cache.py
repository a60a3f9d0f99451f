"""Crash safety with the UTXO cache on: a process connecting blocks into a
chainstate with a small cache (a flush every few blocks) is SIGKILLed at
seeded random moments.  After every kill the reopened chainstate has every
block the process had reported connected, and its LevelDB is byte for byte
the one of a reference chainstate that connected the same blocks without a
cache (same tip, same UTXO set, same indexes)."""

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
from o2ocli.storage import ChainState, Database
from o2ocli.testing.chaingen import ChainGenerator

SEED = int(os.environ.get("O2O_TEST_SEED", str(random.SystemRandom().randrange(1 << 30))))
KILLS = 8
BLOCKS = 60

CHILD = r"""
import sys
from o2ocli.consensus.params import ConsensusParams
from o2ocli.core.block import Block
from o2ocli.storage import ChainState, Database

blob = open(sys.argv[2], "rb").read()
blocks, pos = [], 0
while pos < len(blob):
    n = int.from_bytes(blob[pos:pos + 4], "big")
    blocks.append(Block.from_bytes(blob[pos + 4:pos + 4 + n]))
    pos += 4 + n
state = ChainState(Database(sys.argv[1]), ConsensusParams("o2o-test"), blocks[0],
                   dbcache=int(sys.argv[3]))
print("open", state.height, flush=True)
for block in blocks[state.height + 1:]:
    state.add_block(block)
    print("connected", state.height, flush=True)
state.flush()
print("done", flush=True)
"""


def dump(db: Database) -> dict[bytes, bytes]:
    return dict(db.iterate(b""))


def read_line(proc: subprocess.Popen, deadline: float) -> str | None:
    """The child's next stdout line, or None at EOF; fails past ``deadline``.

    The pipe is unbuffered (``bufsize=0``: ``readline`` reads a byte at a
    time), so no line waits in a Python buffer while ``select`` waits for the
    next one: with a buffer, a line read along with the one before it came
    out only after the child's next write, and the kill it called for landed
    that much later."""
    ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
    assert ready, f"child said nothing before the deadline (seed {SEED})"
    line = proc.stdout.readline()
    return line.decode().strip() if line else None


def test_sigkill_with_the_utxo_cache_on_leaves_the_reference_chainstate(tmp_path: Path):
    print(f"seed {SEED} (set O2O_TEST_SEED to repeat)")
    rng = random.Random(SEED)
    gen = ChainGenerator("o2o-test", n_keys=20, coins_per_key=4, fee=1)
    chain = [gen.genesis] + [gen.next_block(rng.randint(5, 25), claim_fees=False)
                             for _ in range(BLOCKS)]
    blob = tmp_path / "chain.bin"
    blob.write_bytes(b"".join(len(b.to_bytes()).to_bytes(4, "big") + b.to_bytes()
                              for b in chain))
    params = ConsensusParams("o2o-test")
    # Reference LevelDB dumps after each height, without a cache.
    reference: dict[int, dict[bytes, bytes]] = {}
    with Database(tmp_path / "ref") as ref_db:
        ref = ChainState(ref_db, params, gen.genesis)
        reference[0] = dump(ref_db)
        for block in chain[1:]:
            ref.add_block(block)
            reference[ref.height] = dump(ref_db)
    path = tmp_path / "db"
    reported = 0
    kills = 0
    for round_ in range(KILLS + 1):
        dbcache = rng.choice((20_000, 1_000_000))  # a flush every block or two, or rarely
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), str(blob), str(dbcache)],
            stdout=subprocess.PIPE,
            bufsize=0,  # unbuffered: select() sees every line not yet read
        )
        try:
            deadline = time.monotonic() + 120
            line = read_line(proc, deadline)
            assert line is not None and line.startswith("open"), (SEED, line)
            assert int(line.split()[1]) >= reported, (SEED, round_, line)
            reported = int(line.split()[1])
            # Kill once a random height is reported, a random moment later
            # (mid-block, mid-flush or between them).
            target = (rng.randint(reported + 1, BLOCKS) if round_ < KILLS and reported < BLOCKS
                      else BLOCKS + 1)
            finished = False
            while reported < target:
                line = read_line(proc, deadline)
                if line is None or line == "done":
                    finished = True
                    break
                reported = int(line.split()[1])
            if not finished:
                time.sleep(rng.choice((0.0, rng.uniform(0.0, 0.02))))
                proc.send_signal(signal.SIGKILL)
                kills += 1
            else:
                while (line := read_line(proc, deadline)) not in (None, "done"):
                    reported = int(line.split()[1])
        finally:
            proc.kill()
            proc.wait(timeout=60)
        # Reopen without a cache: it replays the stored blocks above the flushed tip.
        with Database(path) as db:
            state = ChainState(db, params, gen.genesis)
            print(f"round {round_}: reported {reported}, reopened at {state.height}")
            assert state.height >= reported, (SEED, round_, state.height, reported)
            assert dump(db) == reference[state.height], (SEED, round_, state.height)
    assert kills > 0, SEED
    with Database(path) as db:
        assert ChainState(db, params, gen.genesis).height == BLOCKS, SEED

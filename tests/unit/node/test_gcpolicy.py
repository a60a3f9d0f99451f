"""The node's collector policy (o2ocli.node.gcpolicy), each case in a child
process: tune_gc changes the interpreter's collector for good."""

from __future__ import annotations

import subprocess
import sys
import textwrap

CONNECT_TWO_BLOCKS = """
import gc, sys, tempfile
from o2ocli.consensus.params import ConsensusParams
from o2ocli.core.block import Block
from o2ocli.node.gcpolicy import tune_gc
from o2ocli.storage.chainstate import ChainState
from o2ocli.storage.db import Database
from o2ocli.testing.chaingen import ChainGenerator, make_block, p2a

gen = ChainGenerator("gc-policy-test", n_keys=100, coins_per_key=20, fee=1)
encoded = []
for _ in range(2):
    body = [gen.payment(1, 4)[0] for _ in range(2000)]
    block = make_block(gen.tip, body, fees=gen.fee * len(body), fee_lock=p2a(gen.miner))
    for tx in block.txs:
        gen._credit(tx)
    gen.tip = block.header
    encoded.append(block.to_bytes())
with tempfile.TemporaryDirectory() as tmp:
    db = Database(tmp + "/db")
    state = ChainState(db, ConsensusParams("gc-policy-test"), gen.genesis, dbcache=64 << 20)
    tune_gc()
    young = []
    gc.callbacks.append(lambda phase, info: phase == "start" and young.append(info["generation"]))
    for raw in encoded:  # decoded here, as a block that arrives over P2P
        state.add_block(Block.from_bytes(raw))
    assert state.height == 2
    print(len(young))
    state.cache.close()
"""

CYCLES = """
import gc, weakref
from o2ocli.node.gcpolicy import GEN0_THRESHOLD, tune_gc

tune_gc()
class Node:
    pass
freed = []
first = Node()
first.self = first
weakref.finalize(first, freed.append, True)
del first
# More cyclic garbage than the young threshold: the collector must run by itself.
for _ in range(GEN0_THRESHOLD + 1000):
    node = Node()
    node.self = node
    if freed:
        break
del node
print("collected" if freed else "leaked", gc.get_threshold()[0])
"""


def run_child(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_connecting_big_blocks_sets_off_no_collection() -> None:
    # Two decoded blocks of 2,000 payments each (about 60,000 live objects a
    # block): at the old threshold of 50,000 each set off a young collection
    # that found nothing.
    assert run_child(CONNECT_TWO_BLOCKS) == "0"


def test_cyclic_garbage_is_still_collected() -> None:
    out = run_child(CYCLES)
    assert out.startswith("collected"), out
    assert int(out.split()[1]) > 700  # the tuned threshold, not CPython's default

#!/usr/bin/env python3
"""Benchmark: the first phase of ``node reindex``, deleting the derived data.

Connects a generated chain (``--blocks`` blocks of ``--txs`` payments of one
input and ``--outputs`` outputs, the shape of issue 20's scale run) into a
chainstate, then, on two identical copies of that database, in the same run:

* **old**: every key of the derived key spaces deleted one by one, 50,000 per
  synced write batch (what ``node reindex`` did before);
* **new**: :meth:`Database.drop_key_spaces`: the kept keys (block bodies…)
  are copied into a fresh LevelDB that replaces the old directory.

Both must leave the same keys.  Prints the number of derived keys, the kept
bytes, the seconds of each method and their ratio.

    python benchmarks/reindex.py                 # 100 blocks x 400 txs, 1-in 4-out
    python benchmarks/reindex.py --blocks 20     # quicker
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from o2ocli.consensus.params import ConsensusParams
from o2ocli.node.chain import DERIVED_PREFIXES
from o2ocli.storage import ChainState, Database
from o2ocli.testing.chaingen import ChainGenerator, make_block, p2a

OLD_BATCH_KEYS = 50_000


def delete_key_by_key(db: Database) -> None:
    """The old reindex delete phase (``_delete_derived`` before the swap)."""
    for prefix in DERIVED_PREFIXES:
        keys: list[bytes] = []
        for key in db.iterate_keys(prefix):
            keys.append(key)
            if len(keys) >= OLD_BATCH_KEYS:
                with db.write_batch() as batch:
                    for old in keys:
                        batch.delete(old)
                keys.clear()
        if keys:
            with db.write_batch() as batch:
                for old in keys:
                    batch.delete(old)


def drop_by_swap(db: Database) -> None:
    """The new one (:func:`o2ocli.node.chain._delete_derived`)."""
    db.drop_key_spaces(frozenset(prefix[0] for prefix in DERIVED_PREFIXES))


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=100)
    ap.add_argument("--txs", type=int, default=400)
    ap.add_argument("--outputs", type=int, default=4)
    args = ap.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="o2o-bench-reindex-"))
    try:
        gen = ChainGenerator("o2o-bench", n_keys=200, coins_per_key=10)
        params = ConsensusParams(gen.chain_id, max_block_txs=100_000, max_block_size=64_000_000)
        pristine = root / "pristine"
        with Database(pristine) as db:
            state = ChainState(db, params, gen.genesis)
            for _ in range(args.blocks):
                txs = [gen.payment(1, args.outputs)[0] for _ in range(args.txs)]
                block = make_block(gen.tip, txs, fees=gen.fee * len(txs),
                                   fee_lock=p2a(gen.miner))
                for tx in block.txs:
                    gen._credit(tx)  # noqa: SLF001 - the generator's own bookkeeping
                gen.tip = block.header
                state.add_block(block)
            derived = sum(1 for p in DERIVED_PREFIXES for _ in db.iterate_keys(p))
            total = sum(1 for _ in db.iterate_keys(b""))
        print(f"chain: {args.blocks} blocks x {args.txs} txs (1-in {args.outputs}-out); "
              f"{total:,} keys, "
              f"{derived:,} of them derived; database {dir_bytes(pristine) / 1e6:.0f} MB",
              flush=True)
        results: dict[str, float] = {}
        left: dict[str, dict[bytes, bytes]] = {}
        for name, method in (("old key-by-key", delete_key_by_key), ("new swap", drop_by_swap)):
            path = root / name.replace(" ", "-")
            shutil.copytree(pristine, path)
            with Database(path) as db:
                start = time.perf_counter()
                method(db)
                results[name] = time.perf_counter() - start
                left[name] = dict(db.iterate(b""))
            print(f"{name:16s} {results[name]:7.2f} s  ({len(left[name]):,} keys kept, "
                  f"{sum(len(k) + len(v) for k, v in left[name].items()) / 1e6:.0f} MB)",
                  flush=True)
            shutil.rmtree(path)
        assert left["old key-by-key"] == left["new swap"], "the two methods kept different keys"
        ratio = results["old key-by-key"] / results["new swap"]
        print(f"ratio old/new: {ratio:.1f}x ({derived / results['new swap']:,.0f} derived "
              f"keys/s dropped vs {derived / results['old key-by-key']:,.0f} key by key)")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""Benchmark: which plyvel (LevelDB) options matter for the chainstate.

Builds, for each option set, a LevelDB of ``--keys`` UTXO-shaped entries
(``u`` ‖ txid ‖ index → a 40-byte coin) written in batches of ``--batch``
(as UTXO cache flushes write them), then times random point reads of
present keys (spending an old coin) and of absent keys (a lookup that finds
nothing, e.g. a coin already spent), and the writes themselves.

Option sets: plyvel's defaults, each tuned option alone, all but one, and
all of them (:func:`o2ocli.storage.coincache.leveldb_options`).

    python benchmarks/leveldb_options.py                # 1 M keys
    python benchmarks/leveldb_options.py --keys 200000  # quicker
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time

from o2ocli.storage.coincache import DEFAULT_DBCACHE_MB, leveldb_options
from o2ocli.storage.db import Database


def run(options: dict, keys: int, batch: int, reads: int, seed: int) -> tuple[float, ...]:
    rng = random.Random(seed)
    tmp = tempfile.mkdtemp(prefix="o2o-ldb-")
    try:
        with Database(tmp, **options) as db:
            written = []
            start = time.perf_counter()
            for first in range(0, keys, batch):
                with db.write_batch() as wb:
                    for _ in range(min(batch, keys - first)):
                        key = b"u" + rng.randbytes(32) + b"\0\0\0\1"
                        wb.put(key, rng.randbytes(40))
                        written.append(key)
            write_us = (time.perf_counter() - start) / keys * 1e6
            sample = rng.sample(written, min(reads, len(written)))
            get = db.get
            start = time.perf_counter()
            for key in sample:
                get(key)
            present_us = (time.perf_counter() - start) / len(sample) * 1e6
            absent = [b"u" + rng.randbytes(32) + b"\0\0\0\1" for _ in range(len(sample))]
            start = time.perf_counter()
            for key in absent:
                get(key)
            absent_us = (time.perf_counter() - start) / len(absent) * 1e6
            return write_us, present_us, absent_us
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=100_000, help="keys per write batch")
    parser.add_argument("--reads", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    tuned = leveldb_options(DEFAULT_DBCACHE_MB)
    sets = [("plyvel defaults", {})]
    sets += [(f"only {name}={value}", {name: value}) for name, value in tuned.items()]
    sets += [(f"all but {name}", {n: v for n, v in tuned.items() if n != name})
             for name in tuned]
    sets += [("all tuned", tuned)]
    print(f"{args.keys:,} keys in batches of {args.batch:,}; {args.reads:,} random reads")
    print(f"{'options':40s} {'write µs/key':>12} {'read hit µs':>12} {'read miss µs':>12}")
    for label, options in sets:
        write_us, present_us, absent_us = run(options, args.keys, args.batch, args.reads,
                                              args.seed)
        print(f"{label:40s} {write_us:12.2f} {present_us:12.2f} {absent_us:12.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

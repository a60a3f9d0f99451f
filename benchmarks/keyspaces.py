#!/usr/bin/env python3
"""Benchmark: what the chainstate writes to LevelDB, per key space and per tx.

Connects ``--blocks`` generated blocks of ``--txs`` payments (the
``connect.py`` chain: alternating 1-in/2-out and 2-in/2-out, coins spent
soon after they are made) into a fresh chainstate with the node's UTXO cache
and LevelDB options, flushes, and prints for every key space (the first
byte of the key, named after ``storage/schema.py``) its keys, key + value
bytes, bytes per transaction and share of the total.  LevelDB rewrites
every byte at each level it is compacted through, so these shares are the
shares of compaction work (``benchmarks/scale.py`` shows that work as the
"other threads" CPU).

    python benchmarks/keyspaces.py                  # 30 blocks x 2,000 payments
    python benchmarks/keyspaces.py --blocks 5 --txs 200
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections import Counter

from connect import generate

from o2ocli.consensus.params import ConsensusParams
from o2ocli.crypto.batch import ProcessVerifier
from o2ocli.storage import ChainState, Database
from o2ocli.storage import schema as k
from o2ocli.storage.coincache import DEFAULT_DBCACHE_MB, leveldb_options


def space_names() -> dict[bytes, str]:
    """First key byte → the schema constant's name (one-byte prefixes)."""
    names = {}
    for name, value in vars(k).items():
        if name.isupper() and isinstance(value, bytes) and len(value) == 1:
            names.setdefault(value, name)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=30)
    parser.add_argument("--txs", type=int, default=2000, help="payments per block")
    args = parser.parse_args(argv)
    gen, chain = generate(args.blocks, args.txs)
    n_txs = sum(len(block.txs) for block in chain)
    params = ConsensusParams(gen.chain_id, max_block_txs=100_000, max_block_size=64_000_000)
    tmp = tempfile.mkdtemp(prefix="o2o-keyspaces-")
    verifier = ProcessVerifier()
    try:
        with Database(tmp, **leveldb_options(DEFAULT_DBCACHE_MB)) as db:
            state = ChainState(db, params, gen.genesis, verifier=verifier,
                               dbcache=DEFAULT_DBCACHE_MB * (3 << 20) // 4)
            for block in chain:
                state.add_block(block)
            state.flush()
            keys: Counter[bytes] = Counter()
            size: Counter[bytes] = Counter()
            for key, value in db.iterate(b""):
                keys[key[:1]] += 1
                size[key[:1]] += len(key) + len(value)
    finally:
        verifier.close()
        shutil.rmtree(tmp, ignore_errors=True)
    names = space_names()
    total = sum(size.values())
    print(f"{len(chain)} blocks, {n_txs:,} txs: {total / 1e6:,.1f} MB of keys and values, "
          f"{total / n_txs:,.0f} B per tx")
    print(f"{'space':>14} {'prefix':>6} {'keys':>9} {'bytes':>12} {'B/tx':>6} {'share':>6}")
    for prefix, nbytes in size.most_common():
        print(f"{names.get(prefix, '?'):>14} {prefix.decode('latin-1'):>6} {keys[prefix]:9,d} "
              f"{nbytes:12,d} {nbytes / n_txs:6.0f} {100 * nbytes / total:5.0f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Benchmark: connect a generated chain into a fresh chainstate.

Generates ``--blocks`` blocks of ``--txs`` signed payments each (alternating
1-in/2-out and 2-in/2-out), then times connecting them into a fresh LevelDB,
once with the single-core verifier and once with signature verification
spread over threads.  In the same run it measures the raw coincurve verify
rate (``coincurve.PublicKey(pk).verify(der, digest, hasher=None)`` over the
chain's own signatures) and prints our signatures/s as a ratio of it.

    python benchmarks/connect.py                 # 200 blocks x 100 txs
    python benchmarks/connect.py --blocks 50     # quicker
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time

import coincurve

from o2ocli.consensus.params import ConsensusParams
from o2ocli.crypto.batch import ThreadedVerifier
from o2ocli.crypto.der import der_encode_signature
from o2ocli.storage import ChainState, Database
from o2ocli.testing.chaingen import ChainGenerator


def generate(blocks: int, txs: int):
    gen = ChainGenerator("o2o-bench", n_keys=200, coins_per_key=10)
    chain = [gen.next_block(txs) for _ in range(blocks)]
    return gen, chain


def raw_verify_rate(chain, chain_id: str, limit: int = 20_000) -> float:
    checks = []
    for block in chain:
        for tx in block.txs:
            if tx.is_coinbase:
                continue
            digest = tx.sighash(chain_id)
            for txin in tx.inputs:
                for pair in txin.witness:
                    checks.append((pair.pubkey, der_encode_signature(pair.signature), digest))
        if len(checks) >= limit:
            break
    start = time.perf_counter()
    for pubkey, der, digest in checks:
        if not coincurve.PublicKey(pubkey).verify(der, digest, hasher=None):
            raise SystemExit("raw verify failed")
    return len(checks) / (time.perf_counter() - start)


def connect(gen: ChainGenerator, chain, workers: int) -> tuple[float, bytes]:
    params = ConsensusParams(gen.chain_id, max_block_txs=100_000, max_block_size=64_000_000)
    tmp = tempfile.mkdtemp(prefix="o2o-bench-")
    verifier = ThreadedVerifier(workers)
    try:
        with Database(tmp) as db:
            state = ChainState(db, params, gen.genesis, verifier=verifier)
            start = time.perf_counter()
            for block in chain:
                state.add_block(block)
            elapsed = time.perf_counter() - start
            assert state.height == len(chain)
            return elapsed, state.utxo_set_hash()
    finally:
        verifier.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=200)
    parser.add_argument("--txs", type=int, default=100, help="payments per block")
    parser.add_argument("--workers", type=int, default=0, help="threads (0 = all cores)")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    gen, chain = generate(args.blocks, args.txs)
    n_txs = sum(len(b.txs) for b in chain)
    n_payments = sum(1 for b in chain for t in b.txs if not t.is_coinbase)
    n_sigs = sum(len(i.witness) for b in chain for t in b.txs for i in t.inputs)
    print(f"generated {len(chain)} blocks, {n_txs} txs ({n_payments} payments), "
          f"{n_sigs} signatures in {time.perf_counter() - t0:.1f} s")

    raw = raw_verify_rate(chain, gen.chain_id)
    print(f"raw coincurve verify (1 core):    {raw:10,.0f} sig/s")

    results = {}
    import os
    for label, workers in (("single-core", 1), ("threaded", args.workers or os.cpu_count())):
        elapsed, utxo_hash = connect(gen, chain, workers)
        results[label] = utxo_hash
        tx_rate = n_txs / elapsed
        sig_rate = n_sigs / elapsed
        print(f"connect {label:12s} ({workers} thr): {elapsed:6.2f} s  {tx_rate:9,.0f} tx/s  "
              f"{sig_rate:9,.0f} sig/s  ratio to raw verify {sig_rate / raw:.2f}")
    if len(set(results.values())) != 1:
        print("ERROR: UTXO set hashes differ between runs", file=sys.stderr)
        return 1
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"utxo set hash {next(iter(results.values())).hex()[:16]}…  peak RSS {rss:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

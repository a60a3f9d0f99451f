#!/usr/bin/env python3
"""Benchmark: connect a generated chain into a fresh chainstate.

Generates ``--blocks`` blocks of ``--txs`` signed payments each (alternating
1-in/2-out and 2-in/2-out), then times connecting them into a fresh LevelDB:
single core, signatures spread over threads, streamed to worker processes
(``procs``), and pipelined (``pipeline``: the next block's signatures verified
ahead; what a syncing node does).  The issue's targets compare ``procs`` or
``pipeline`` with the single-core figure of the same run.  In the same run
it measures the raw coincurve verify rate
(``coincurve.PublicKey(pk).verify(der, digest, hasher=None)`` over the
chain's own signatures) and prints our signatures/s as a ratio of it.

    python benchmarks/connect.py                 # 200 blocks x 100 txs
    python benchmarks/connect.py --blocks 40 --txs 2000 --skip-before   # the #20 figures
    python benchmarks/connect.py --blocks 40 --txs 2000 --skip-before --rounds 3
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import coincurve

from o2ocli.consensus.block import witness_checks
from o2ocli.consensus.params import ConsensusParams
from o2ocli.crypto.batch import CachingVerifier, ProcessVerifier, ThreadedVerifier, VerifySession
from o2ocli.crypto.der import der_encode_signature
from o2ocli.node.gcpolicy import tune_gc
from o2ocli.storage import ChainState, Database
from o2ocli.storage.coincache import DEFAULT_DBCACHE_MB, leveldb_options
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


def make_verifier(workers: int, mode: str):
    """1 worker: the serial path.  ``threads``: ThreadedVerifier (a batch per
    block spread over threads while the caller waits; the pre-streaming
    path).  ``procs``: ProcessVerifier streaming to ``workers - 1`` processes
    while the caller checks the block's other rules, the block's MuHash
    products computed there too.  ``pipeline``: the same behind the node's
    signature cache, with the next block's signatures verified ahead while
    this one connects (what the node does while syncing)."""
    if workers == 1 or mode == "threads":
        return ThreadedVerifier(workers)
    if mode == "pipeline":
        return CachingVerifier(ProcessVerifier(workers - 1))
    if mode == "thread-stream":
        return _StreamingThreads(workers)
    return ProcessVerifier(workers - 1)


class _StreamingThreads(ThreadedVerifier):
    """Streaming to threads (to compare with processes: the GIL)."""

    def stream(self) -> VerifySession:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="sigverify")
        pool = self._pool
        return VerifySession(lambda: pool)


def connect(gen: ChainGenerator, chain, workers: int, dbcache_mb: int,
            mode: str = "procs") -> tuple[float, float, bytes, float]:
    """Connect ``chain`` into a fresh chainstate; ``dbcache_mb`` 0 is the
    write-through path with plyvel's default options (the code before the
    UTXO cache).  Returns (wall seconds, the calling thread's CPU seconds,
    UTXO set hash, (each ``add_block``'s seconds, the indexes of those that
    flushed)); the time includes the
    final flush."""
    params = ConsensusParams(gen.chain_id, max_block_txs=100_000, max_block_size=64_000_000)
    tmp = tempfile.mkdtemp(prefix="o2o-bench-")
    verifier = make_verifier(workers, mode)
    pids: list[int] = []
    if workers > 1 and mode in ("procs", "pipeline"):
        # Not timed: starting the worker process.
        pids = getattr(verifier, "inner", verifier).start()
    options = leveldb_options(dbcache_mb) if dbcache_mb else {}
    try:
        with Database(tmp, **options) as db:
            state = ChainState(db, params, gen.genesis, verifier=verifier,
                               dbcache=dbcache_mb * (3 << 20) // 4)
            start = time.perf_counter()
            cpu = time.thread_time()
            worker_cpu = _cpu_seconds(pids)
            times = []
            flushed = set()  # the blocks whose connect flushed (or handed over) the cache
            for i, block in enumerate(chain):
                if mode == "pipeline" and i + 1 < len(chain):
                    # What sync does when the next block has arrived: verify its
                    # signatures ahead while this one connects.
                    verifier.prefetch(witness_checks(chain[i + 1], gen.chain_id))
                usage = state.cache.usage if state.cache is not None else 0
                before = time.perf_counter()
                state.add_block(block)
                times.append(time.perf_counter() - before)
                if state.cache is not None and state.cache.usage < max(usage, 1):
                    flushed.add(len(times) - 1)
            state.flush()
            cpu = time.thread_time() - cpu
            worker_cpu = _cpu_seconds(pids) - worker_cpu
            elapsed = time.perf_counter() - start
            if state.cache is not None:
                cache = state.cache
                print(f"  {cache.flushes} flushes, {cache.flush_seconds:.2f} s writing "
                      f"(connect waited {getattr(cache, 'wait_seconds', 0.0):.2f} s for one)")
            assert state.height == len(chain)
            return elapsed, cpu, worker_cpu, state.utxo_set_hash(), (times, flushed)
    finally:
        verifier.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of processes (Linux /proc; 0 elsewhere)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total
def latency(times: list[float], flushed: set[int]) -> str:
    """add_block latency (ms) of the blocks that flushed, of the blocks right
    after them (a background flush runs then), and of the others."""
    def ms(sample: list[float]) -> str:
        if not sample:
            return "-"
        return (f"max {max(sample) * 1000:.0f} mean {sum(sample) / len(sample) * 1000:.0f} "
                f"(n={len(sample)})")
    after = {i + 1 for i in flushed} - flushed
    rest = [t for i, t in enumerate(times) if i not in flushed and i not in after]
    return (f"block ms: flushing {ms([times[i] for i in sorted(flushed)])}; next "
            f"{ms([times[i] for i in sorted(after) if i < len(times)])}; others {ms(rest)}")


def _spin(seconds: float) -> float:
    """SHA-256 rounds per second of one process for ``seconds``."""
    import hashlib

    data = b"x" * 64
    start = time.perf_counter()
    n = 0
    while time.perf_counter() - start < seconds:
        for _ in range(1000):
            hashlib.sha256(data).digest()
        n += 1000
    return n / seconds


def parallel_ceiling(seconds: float = 3.0) -> float:
    """What two busy processes get together, as a multiple of one alone, on
    this machine now (a virtual machine's two cores may share more than they
    show): the most any two-core variant below can reach over serial."""
    import multiprocessing

    one = _spin(seconds)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        two = sum(pool.map(_spin, [seconds, seconds]))
    return two / one


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=200)
    parser.add_argument("--txs", type=int, default=100, help="payments per block")
    parser.add_argument("--workers", type=int, default=0, help="threads (0 = all cores)")
    parser.add_argument("--dbcache", type=int, default=DEFAULT_DBCACHE_MB,
                        help="MiB of UTXO cache + LevelDB block cache (as node start)")
    parser.add_argument("--skip-before", action="store_true",
                        help="do not run the write-through (pre-cache) baseline")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the variants this many times, interleaved, and compare "
                             "their medians (a shared host's speed drifts by ±5 %% or more "
                             "between runs)")
    parser.add_argument("--only", choices=("serial", "threads", "procs", "pipeline"),
                        help="run only this variant (with the UTXO cache), e.g. under a "
                             "profiler")
    parser.add_argument("--no-gc-tune", action="store_true",
                        help="keep CPython's default collector thresholds and do not "
                             "freeze the generated chain (what the node does: gcpolicy)")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    gen, chain = generate(args.blocks, args.txs)
    n_txs = sum(len(b.txs) for b in chain)
    n_payments = sum(1 for b in chain for t in b.txs if not t.is_coinbase)
    n_sigs = sum(len(i.witness) for b in chain for t in b.txs for i in t.inputs)
    print(f"generated {len(chain)} blocks, {n_txs} txs ({n_payments} payments), "
          f"{n_sigs} signatures in {time.perf_counter() - t0:.1f} s")

    if not args.no_gc_tune:
        # As `node start` does once it is up (o2ocli.node.gcpolicy); here it also
        # keeps the collector from rescanning the generated chain, which a node
        # receiving blocks one by one does not hold.
        tune_gc()
        print(f"collector: gcpolicy.tune_gc() (thresholds {gc.get_threshold()}, "
              f"{gc.get_freeze_count():,} objects frozen)")
    else:
        print(f"collector: CPython defaults (thresholds {gc.get_threshold()})")
    raw = raw_verify_rate(chain, gen.chain_id)
    print(f"raw coincurve verify (1 core):    {raw:10,.0f} sig/s")
    ceiling = parallel_ceiling()
    print(f"two busy processes get x{ceiling:.2f} of one here now (the ceiling of any "
          "two-core figure below)")

    results = {}
    cores = args.workers or os.cpu_count() or 1
    runs = [("no cache", 1, 0, "serial"), ("no cache", cores, 0, "threads")]
    if args.skip_before:
        runs = []
    runs += [("cache", 1, args.dbcache, "serial"), ("cache", cores, args.dbcache, "threads"),
             ("cache", cores, args.dbcache, "procs"), ("cache", cores, args.dbcache, "pipeline")]
    if args.only:
        runs = [run for run in runs if run[0] == "cache" and run[3] == args.only]
    rates: dict[str, list[tuple[float, float]]] = {}
    print("(wall: elapsed; main CPU: the calling thread's CPU time, the critical path "
          "when the other cores are free)")
    for round_, (label, workers, dbcache, mode) in (
            (r, run) for r in range(1, args.rounds + 1) for run in runs):
        elapsed, cpu, worker_cpu, utxo_hash, (times, flushed) = connect(
            gen, chain, workers, dbcache, mode)
        key = f"{label}, {mode} ({workers} core{'s' if workers > 1 else ''})"
        results[key] = utxo_hash
        rates.setdefault(key, []).append((n_txs / elapsed, n_txs / cpu))
        if args.rounds > 1:
            print(f"round {round_}:", end=" ")
        sig_rate = n_sigs / elapsed
        print(f"connect {key:30s} {elapsed:6.2f} s  {n_txs / elapsed:9,.0f} tx/s wall  "
              f"{n_txs / cpu:9,.0f} tx/s per main-CPU s  {sig_rate / raw:.2f} of raw verify  "
              f"block max {max(times) * 1000:4.0f} ms, "
              f"median {sorted(times)[len(times) // 2] * 1000:4.0f}"
              + (f"  (CPU per tx: main {cpu / n_txs * 1e6:.0f} µs + workers "
                 f"{worker_cpu / n_txs * 1e6:.0f} µs)" if worker_cpu else ""),
              flush=True)
        print(f"  {latency(times, flushed)}")
        if worker_cpu:
            # What two cores allow for this run's CPU, and how much of it the
            # signatures take at the raw rate (the floor no scheduling removes).
            per_tx = (cpu + worker_cpu) / n_txs * 1e6
            print(f"  CPU ceiling {2e6 / per_tx:,.0f} tx/s (calling thread + workers over "
                  f"2 cores, perfectly overlapped: {n_txs / elapsed / (2e6 / per_tx):.2f} "
                  f"reached); signatures at the raw rate are {n_sigs / raw / n_txs * 1e6:.0f} "
                  f"of its {per_tx:.0f} µs per tx")
    # Each variant's median round (by wall rate); with one round, that round.
    medians = {key: sorted(runs_)[len(runs_) // 2] for key, runs_ in rates.items()}
    if args.rounds > 1:
        print(f"medians of {args.rounds} rounds:")
        for key, (wall, _) in medians.items():
            print(f"  {key:30s} {wall:9,.0f} tx/s wall  (rounds: "
                  + ", ".join(f"{w:,.0f}" for w, _ in rates[key]) + ")")
    ref = medians.get("cache, serial (1 core)")
    base = medians.get("no cache, serial (1 core)")
    for key, (wall, per_cpu) in medians.items():
        text = f"  {key:30s}"
        if ref:
            text += f"  x{wall / ref[0]:.2f} wall, x{per_cpu / ref[1]:.2f} main CPU of cache serial"
        if base:
            text += f";  x{wall / base[0]:.2f} wall of no-cache serial"
        print(text)
    if len(set(results.values())) != 1:
        print("ERROR: UTXO set hashes differ between runs", file=sys.stderr)
        return 1
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"utxo set hash {next(iter(results.values())).hex()[:16]}…  peak RSS {rss:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

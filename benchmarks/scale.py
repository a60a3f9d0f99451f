#!/usr/bin/env python3
"""Benchmark: how connect behaves as the UTXO set grows.

Grows a chainstate to ``--utxos`` unspent outputs with the project's
:class:`~o2ocli.testing.chaingen.ChainGenerator` (blocks of ``--txs``
payments, each spending the oldest coin into 4 outputs, so the set grows by 3
a payment and every spend reads a coin that has long left the cache), and
prints, per slice of the growth:

* the UTXO set size, connect tx/s and inputs/s;
* the connecting process's RSS at the end of the slice (the generator runs
  in a separate process, so its coin pool is not counted), and the highest
  anonymous RSS seen after any block of the slice (``anon MiB``: RSS less
  the mapped pages of LevelDB's table files, which are page cache);
* the chain database's bytes on disk per UTXO (stored blocks included);
* the CPU seconds of the slice (the connecting thread / the process's other
  threads / the signature worker), the MB LevelDB's compactions wrote
  (``leveldb.stats``, levels 1 and down), and the *CPU ceiling*: the tx/s
  the slice's CPU seconds would allow if they were spread perfectly over the
  machine's cores.  When the ceiling falls, connect cannot keep its rate on
  these cores however its threads are arranged.

The chain is generated first, into a file of framed blocks (a child
process signs it; nothing else runs while it does), and only then connected
from that file, so no signer competes with connect for the two cores: with
the generator signing alongside (as this script did before), slice rates
varied by ±12 % from run to run at the same UTXO count.  The slices hold
equal numbers of blocks (the remainder is spread over the first ones), so
no slice is a short, noisy stub.

Then the time of ``utxo_stats()`` (what ``chain info`` reports: a full scan
today unless an incremental commitment serves it) and of a replay of the
stored blocks into a fresh chainstate (a reindex's rebuild phase).

    python benchmarks/scale.py --utxos 20000        # a quick run
    python benchmarks/scale.py                      # 2 M UTXOs
    python benchmarks/scale.py --utxos 5000000 --dbcache 300

Targets (issue 20): the last slice's connect rate >= 0.95 x the first's; RSS
bounded by --dbcache plus a constant.

What the columns showed (2 M UTXOs, 2 cores, 2026-12-07): the connecting
thread's and the worker's CPU stay flat from slice to slice; what grows is
LevelDB's own work, compaction above all (the other threads' CPU 0.8 s in
slice 1, 5-8 s in slice 8), as an LSM tree's does while it gains a level.
It is driven by the number of small keys (13 a payment: the coin, its
address entry, the tx index, spent-at and address history), not by bytes:
a run that kept the stored blocks and undo data out of LevelDB (half the
bytes written) spent the same compaction CPU (34.1 against 34.4 s over the
slices), so moving them into flat files, as Bitcoin Core's blk/rev files do,
would not change this ratio.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from connect import _cpu_seconds, latency

from o2ocli.consensus.params import ConsensusParams
from o2ocli.core.block import Block
from o2ocli.crypto.batch import ProcessVerifier, ThreadedVerifier
from o2ocli.node.gcpolicy import tune_gc
from o2ocli.storage import ChainState, Database
from o2ocli.storage import db as dbmod
from o2ocli.storage import schema as k
from o2ocli.storage.coincache import DEFAULT_DBCACHE_MB, leveldb_options

CHAIN_ID = "o2o-scale"


def produce(path: str, txs: int, outputs: int, blocks: int) -> None:
    """Child process: generate ``blocks`` blocks (genesis first) into ``path``,
    each framed as a u32 little-endian length and the block's bytes."""
    from o2ocli.testing.chaingen import ChainGenerator, make_block, p2a

    gen = ChainGenerator(CHAIN_ID, n_keys=200, coins_per_key=10, fee=1)
    with open(path, "wb") as out:
        write_frame(out, gen.genesis.to_bytes())
        for _ in range(blocks):
            write_frame(out, next_block(gen, make_block, p2a, txs, outputs).to_bytes())


def next_block(gen, make_block, p2a, txs: int, outputs: int) -> Block:
    """The generator's next block: ``txs`` payments, each spending the oldest coin."""
    body = [gen.payment(1, outputs)[0] for _ in range(txs)]
    block = make_block(gen.tip, body, fees=gen.fee * len(body), fee_lock=p2a(gen.miner))
    for tx in block.txs:
        gen._credit(tx)
    gen.tip = block.header
    return block


def write_frame(out, data: bytes) -> None:
    out.write(len(data).to_bytes(4, "little") + data)


def read_frames(path: Path):
    """The blocks :func:`produce` wrote, one at a time (bytes)."""
    with open(path, "rb") as f:
        while head := f.read(4):
            yield f.read(int.from_bytes(head, "little"))


def slice_ends(blocks: int, slices: int) -> set[int]:
    """Heights that end a slice: ``slices`` slices of equal size (the first
    ``blocks % slices`` one block longer), or one block each if fewer."""
    slices = max(1, min(slices, blocks))
    size, extra = divmod(blocks, slices)
    ends, height = set(), 0
    for i in range(slices):
        height += size + (1 if i < extra else 0)
        ends.add(height)
    return ends


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


def anon_mib() -> float:
    """The process's anonymous resident memory (``RssAnon``): its heap, not
    the pages of LevelDB's table files it has mapped, which the kernel can
    drop whenever it needs the memory (0 where /proc has no such line)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    return 0.0


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utxos", type=int, default=2_000_000, help="grow the set to this size")
    parser.add_argument("--txs", type=int, default=2000, help="payments per block")
    parser.add_argument("--outputs", type=int, default=4, help="outputs per payment")
    parser.add_argument("--slices", type=int, default=8)
    parser.add_argument("--dbcache", type=int, default=DEFAULT_DBCACHE_MB,
                        help="MiB, as node start --dbcache (0: write through, plyvel defaults)")
    parser.add_argument("--serial", action="store_true",
                        help="verify signatures on the calling thread (default: a worker process)")
    parser.add_argument("--no-replay", action="store_true", help="skip the replay timing")
    parser.add_argument("--compaction-nice", type=int, default=dbmod.COMPACTION_NICE,
                        help="niceness of LevelDB's compaction thread (0: as connect's)")
    parser.add_argument("--chain-file", type=Path,
                        help="keep the generated chain in this file, or connect the one it "
                             "holds (same --utxos, --txs and --outputs): for A/B runs")
    args = parser.parse_args(argv)
    dbmod.COMPACTION_NICE = args.compaction_nice

    genesis_utxos = 2000
    growth = args.outputs - 1
    blocks = max(1, -(-(args.utxos - genesis_utxos) // (args.txs * growth + 1)))
    params = ConsensusParams(CHAIN_ID, max_block_txs=100_000, max_block_size=64_000_000)
    tmp = Path(tempfile.mkdtemp(prefix="o2o-scale-"))
    path = tmp / "chaindata"
    options = leveldb_options(args.dbcache) if args.dbcache else {}
    verifier = ThreadedVerifier(1) if args.serial else ProcessVerifier()
    ctx = multiprocessing.get_context("spawn")
    chain_file = args.chain_file or tmp / "blocks.dat"
    producer = ctx.Process(target=produce, args=(str(chain_file), args.txs, args.outputs,
                                                 blocks), daemon=True)
    if chain_file.exists():
        print(f"connecting the chain in {chain_file} ({chain_file.stat().st_size / 1e6:,.0f} MB)")
    else:
        started = time.perf_counter()
        producer.start()
        producer.join()
        if producer.exitcode != 0:
            raise SystemExit(f"the chain generator failed (exit code {producer.exitcode})")
        print(f"generated {blocks + 1} blocks into {chain_file.stat().st_size / 1e6:,.0f} MB "
              f"in {time.perf_counter() - started:.0f} s; connecting them now")
    frames = read_frames(chain_file)
    tune_gc()  # as node start and node reindex do (node/gcpolicy.py)
    print(f"{blocks} blocks of {args.txs} payments (1 in, {args.outputs} out) to reach "
          f"~{args.utxos:,} UTXOs; dbcache {args.dbcache} MiB; "
          f"{'serial' if args.serial else 'worker-process'} signature checks")
    print("(CPU s of the slice: the connecting thread / the process's other threads, i.e.\n"
          " LevelDB's compaction and the background flush writer / the signature workers)")
    print(f"{'slice':>5} {'height':>6} {'utxos':>10} {'tx/s':>8} {'inputs/s':>9} "
          f"{'RSS MiB':>8} {'anon MiB':>8} {'disk B/utxo':>11} {'flushes':>7} {'flush s':>7} "
          f"{'max ms':>7} "
          f"{'CPU main/other/workers':>22} {'compact MB':>10} {'CPU ceiling':>11}")
    rates = []
    try:
        genesis = Block.from_bytes(next(frames))
        db = Database(path, **options)
        state = ChainState(db, params, genesis, verifier=verifier,
                           dbcache=args.dbcache * (3 << 20) // 4)
        utxos = sum(len(tx.outputs) for tx in genesis.txs)
        ends = slice_ends(blocks, args.slices)
        pids = [] if args.serial else verifier.start()
        cpu_before = (time.thread_time(), time.process_time(), _cpu_seconds(pids))
        cpu_before_workers = cpu_before[2]
        compacted_before = compaction_mb(db)
        cores = os.cpu_count() or 1
        ceilings = []
        anon_peak = slice_anon = 0.0
        slice_txs = slice_inputs = 0
        slice_time = 0.0
        flush_before = 0.0
        longest = 0.0
        times: list[float] = []
        flushed: set[int] = set()
        for height in range(1, blocks + 1):
            block = Block.from_bytes(next(frames))
            usage = state.cache.usage if state.cache is not None else 0
            start = time.perf_counter()
            state.add_block(block)
            took = time.perf_counter() - start
            times.append(took)
            slice_anon = max(slice_anon, anon_mib())
            if state.cache is not None and state.cache.usage < max(usage, 1):
                flushed.add(len(times) - 1)
            slice_time += took
            longest = max(longest, took)
            for tx in block.txs:
                slice_txs += 1
                slice_inputs += len(tx.inputs)
                utxos += len(tx.outputs) - len(tx.inputs)
            if height in ends:
                rate = slice_txs / slice_time
                rates.append(rate)
                cache = state.cache
                flushes = cache.flushes if cache is not None else 0
                flush_s = cache.flush_seconds - flush_before if cache is not None else 0.0
                flush_before += flush_s
                cpu = (time.thread_time(), time.process_time(), _cpu_seconds(pids))
                main_s = cpu[0] - cpu_before[0]
                other_s = max(0.0, cpu[1] - cpu_before[1] - main_s)
                cpu_before = cpu
                worker_s = cpu[2] - cpu_before_workers
                compacted = compaction_mb(db)
                ceilings.append(slice_txs / ((main_s + other_s + worker_s) / cores))
                print(f"{len(rates):5d} {height:6d} {utxos:10,d} {rate:8,.0f} "
                      f"{slice_inputs / slice_time:9,.0f} {rss_mib():8.0f} {slice_anon:8.0f} "
                      f"{dir_bytes(path) / utxos:11.0f} {flushes:7d} {flush_s:7.1f} "
                      f"{longest * 1000:7.0f} {main_s:8.1f} /{other_s:5.1f} /"
                      f"{worker_s:5.1f} {compacted - compacted_before:10,.0f} "
                      f"{ceilings[-1]:11,.0f}", flush=True)
                compacted_before = compacted
                anon_peak = max(anon_peak, slice_anon)
                slice_anon = 0.0
                cpu_before_workers = cpu[2]
                slice_txs = slice_inputs = 0
                longest = 0.0
                slice_time = 0.0
        print(latency(times, flushed))
        cache = state.cache
        build_before = getattr(cache, "build_seconds", 0.0)
        start = time.perf_counter()
        state.flush()
        print(f"final flush {time.perf_counter() - start:.2f} s", end="")
        if hasattr(cache, "build_seconds"):  # a cache with background flushes
            print(f" ({cache.build_seconds - build_before:.2f} s building the batch); "
                  f"all flushes {cache.flush_seconds:.2f} s, of which building "
                  f"{cache.build_seconds:.2f} s; connect waited {cache.wait_seconds:.2f} s "
                  "for a background flush", end="")
        print()
        start = time.perf_counter()
        stats = state.utxo_stats()
        print(f"utxo_stats (chain info): {time.perf_counter() - start:.3f} s  "
              f"({stats.count:,} UTXOs)")
        assert stats.count == utxos, (stats.count, utxos)
        print(f"last slice / first slice connect rate: {rates[-1] / rates[0]:.2f}  "
              f"peak RSS {peak_rss_mib():.0f} MiB")
        print(f"peak anonymous RSS {anon_peak:.0f} MiB = --dbcache {args.dbcache} "
              f"{anon_peak - args.dbcache:+.0f} MiB")
        print(f"last slice / first slice CPU ceiling ({cores} cores): "
              f"{ceilings[-1] / ceilings[0]:.2f}")
        if not args.no_replay:
            replay(state, db, genesis, params, options, verifier, args.dbcache, tmp)
        db.close()
    finally:
        verifier.close()
        if producer.pid is not None:
            producer.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def replay(state, db, genesis, params, options, verifier, dbcache_mb, tmp: Path) -> None:
    """Time connecting the stored main chain into a fresh chainstate."""
    fresh_db = Database(tmp / "replay", **options)
    fresh = ChainState(fresh_db, params, genesis, verifier=verifier,
                       dbcache=dbcache_mb * (3 << 20) // 4)
    start = time.perf_counter()
    for height in range(1, state.height + 1):
        fresh.add_block(Block.from_bytes(db.get(k.block_key(db.get(k.height_key(height))))))
    fresh.flush()
    elapsed = time.perf_counter() - start
    assert fresh.utxo_set_hash() == state.utxo_set_hash()
    print(f"replay of {state.height} stored blocks into a fresh chainstate: {elapsed:.1f} s")
    fresh_db.close()


def compaction_mb(db: Database) -> float:
    """MB LevelDB's compactions have written since it opened (levels 1 and
    down of ``leveldb.stats``; level 0 is the memtable writes)."""
    text = db._db.get_property(b"leveldb.stats") or b""
    total = 0.0
    for line in text.decode().splitlines():
        fields = line.split()
        if len(fields) == 6 and fields[0].isdigit() and int(fields[0]) > 0:
            total += float(fields[5])
    return total


def peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    sys.exit(main())

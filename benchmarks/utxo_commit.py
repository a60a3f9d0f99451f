#!/usr/bin/env python3
"""Benchmark: ``chain info`` (the UTXO set commitment) on a large UTXO set.

Grows a chainstate to ``--utxos`` unspent outputs quickly (fan-out payments:
one input, ``--outputs`` outputs each), then times, in the same run:

* ``utxo_stats()`` at the tip and at an early height: the stored MuHash3072
  commitment, one read and one modular inverse (what ``chain info`` and RPC
  ``getutxosetinfo`` call); median of ``--repeat`` calls;
* the full scan that ``chain info`` ran before (the old ``utxo_stats``:
  SHA-256, count and totals);
* the full-scan MuHash (``chain verify-utxo``);
* the MuHash cost per coin added while connecting;
* the connect overhead on plain payments (``ChainGenerator`` blocks, 1-in or
  2-in, 2-out): the same chain connected with the commitment and with its
  update stubbed out (the parent's record copied), alternately, best of 3
  (wall time, and process CPU time, steadier on a shared machine).

    python benchmarks/utxo_commit.py                  # 1 M UTXOs
    python benchmarks/utxo_commit.py --utxos 200000   # quicker
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import sys
import tempfile
import time
from unittest import mock

from o2ocli.consensus.params import ConsensusParams
from o2ocli.core.encoding import Writer
from o2ocli.core.tx import NATIVE_ASSET, Coin, Outpoint, Tx, TxIn, TxOut
from o2ocli.storage import ChainState, Database, schema
from o2ocli.storage.utxocommit import UtxoCommitment
from o2ocli.testing.chaingen import ChainGenerator, make_block, p2a, sign_tx


def old_full_scan_stats(db: Database) -> tuple[bytes, int, dict[bytes, int]]:
    """The pre-commitment ``utxo_stats``: SHA-256 over every key ‖ coin, the
    count and the per-asset totals (each coin decoded), by a full scan."""
    h = hashlib.sha256()
    count = 0
    totals: dict[bytes, int] = {}
    for key, value in db.iterate(schema.UTXO):
        w = Writer()
        w.raw(key[1:])
        w.var_bytes(value)
        h.update(w.getvalue())
        count += 1
        coin = Coin.from_bytes(value)
        totals[coin.output.asset] = totals.get(coin.output.asset, 0) + coin.output.amount
    return h.digest(), count, totals


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--utxos", type=int, default=1_000_000)
    ap.add_argument("--outputs", type=int, default=2_000, help="outputs per payment")
    ap.add_argument("--txs", type=int, default=25, help="payments per block")
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--payment-blocks", type=int, default=40,
                    help="blocks of 200 plain payments for the overhead run")
    args = ap.parse_args(argv)
    if args.payment_blocks:
        payments_overhead(args.payment_blocks)
    if not args.utxos:
        return 0

    gen = ChainGenerator("o2o-bench", n_keys=200, coins_per_key=10)
    params = ConsensusParams("o2o-bench", max_block_txs=100_000, max_block_size=64_000_000,
                             max_tx_size=4_000_000, max_tx_outputs=10_000)
    tmp = tempfile.mkdtemp(prefix="o2o-bench-commit-")
    try:
        state = ChainState(Database(tmp), params, gen.genesis)
        keys = gen.keys
        connect_s = 0.0
        muhash_s = 0.0
        added = 0
        while state.utxo_stats().count < args.utxos:
            txs = []
            fees = 0
            for i in range(args.txs):
                spent = gen.pool.popleft()
                share = (spent.output.amount - gen.fee) // args.outputs
                fees += spent.output.amount - share * args.outputs
                outs = tuple(TxOut(NATIVE_ASSET, share, p2a(keys[(i + j) % len(keys)]))
                             for j in range(args.outputs))
                txs.append(sign_tx(Tx((TxIn(spent.outpoint),), outs), [[spent.key]],
                                   gen.chain_id))
            block = make_block(gen.tip, txs, fees=fees, fee_lock=p2a(gen.miner))
            gen.tip = block.header
            start = time.perf_counter()
            assert state.add_block(block)
            connect_s += time.perf_counter() - start
            # The MuHash part of that connect, measured alone on the same coins.
            created = [(Outpoint(tx.txid, n), Coin(out, block.height, tx.is_coinbase))
                       for tx in block.txs for n, out in enumerate(tx.outputs)]
            start = time.perf_counter()
            UtxoCommitment.empty().apply([], created)
            muhash_s += time.perf_counter() - start
            added += len(created)
            print(f"height {state.height}: {state.utxo_stats().count:,} UTXOs", file=sys.stderr)
        stats = state.utxo_stats()
        early = state.get_block_hash(1)

        def median_ms(fn) -> float:
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            return statistics.median(times) * 1e3

        tip_ms = median_ms(state.utxo_stats)
        early_ms = median_ms(lambda: state.utxo_stats(early))
        start = time.perf_counter()
        old_full_scan_stats(state.db)
        old_s = time.perf_counter() - start
        start = time.perf_counter()
        scanned = state.scan_utxo_stats()
        scan_s = time.perf_counter() - start
        assert scanned == stats, "the full scan disagrees with the stored commitment"
        print(f"UTXO set: {stats.count:,} outputs at height {stats.height}")
        print(f"chain info (stored commitment, tip):       {tip_ms:8.2f} ms (median of "
              f"{args.repeat})")
        print(f"chain info (stored commitment, height 1):  {early_ms:8.2f} ms")
        print(f"old chain info (full scan: SHA-256, totals):{old_s * 1e3:7.0f} ms")
        print(f"verify-utxo (full-scan MuHash):            {scan_s * 1e3:8.0f} ms")
        print(f"connect: {added:,} coins in {connect_s:.1f} s; MuHash alone "
              f"{muhash_s / added * 1e6:.1f} us/coin ({muhash_s / connect_s:.0%} of connect)")
        print(f"old/new chain info ratio: {old_s * 1e3 / tip_ms:,.0f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def payments_overhead(blocks: int) -> None:
    gen = ChainGenerator("o2o-bench", n_keys=200, coins_per_key=10)
    chain = [gen.next_block(200) for _ in range(blocks)]
    txs = sum(len(b.txs) for b in chain)
    params = ConsensusParams(gen.chain_id, max_block_txs=100_000, max_block_size=64_000_000)

    def run() -> tuple[float, float]:
        """(wall, process CPU) seconds to connect the chain on a fresh chainstate."""
        tmp = tempfile.mkdtemp(prefix="o2o-bench-pay-")
        try:
            state = ChainState(Database(tmp), params, gen.genesis)
            start, cpu = time.perf_counter(), time.process_time()
            for block in chain:
                state.add_block(block)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
            state.db.close()
            return elapsed, cpu
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def stub(parent, spent, created):  # the parent's record: no hashing at all
        return parent if parent is not None else UtxoCommitment.empty().to_bytes()

    with_commit, without = [], []
    for _ in range(3):
        with_commit.append(run())
        with mock.patch("o2ocli.storage.chainstate.commitment_after", stub):
            without.append(run())
    a, b = min(t for t, _ in with_commit), min(t for t, _ in without)
    ca, cb = min(c for _, c in with_commit), min(c for _, c in without)
    print(f"plain payments: {txs:,} txs; connect {txs / a:,.0f} tx/s with the commitment, "
          f"{txs / b:,.0f} tx/s with its update stubbed: {a / b - 1:+.0%} time "
          f"(process CPU time: {ca:.2f} s vs {cb:.2f} s, {ca / cb - 1:+.0%})", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

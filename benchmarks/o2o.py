#!/usr/bin/env python3
"""Benchmark: connecting O2O transactions (reviews, rewards) against plain payments.

Builds a chain in memory: a block of ``--n`` purchases (customer → merchant),
then a block of ``--n`` reviews of them (each checks the purchase in the tx
index, the window, the buyer, the one-review rule, and verifies two
signatures).  Times connecting each block into a
fresh LevelDB chainstate (single-core verifier), and in the same run connects
a block of ``--n`` plain 1-in/2-out payments as the baseline.  Prints txs/s,
signatures/s, and the ratio of each block's rate to the payment block's.

    python benchmarks/o2o.py            # 2,000 txs per block
    python benchmarks/o2o.py --n 500    # quicker
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import replace

from o2ocli.consensus.params import ConsensusParams
from o2ocli.core.payloads import Review, review_sig_digest
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, Tx, TxIn, TxOut
from o2ocli.storage import ChainState, Database
from o2ocli.testing.chaingen import deterministic_key, make_block, make_genesis, p2a, sign_tx

CHAIN = "o2o-bench"
FEE = 1_000


def build(n: int):
    merchant = deterministic_key(b"merchant", 0)
    customers = [deterministic_key(b"customer", i) for i in range(n)]
    payers = [deterministic_key(b"payer", i) for i in range(n)]
    outputs = []
    for key in customers:
        outputs += [TxOut(NATIVE_ASSET, 1_000_000, p2a(key)),
                    TxOut(NATIVE_ASSET, 1_000_000, p2a(key))]
    outputs += [TxOut(NATIVE_ASSET, 1_000_000, p2a(k)) for k in payers]
    genesis = make_genesis(CHAIN, outputs)
    coins: dict[bytes, list[Outpoint]] = {}
    for tx in genesis.txs:
        for i, out in enumerate(tx.outputs):
            coins.setdefault(out.lock.pubkey_hash, []).append(Outpoint(tx.txid, i))

    def spend(key, op, outs, payload=None):
        kwargs = {"payload": payload} if payload is not None else {}
        return sign_tx(Tx((TxIn(op),), tuple(outs), **kwargs), [[key]], CHAIN)

    # Block 1: purchases.  Block 2 (baseline): plain payments by other keys.
    purchases = [spend(k, coins[k.public_key.hash160()][0],
                       [TxOut(NATIVE_ASSET, 50_000, p2a(merchant)),
                        TxOut(NATIVE_ASSET, 1_000_000 - 50_000 - FEE, p2a(k))])
                 for k in customers]
    payments = [spend(k, coins[k.public_key.hash160()][0],
                      [TxOut(NATIVE_ASSET, 500_000, p2a(customers[i])),
                       TxOut(NATIVE_ASSET, 500_000 - FEE, p2a(k))])
                for i, k in enumerate(payers)]
    reviews = []
    for key, purchase in zip(customers, purchases, strict=True):
        unsigned = Review(merchant.public_key.hash160(), purchase.txid, 5, b"Great coffee",
                          key.public_key.to_bytes(), bytes(64))
        review = replace(unsigned, signature=key.sign(review_sig_digest(unsigned, CHAIN)))
        reviews.append(spend(key, coins[key.public_key.hash160()][1],
                             [TxOut(NATIVE_ASSET, 1_000_000 - FEE, p2a(key))], review))
    return genesis, purchases, payments, reviews


def timed_connect(state: ChainState, parent, txs) -> tuple[float, object]:
    block = make_block(parent, txs, fees=FEE * len(txs), fee_lock=p2a(deterministic_key(b"m", 9)))
    start = time.perf_counter()
    state.add_block(block)
    return time.perf_counter() - start, block


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2_000, help="txs per block")
    args = parser.parse_args()
    genesis, purchases, payments, reviews = build(args.n)
    params = ConsensusParams(CHAIN, max_block_txs=100_000, max_block_size=64_000_000,
                             min_purchase=1_000)
    tmp = tempfile.mkdtemp(prefix="o2o-bench-")
    try:
        state = ChainState(Database(f"{tmp}/db"), params, genesis)
        t_purchases, b1 = timed_connect(state, genesis.header, purchases)
        t_payments, b2 = timed_connect(state, b1.header, payments)
        t_reviews, b3 = timed_connect(state, b2.header, reviews)
        assert state.review_of_purchase(purchases[0].txid) == reviews[0].txid
        state.db.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = args.n
    base = n / t_payments
    print(f"plain payments : {n / t_payments:8.0f} tx/s  {n / t_payments:8.0f} sig/s  (baseline)")
    print(f"purchases      : {n / t_purchases:8.0f} tx/s  {n / t_purchases:8.0f} sig/s  "
          f"ratio {n / t_purchases / base:.2f}")
    print(f"reviews        : {n / t_reviews:8.0f} tx/s  {2 * n / t_reviews:8.0f} sig/s  "
          f"ratio {n / t_reviews / base:.2f} (2 signatures + tx-index lookups per review)")


if __name__ == "__main__":
    main()

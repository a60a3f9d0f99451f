#!/usr/bin/env python3
"""Benchmark: governance votes connected per second against plain payments,
and ``gov show`` time for a proposal with many ballots.

One genesis gives each of ``--votes`` keys two coins.  Chain A: a proposal
(tokens weight, native coin), then blocks of ``--per-block`` votes, each
vote naming the voter's first coin and paying its fee with the second (one
witness and one payload signature).  Chain B: the same number of plain
payments (one input, one output), spending the same fee coins in blocks of
the same size.  Both are connected into fresh chainstates in the same run
with the same verifier; then, on chain A, the tally (one prefix scan of the
ballots) and the whole ``getproposal`` answer (what ``gov show`` prints) are
timed.

    python benchmarks/gov.py                     # 50,000 votes
    python benchmarks/gov.py --votes 5000        # quicker
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from dataclasses import replace
from types import SimpleNamespace

from o2ocli.chainspec import load_spec
from o2ocli.consensus.params import ConsensusParams
from o2ocli.core.payloads import WEIGHT_TOKENS, GovProposal, GovVote, KeySig, vote_sig_digest
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, Tx, TxIn, TxOut
from o2ocli.node.methods.gov import compute_tally, proposal_json
from o2ocli.storage import ChainState, Database
from o2ocli.testing.chaingen import deterministic_key, make_block, make_genesis, p2a, sign_tx

CHAIN_ID = "o2o-bench-gov"
COIN = 1_000_000
FEE = 1_000


def build(votes: int, per_block: int):
    keys = [deterministic_key(b"bench-gov", i) for i in range(votes + 1)]
    proposer = keys[-1]
    outs = [TxOut(NATIVE_ASSET, COIN, p2a(k)) for k in keys[:votes] for _ in range(2)]
    outs.append(TxOut(NATIVE_ASSET, COIN, p2a(proposer)))
    genesis = make_genesis(CHAIN_ID, outs)
    coin = {}  # output number in ``outs`` -> outpoint
    n = 0
    for tx in genesis.txs:
        for i in range(len(tx.outputs)):
            coin[n] = Outpoint(tx.txid, i)
            n += 1
    payload = GovProposal(b"Bench", b"", (b"yes", b"no", b"later"), WEIGHT_TOKENS, NATIVE_ASSET,
                          None, 1_000_000, 1)
    proposal = sign_tx(Tx((TxIn(coin[2 * votes]),), (TxOut(NATIVE_ASSET, COIN - FEE - 1,
                                                             p2a(proposer)),), payload=payload),
                       [[proposer]], CHAIN_ID)
    pid = proposal.txid
    vote_txs, pay_txs = [], []
    for i, key in enumerate(keys[:votes]):
        held, fee_coin = coin[2 * i], coin[2 * i + 1]
        pub = key.public_key.to_bytes()
        unsigned = GovVote(pid, 1 + i % 3, (held.txid + held.index.to_bytes(4, "little"),), None,
                           (KeySig(pub, bytes(64)),))
        digest = vote_sig_digest(unsigned, CHAIN_ID,
                                 [fee_coin.txid + fee_coin.index.to_bytes(4, "little")])
        signed = replace(unsigned, keys=(KeySig(pub, key.sign(digest)),))
        back = (TxOut(NATIVE_ASSET, COIN - FEE, p2a(key)),)
        vote_txs.append(sign_tx(Tx((TxIn(fee_coin),), back, payload=signed), [[key]], CHAIN_ID))
        pay_txs.append(sign_tx(Tx((TxIn(fee_coin),), back), [[key]], CHAIN_ID))
    first_a = make_block(genesis.header, [proposal])
    first_b = make_block(genesis.header, [])
    chain_a, chain_b = [first_a], [first_b]
    for start in range(0, votes, per_block):
        chain_a.append(make_block(chain_a[-1].header, vote_txs[start:start + per_block]))
        chain_b.append(make_block(chain_b[-1].header, pay_txs[start:start + per_block]))
    return genesis, chain_a, chain_b, pid


def connect(genesis, chain, tmp: str) -> tuple[float, ChainState, Database]:
    params = ConsensusParams(CHAIN_ID, max_block_txs=100_000, max_block_size=64_000_000,
                             gov_deposit=1)
    db = Database(tmp)
    state = ChainState(db, params, genesis)
    state.add_block(chain[0])
    start = time.perf_counter()
    for block in chain[1:]:
        state.add_block(block)
    elapsed = time.perf_counter() - start
    assert state.height == len(chain)
    return elapsed, state, db


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=50_000)
    parser.add_argument("--per-block", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=5, help="timings of gov show")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    genesis, chain_a, chain_b, pid = build(args.votes, args.per_block)
    print(f"built {args.votes} votes and {args.votes} payments in "
          f"{time.perf_counter() - t0:.1f} s ({len(chain_a) - 1} blocks each)")
    tmp_a, tmp_b = tempfile.mkdtemp(prefix="o2o-gov-a-"), tempfile.mkdtemp(prefix="o2o-gov-b-")
    try:
        pay_time, _, db_b = connect(genesis, chain_b, tmp_b)
        db_b.close()
        vote_time, state, db_a = connect(genesis, chain_a, tmp_a)
        print(f"plain payments: {args.votes / pay_time:8.0f} tx/s  ({pay_time:.2f} s)")
        print(f"votes:          {args.votes / vote_time:8.0f} tx/s  ({vote_time:.2f} s; "
              f"{vote_time / pay_time:.2f}x the payments' time, 2 signatures per vote)")
        record = state.gov_proposal(pid)
        tallies, shows = [], []
        spec = load_spec("devnet")
        node = SimpleNamespace(spec=spec, chain=SimpleNamespace(
            state=state, height=state.height, finalized_height=state.height))
        for _ in range(args.repeat):
            start = time.perf_counter()
            tally = compute_tally(state, pid, record.options)
            tallies.append(time.perf_counter() - start)
            start = time.perf_counter()
            shown = proposal_json(node, pid)
            shows.append(time.perf_counter() - start)
        assert tally.ballots == args.votes and shown["turnout"]["ballots"] == args.votes
        assert sum(t["weight"] for t in shown["tallies"]) == args.votes * COIN
        print(f"tally of {tally.ballots} ballots: median {statistics.median(tallies) * 1000:.0f} "
              f"ms; getproposal (gov show's answer): median "
              f"{statistics.median(shows) * 1000:.0f} ms")
        db_a.close()
    finally:
        shutil.rmtree(tmp_a, ignore_errors=True)
        shutil.rmtree(tmp_b, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

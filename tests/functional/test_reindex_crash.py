"""``node reindex`` survives SIGKILL at any moment (issue 14).

A 200-block devnet chain (with payments) is written offline into a datadir;
then ``o2ocli node reindex`` processes are SIGKILLed at random moments until
20 of them died midway.  Each next reindex must open the database whatever
the previous one left (and the chainstate must refuse to open meanwhile); the
last, uninterrupted one must rebuild the very same tip and UTXO set, and
``node start`` must open the result.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from o2ocli.chainspec import ChainSpec
from o2ocli.crypto.address import decode_wif
from o2ocli.crypto.keys import PrivateKey
from o2ocli.node.chain import (
    ChainManager,
    ReindexProgress,
    ReindexRequired,
    rebuild_chainstate,
    reindex_pending,
)
from o2ocli.node.datadir import chaindata_path, init_datadir
from o2ocli.node.mempool import Mempool
from o2ocli.node.producer import build_block
from o2ocli.storage.db import Database

from .framework import run_cli
from .payments import Payer, devnet, funds_key

BLOCKS = 200
KILLS = 20
PAYMENTS_PER_BLOCK = 8
SEED = int(os.environ.get("O2O_REINDEX_KILL_SEED", "20261206"))


def write_chain(datadir: Path, spec: ChainSpec, blocks: int) -> tuple[str, str]:
    """Seal ``blocks`` devnet blocks (each with a few payments) straight into the
    datadir's database; returns (tip hash, UTXO set hash)."""
    init_datadir(datadir, spec)
    secret, _ = decode_wif(spec.dev_keys["validator"], version=spec.wif_version)
    validator = PrivateKey(secret)
    payer = Payer(spec, funds_key(spec))
    dest = validator.public_key.hash160()
    with Database(chaindata_path(datadir)) as db:
        chain = ChainManager(db, spec)
        payer.coin = max(((o, c.output.amount) for o, c in chain.state.iter_utxos()
                          if c.output.lock == payer.lock), key=lambda coin: coin[1])
        for _ in range(blocks):
            now = chain.tip.header.time + spec.poa_params.period
            pool = Mempool(chain.state, spec.consensus_params, min_fee_rate=spec.min_relay_fee)
            for _ in range(PAYMENTS_PER_BLOCK):
                pool.accept(payer.pay(dest, 1000), now)
            block = build_block(chain, pool, validator, now)
            assert chain.add_block(block, now=now)
        assert chain.height == blocks
        return chain.tip.hash.hex(), chain.state.utxo_set_hash().hex()


def reindex_cmd(datadir: Path) -> list[str]:
    return [sys.executable, "-m", "o2ocli", "--datadir", str(datadir), "--json",
            "node", "reindex"]


@pytest.mark.slow
def test_reindex_killed_at_random_moments_always_recovers(node_factory):
    spec = devnet()
    node = node_factory()
    tip, utxo_hash = write_chain(node.datadir, spec, BLOCKS)
    rng = random.Random(SEED)
    why = f"(seed {SEED}; rerun with O2O_REINDEX_KILL_SEED={SEED})"

    # One full run tells how long a reindex takes here (loaded machines differ),
    # and how much of that is the process starting (until its first progress
    # line, once the reindex has begun and connected a block).
    started = time.monotonic()
    proc = subprocess.Popen(reindex_cmd(node.datadir), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    first_line = proc.stderr.readline()
    lead = time.monotonic() - started
    out, err = proc.communicate(timeout=120)
    window = time.monotonic() - started
    assert proc.returncode == 0, first_line + err
    assert json.loads(out)["tip"] == tip
    assert first_line.startswith("reindex:"), first_line

    kills = runs = 0  # kills: those that left a reindex unfinished
    while kills < KILLS:
        runs += 1
        assert runs <= 4 * KILLS, f"only {kills} of {runs} reindex runs were killed midway {why}"
        started = time.monotonic()
        proc = subprocess.Popen(reindex_cmd(node.datadir), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            # Most kills after the start-up (a kill before the reindex began
            # tests nothing), some before it still.
            proc.wait(rng.uniform(lead / 2, max(window, lead)))
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
        if proc.returncode == -signal.SIGKILL:
            with Database(chaindata_path(node.datadir)) as db:
                if reindex_pending(db):  # else killed before it began (or as it ended)
                    kills += 1
                    with pytest.raises(ReindexRequired):
                        ChainManager(db, spec)
            continue
        # It finished before the kill: then it must have succeeded (and later
        # kills should come sooner).
        window = min(window, time.monotonic() - started)
        assert proc.returncode == 0, f"run {runs}: reindex failed {why}: {err.strip()}"
        result = json.loads(out)
        assert (result["tip"], result["utxo_set_hash"]) == (tip, utxo_hash), (
            f"run {runs}: reindex ended at height {result['height']} {why}")

    print(f"{kills} reindex runs killed midway of {runs} {why}")
    final = run_cli(node.datadir, "node", "reindex", json_out=True, timeout=120)
    assert final.returncode == 0, f"last reindex failed {why}: {final.stderr.strip()}"
    result = json.loads(final.stdout)
    assert result["height"] == BLOCKS, f"reindex ended at height {result['height']} {why}"
    assert (result["tip"], result["utxo_set_hash"]) == (tip, utxo_hash), why

    node.start()  # a full node: it opens the database and seals nothing
    assert node.rpc("getblockhash", BLOCKS) == tip
    info = node.rpc("getutxosetinfo")
    assert (info["height"], info["utxo_set_hash"]) == (BLOCKS, utxo_hash)


class Interrupted(Exception):
    pass


def test_node_start_refuses_an_unfinished_reindex_which_then_resumes(node_factory):
    spec = devnet()
    node = node_factory()
    tip, utxo_hash = write_chain(node.datadir, spec, 6)

    def die(p: ReindexProgress) -> None:
        if p.done == 3:
            raise Interrupted

    with Database(chaindata_path(node.datadir)) as db, pytest.raises(Interrupted):
        rebuild_chainstate(db, spec, progress=die)

    refused = node.cli("node", "start", "--no-listen", "--rpc-listen",
                       f"127.0.0.1:{node.rpc_port}")
    assert refused.returncode == 1
    assert refused.stderr == ("error: the chain database was left incomplete by an interrupted "
                              "reindex; run: o2ocli node reindex\n")
    out = node.cli("node", "reindex", json_out=True)
    assert out.returncode == 0, out.stderr
    assert out.stderr.startswith("resuming an interrupted reindex\n")
    resumed = json.loads(out.stdout)
    assert (resumed["height"], resumed["tip"], resumed["utxo_set_hash"]) == (6, tip, utxo_hash)
    node.start("--dev", "--dev-period", "0")
    assert node.rpc("getblockhash", 6) == tip

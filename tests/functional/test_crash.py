"""Crash safety (model: Bitcoin Core's feature_dbcrash.py).

A dev validator seals blocks while transactions stream in; it is SIGKILLed at
random moments 20+ times.  After every restart the chain must be consistent:
the tip is the one last seen or a later one, and the UTXO set hash equals
that of a reference chainstate that replays the node's own blocks.
"""

from __future__ import annotations

import random
import tempfile
import time

import pytest

from o2ocli.node.chain import ChainManager
from o2ocli.rpc.client import NodeUnreachable
from o2ocli.rpc.errors import RpcError
from o2ocli.storage.db import Database

from .framework import wait_until
from .payments import Payer, devnet, funds_key

KILLS = 20


def reference_utxo_hash(node, spec, height: int) -> str:
    """Replay the node's blocks 1..height into a fresh chainstate."""
    from o2ocli.core.block import Block

    with tempfile.TemporaryDirectory() as tmp, Database(tmp) as db:
        ref = ChainManager(db, spec)
        for h in range(1, height + 1):
            block = Block.from_bytes(bytes.fromhex(node.rpc("getblock", h, 0)))
            ref.add_block(block, now=2**62)
        assert ref.height == height
        return ref.state.utxo_stats().hash.hex()


@pytest.mark.slow
def test_sigkill_at_random_moments_never_corrupts_the_chain(node_factory):
    rng = random.Random(20261126)
    spec = devnet()
    node = node_factory()
    payer = Payer(spec, funds_key(spec))
    dest = funds_key(spec).public_key.hash160()
    last_tip: tuple[int, str] = (0, "")
    for round_ in range(KILLS):
        node.start("--dev", "--dev-period", "0")
        height = node.height()
        # Same tip as before the kill, or a later one.
        assert height >= last_tip[0], f"round {round_}: height went back"
        if last_tip[0]:
            assert node.rpc("getblockhash", last_tip[0]) == last_tip[1]
        payer.refresh(node)
        deadline_txs = rng.randint(5, 60)
        try:
            for _ in range(deadline_txs):
                node.rpc("sendrawtx", payer.pay(dest, 1000).to_bytes().hex())
            seen = node.height()
            last_tip = (seen, node.rpc("getblockhash", seen))
        except (NodeUnreachable, RpcError):
            pass
        time.sleep(rng.uniform(0.0, 1.5))  # blocks are being sealed and written meanwhile
        node.kill()
    node.start("--dev", "--dev-period", "0")
    payer.refresh(node)
    node.rpc("sendrawtx", payer.pay(dest, 1000).to_bytes().hex())
    wait_until(lambda: node.rpc("getmempool") == [], what="the last tx to be mined")
    info = node.rpc("getutxosetinfo")
    assert info["height"] >= last_tip[0] > 0
    assert info["utxo_set_hash"] == reference_utxo_hash(node, spec, info["height"])


@pytest.mark.slow
def test_sigkill_during_block_production_with_large_blocks(node_factory):
    """Kill while big blocks are being written (many txs per block)."""
    rng = random.Random(7)
    spec = devnet()
    node = node_factory()
    payer = Payer(spec, funds_key(spec))
    dest = funds_key(spec).public_key.hash160()
    for _ in range(5):
        node.start("--dev", "--dev-period", "1")
        payer.refresh(node)
        batch = [payer.pay(dest, 1000).to_bytes().hex() for _ in range(400)]
        node.rpc("sendrawtxs", batch)
        # Die somewhere around the next block being sealed and written.
        time.sleep(rng.uniform(0.0, 1.2))
        node.kill()
    node.start("--dev", "--dev-period", "1")
    height = node.height()
    assert height >= 1
    assert node.rpc("getutxosetinfo")["utxo_set_hash"] == reference_utxo_hash(node, spec, height)

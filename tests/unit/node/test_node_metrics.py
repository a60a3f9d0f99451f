"""The node's Prometheus metrics, counted by a real node in this process (LevelDB
in a temp dir, no peers, no producer): blocks connected, missed turns, mempool
acceptance and refusals by reason, and the gauges read at scrape time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from o2ocli.chainspec import ChainSpec, builtin_spec_path, spec_from_dict
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, Tx, TxIn, TxOut
from o2ocli.crypto.address import encode_address
from o2ocli.crypto.keys import PrivateKey
from o2ocli.node.datadir import init_datadir
from o2ocli.node.mempool import MempoolError
from o2ocli.node.producer import build_block
from o2ocli.node.runtime import Node, NodeConfig
from o2ocli.testing.chaingen import deterministic_key, p2a, sign_tx

CHAIN_ID = "o2o-metrics-test"
VERSION = 127
T0 = 1_700_000_000
PERIOD = 3


def addr(key: PrivateKey) -> bytes:
    return key.public_key.hash160()


VALIDATORS = sorted((deterministic_key(b"metrics-validator", i) for i in range(3)), key=addr)
FUNDS = deterministic_key(b"metrics-funds", 0)


def make_spec() -> ChainSpec:
    path = builtin_spec_path("devnet")
    assert path is not None
    data = json.loads(path.read_text(encoding="utf-8"))
    data["chain_id"] = CHAIN_ID
    data["address_version"] = VERSION
    data["genesis"] = {"time": T0, "allocations": [
        {"address": encode_address(addr(FUNDS), VERSION), "amount": "1000"}]}
    data["validators"] = [encode_address(addr(k), VERSION) for k in VALIDATORS]
    data["consensus"] = {"period": PERIOD, "epoch": 30_000, "max_future": 15}
    del data["dev_keys"]
    return spec_from_dict(data)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    spec = make_spec()
    init_datadir(tmp_path, spec)
    node = Node(NodeConfig(datadir=tmp_path, spec=spec, rpc_port=0, use_bootstrap=False,
                           discover=False))
    loop = asyncio.new_event_loop()
    loop.run_until_complete(node.start())
    # Count as validator 1 without running a producer (the test seals every block).
    node.validator_address = addr(VALIDATORS[1])
    yield node
    loop.run_until_complete(node.shutdown())
    loop.close()


def samples(node: Node) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = node.metrics.exposition().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def seal(node: Node, key: PrivateKey, height: int) -> None:
    block = build_block(node.chain, node.mempool, key, T0 + height * PERIOD)
    assert block.height == height
    change = node.submit_block(block, now=block.header.time, source=object())
    assert change.connected == (block,)


def test_blocks_and_missed_turns_are_counted(node: Node):
    v0, v1, v2 = VALIDATORS
    seal(node, v0, 1)  # height 1 is v1's turn (ours): v0 sealed it out of turn
    seal(node, v2, 2)  # v2 in turn
    seal(node, v1, 3)  # height 3 is v0's turn: v1 out of turn, not our miss
    got = samples(node)
    assert got[("o2o_missed_turns_total", ())] == 1
    assert got[("o2o_blocks_connected_total", ())] == 3
    assert got[("o2o_block_connect_seconds_count", ())] == 3
    assert got[("o2o_tip_height", ())] == 3
    assert got[("o2o_header_height", ())] == 3
    assert got[("o2o_tip_timestamp_seconds", ())] == T0 + 3 * PERIOD
    assert got[("o2o_validator", ())] == 0  # no producer runs
    assert got[("o2o_syncing", ())] == 0


def test_mempool_acceptance_and_refusals_by_reason(node: Node):
    coin = Outpoint(node.chain.genesis.txs[0].txid, 0)
    value = node.chain.state.get(coin).output.amount
    tx = sign_tx(Tx((TxIn(coin),), (TxOut(NATIVE_ASSET, value - 100_000,
                                              p2a(deterministic_key(b"dest", 0))),)),
                 [[FUNDS]], CHAIN_ID)
    node.submit_tx(tx)
    with pytest.raises(MempoolError):
        node.submit_tx(tx)
    results = node.submit_txs([tx])
    assert isinstance(results[0], MempoolError)
    got = samples(node)
    assert got[("o2o_txs_accepted_total", ())] == 1
    assert got[("o2o_txs_refused_total", (("reason", "txn-already-in-mempool"),))] == 2
    assert got[("o2o_mempool_txs", ())] == 1
    assert got[("o2o_mempool_bytes", ())] == node.mempool.total_bytes > 0


def test_each_node_has_its_own_registry(node: Node, tmp_path: Path):
    other = Node(NodeConfig(datadir=tmp_path / "other", spec=make_spec()))
    assert other.metrics.registry is not node.metrics.registry
    node.metrics.txs_accepted.inc()
    assert other.metrics.txs_accepted._value.get() == 0

"""Finality votes on a real 3-validator network: votes are gossiped and carried
in blocks, every node finalizes the same blocks, a node syncing from scratch
derives finality from the chain alone, a validator's last vote survives a
SIGKILL, and conflicting votes signed with a validator's key become evidence
reported by every node.

Real ``o2ocli node start`` processes on 127.0.0.1 (free ports); bounded waits.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from o2ocli.chainspec import load_spec
from o2ocli.consensus.finality import votes_conflict
from o2ocli.core.finality import FinalityVote, vote_digest
from o2ocli.node.datadir import read_key_file

from .framework import Network, wait_until

pytestmark = pytest.mark.slow


def final_hashes(node, upto: int | None = None) -> dict[int, str]:
    """height → main-chain hash for every height this node calls final."""
    final = node.rpc("getinfo")["finalized_height"]
    top = final if upto is None else min(final, upto)
    return {h: node.rpc("getblockhash", h) for h in range(max(1, top - 20), top + 1)}


def assert_agree(nodes) -> None:
    """No two nodes report different blocks as final at the same height."""
    seen: dict[int, str] = {}
    for node in nodes:
        for height, block_hash in final_hashes(node).items():
            assert seen.setdefault(height, block_hash) == block_hash, (
                f"conflicting final blocks at height {height}")


@pytest.fixture
def net(tmp_path, node_factory):
    network = Network(tmp_path, node_factory, validators=3)
    network.start_all()
    return network


def test_votes_finalize_the_same_blocks_everywhere_and_ride_in_blocks(net, node_factory):
    v1, v2, v3 = net.nodes
    wait_until(lambda: all(n.rpc("getinfo")["finalized_height"] >= 6 for n in net.nodes), 60,
               "every node to finalize height 6")
    assert_agree(net.nodes)
    info = v1.rpc("getfinality")
    assert info["quorum"] == 2
    assert info["justified_height"] >= info["finalized_height"]
    # Finality lags the tip by about one block, not by a third of the chain.
    status = v2.cli_json("node", "status")
    assert status["height"] - status["finalized_height"] <= 4
    assert status["accused_validators"] == []
    # The votes are carried in blocks: the chain alone proves finality.
    assert info["chain_finalized_height"] >= 3
    blocks = [v1.rpc("getblock", h) for h in range(2, 6)]
    assert any(b.get("votes") for b in blocks), "no block carried finality votes"

    # A full node syncing from scratch derives the same finality from the chain.
    full = net.add_full_node(node_factory, "full")
    full.start("--connect", v1.p2p_address)
    target = v1.rpc("getinfo")["finalized_height"]
    wait_until(lambda: full.rpc("getinfo")["finalized_height"] >= target, 60,
               "the full node to reach the same finality")
    assert_agree([*net.nodes, full])


def test_a_killed_validator_never_signs_a_conflicting_vote(net):
    v1, v2, v3 = net.nodes
    wait_until(lambda: v3.rpc("getinfo")["finalized_height"] >= 3, 60, "finality at 3")
    v3.kill()  # SIGKILL, mid-vote or not
    v3.start("--validator-key", net.key(2), "--connect", v1.p2p_address,
             "--connect", v2.p2p_address)
    start = v3.rpc("getinfo")["finalized_height"]
    wait_until(lambda: all(n.rpc("getinfo")["finalized_height"] >= start + 4 for n in net.nodes),
               60, "finality to go on after the restart")
    assert_agree(net.nodes)
    for node in net.nodes:
        assert node.rpc("listevidence")["evidence"] == [], f"{node.name} saw equivocation"


def test_conflicting_votes_become_evidence_on_every_node(net):
    """A test-only use of validator 3's key: two votes for different blocks at
    one height.  Every node keeps the evidence, reports the validator, and
    honest nodes go on finalizing the same blocks."""
    v1, v2, v3 = net.nodes
    wait_until(lambda: v1.rpc("getinfo")["finalized_height"] >= 3, 60, "finality at 3")
    spec = load_spec(net.spec_path)
    key = read_key_file(Path(net.key(2)), spec.wif_version)
    culprit = spec.address(key.public_key.hash160())
    info = v1.rpc("getfinality")
    source_height = info["finalized_height"]
    source = bytes.fromhex(info["finalized_hash"])
    height = v1.height()
    target = bytes.fromhex(v1.rpc("getblockhash", height))
    fake = bytes(31) + b"\x01"

    def signed(target_hash: bytes) -> FinalityVote:
        digest = vote_digest(spec.chain_id, source_height, source, height, target_hash)
        return FinalityVote(key.public_key.to_bytes(), source_height, source, height,
                            target_hash, key.sign(digest))

    # Two votes for one height: the real block there, and a block that does
    # not exist.  A double vote whichever one the node sees second (and the
    # first may already conflict with validator 3's own vote for that height).
    looks_honest, conflicting = signed(target), signed(fake)
    assert votes_conflict(looks_honest, conflicting) == "double"
    first = v1.rpc("submitvote", looks_honest.to_bytes().hex())
    assert first["result"] in ("new", "known", "conflict")
    second = v1.rpc("submitvote", conflicting.to_bytes().hex())
    assert second["result"] == "conflict" and second["evidence"]

    def reported(node) -> bool:
        return culprit in node.rpc("getinfo")["accused_validators"]

    wait_until(lambda: all(reported(n) for n in net.nodes), 60,
               "every node to report the equivocating validator")
    evidence = v2.cli_json("validator", "evidence")["evidence"]
    assert evidence and evidence[0]["validator"] == culprit
    assert evidence[0]["kind"] in ("double", "surround")
    listed = v3.cli_json("validator", "list")
    assert culprit in listed["accused"]
    status = v1.cli("node", "status")
    assert "EVIDENCE" in status.stdout and culprit in status.stdout
    # Evidence rides in a block too, so it is on the chain for syncing nodes.
    def carried() -> bool:
        top = v1.height()
        return any(v1.rpc("getblock", h).get("evidence") for h in range(height, top + 1))

    wait_until(carried, 30, "a block to carry the evidence")
    # Honest nodes keep finalizing the same blocks.
    final = v1.rpc("getinfo")["finalized_height"]
    wait_until(lambda: all(n.rpc("getinfo")["finalized_height"] > final for n in net.nodes), 60,
               "finality to continue")
    assert_agree(net.nodes)

"""The RPC methods about validators, finality, peers and the node process,
called directly on a real in-process devnet node."""

from __future__ import annotations

import dataclasses

import pytest
from node_harness import STRANGER, NodeHarness

from o2ocli.core.finality import FinalityVote, vote_digest
from o2ocli.crypto.keys import PrivateKey
from o2ocli.node.methods import finality, network, validators
from o2ocli.rpc import errors as E


@pytest.fixture
def h(tmp_path):
    harness = NodeHarness(tmp_path)
    yield harness
    harness.close()


@pytest.fixture
def hp(tmp_path):
    """A node with peer-to-peer networking (listening on 127.0.0.1)."""
    harness = NodeHarness(tmp_path, p2p=True)
    yield harness
    harness.close()


def signed_vote(h: NodeHarness, key: PrivateKey, source: int, target: int) -> FinalityVote:
    state = h.node.chain.state
    s_hash, t_hash = state.get_block_hash(source), state.get_block_hash(target)
    digest = vote_digest(h.spec.chain_id, source, s_hash, target, t_hash)
    return FinalityVote(key.public_key.to_bytes(), source, s_hash, target, t_hash,
                        key.sign(digest))


# -- validators ----------------------------------------------------------------


def test_getvalidators_shows_the_set_and_whose_turn(h):
    info = h.call(validators.getvalidators)
    me = h.address(h.validator)
    assert info == {"validators": [me], "in_turn": me, "signer_limit": info["signer_limit"],
                    "pending_votes": [], "proposals": [], "finalized_height": 0,
                    "accused": []}


def test_propose_and_discard(h):
    stranger = h.address(STRANGER)
    not_validator = h.error(validators.propose, stranger)
    assert not_validator.code == E.MISC_ERROR
    # The node's context says it validates (as a node started with a key would;
    # no producer runs, so nothing seals behind the test's back).
    h.node.validator_address = h.validator.public_key.hash160()
    assert h.error(validators.propose, stranger, "yes").code == E.INVALID_PARAMS
    assert h.error(validators.propose, "nope").code == E.INVALID_ADDRESS
    added = h.call(validators.propose, stranger)
    assert added == {"proposals": [{"address": stranger, "action": "add"}]}
    removal = h.call(validators.propose, stranger, False)
    assert removal == {"proposals": [{"address": stranger, "action": "remove"}]}
    assert h.call(validators.getvalidators)["proposals"] == removal["proposals"]
    assert h.call(validators.discard, stranger) == {"proposals": []}
    assert h.error(validators.discard, stranger).code == E.NOT_FOUND
    assert h.error(validators.discard, 5).code == E.INVALID_ADDRESS


# -- finality ------------------------------------------------------------------


def test_finality_view_before_any_vote(h):
    h.mine()
    view = h.call(finality.getfinality)
    assert (view["finalized_height"], view["justified_height"], view["quorum"],
            view["links"], view["pool_votes"]) == (0, 0, 1, [], 0)
    assert view["finalized_hash"] == h.node.chain.genesis.hash.hex()
    assert h.call(finality.listevidence) == {"evidence": []}


def test_submitvote_counts_a_validator_vote_once(h):
    h.mine()
    h.mine()
    vote = signed_vote(h, h.validator, 0, 1)
    assert h.call(finality.submitvote, vote.to_bytes().hex()) == {"result": "new",
                                                                   "evidence": None}
    assert h.call(finality.submitvote, vote.to_bytes().hex()) == {"result": "known",
                                                                   "evidence": None}
    view = h.call(finality.getfinality)
    assert view["pool_votes"] == 1 and view["justified_height"] == 1
    assert view["links"] == [{"source_height": 0, "target_height": 1,
                              "voters": [h.address(h.validator)]}]
    outsider = signed_vote(h, STRANGER, 1, 2)
    assert h.call(finality.submitvote, outsider.to_bytes().hex())["result"] == "ignored"


def test_submitvote_refuses_what_is_no_valid_vote(h):
    h.mine()
    vote = signed_vote(h, h.validator, 0, 1)
    assert h.error(finality.submitvote, 7).code == E.INVALID_PARAMS
    assert h.error(finality.submitvote, "zz").code == E.INVALID_PARAMS
    assert h.error(finality.submitvote, vote.to_bytes().hex()[:-2]).code == E.INVALID_PARAMS
    forged = dataclasses.replace(vote, target_height=2)
    refused = h.error(finality.submitvote, forged.to_bytes().hex())
    assert refused.code == E.TX_REJECTED and "bad-vote-signature" in refused.message
    assert h.call(finality.getfinality)["pool_votes"] == 0


# -- network -------------------------------------------------------------------


@pytest.mark.parametrize(("method", "args"), [
    (network.getpeerinfo, []),
    (network.getaddrmaninfo, []),
    (network.addpeer, ["127.0.0.1:1"]),
    (network.ban, ["10.0.0.1"]),
    (network.unban, ["10.0.0.1"]),
    (network.setnetworkactive, [False]),
])
def test_peer_methods_need_networking(h, method, args):
    assert h.call(network.getpeerinfo)["listen"] is None  # running, not listening
    h.loop.run_until_complete(h.node.p2p.stop())  # as the node's shutdown does
    h.node.p2p = None
    assert h.error(method, *args).code == E.MISC_ERROR


@pytest.mark.parametrize(("method", "args"), [
    (network.addpeer, [5]),
    (network.addpeer, ["no-port"]),
    (network.addpeer, ["host:0"]),
    (network.addpeer, ["host:70000"]),
    (network.ban, [5]),
    (network.ban, [""]),
    (network.ban, ["x" * 254]),
    (network.ban, ["10.0.0.1", 0]),
    (network.ban, ["10.0.0.1", "60"]),
    (network.unban, [None]),
    (network.setnetworkactive, ["yes"]),
])
def test_peer_methods_refuse_bad_params(hp, method, args):
    assert hp.error(method, *args).code == E.INVALID_PARAMS


def test_peer_info_bans_and_network_switch(hp):
    info = hp.call(network.getpeerinfo)
    assert info["peers"] == [] and info["network_active"] is True
    assert info["listen"] == f"127.0.0.1:{hp.node.p2p.listen_port}"
    assert isinstance(hp.call(network.getaddrmaninfo), dict)
    banned = hp.call(network.ban, "10.1.2.3", 60)
    assert banned["banned"] == "10.1.2.3" and banned["until"] > 0
    assert "10.1.2.3" in str(hp.call(network.getpeerinfo)["banned"])
    assert hp.error(network.addpeer, "10.1.2.3:9").code == E.MISC_ERROR
    assert hp.call(network.unban, "10.1.2.3") == {"unbanned": "10.1.2.3"}
    assert hp.error(network.unban, "10.1.2.3").code == E.NOT_FOUND
    assert hp.call(network.setnetworkactive, False) == {"network_active": False}
    assert hp.call(network.getpeerinfo)["network_active"] is False
    assert hp.call(network.setnetworkactive, True) == {"network_active": True}


def test_stop_asks_the_node_to_shut_down(h):
    assert not h.node._stop.is_set()
    assert h.call(network.stop) == "o2ocli node stopping"
    assert h.node._stop.is_set()

"""ChainManager: PoA header rules, fork choice, finality, snapshots, reindex.

Everything is real: a 3-validator spec validated by ``spec_from_dict``, blocks
made and sealed by :func:`o2ocli.node.producer.build_block` (honest difficulty
from the parent snapshot), signed payments, and LevelDB in a temp dir.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from o2ocli.chainspec import ChainSpec, builtin_spec_path, spec_from_dict
from o2ocli.consensus.errors import BlockInvalid
from o2ocli.consensus.poa import (
    DIFF_IN_TURN,
    DIFF_NO_TURN,
    ForkChoiceKey,
    Snapshot,
    Vote,
    prefer_chain,
    seal_header,
)
from o2ocli.core.block import (
    VOTE_ADD,
    VOTE_NONE,
    Block,
    BlockHeader,
    block_commitment,
    merkle_root,
)
from o2ocli.core.finality import FinalityVote, vote_digest
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, Tx, TxIn, TxOut
from o2ocli.crypto.address import encode_address
from o2ocli.crypto.hashes import sha256d
from o2ocli.crypto.keys import PrivateKey
from o2ocli.node.chain import (
    DERIVED_PREFIXES,
    ChainManager,
    ReindexProgress,
    ReindexRequired,
    rebuild_chainstate,
)
from o2ocli.node.mempool import Mempool
from o2ocli.node.producer import Proposals, build_block
from o2ocli.storage import schema as k
from o2ocli.storage.chainstate import SchemaMismatch, TipChange
from o2ocli.storage.db import Database
from o2ocli.testing.chaingen import deterministic_key, p2a, sign_tx

CHAIN_ID = "o2o-cm-test"
VERSION = 127
T0 = 1_700_000_000
PERIOD = 2
COIN = 10**8
COINS = 4
COIN_VALUE = 1000 * COIN


def addr(key: PrivateKey) -> bytes:
    return key.public_key.hash160()


VALIDATORS = sorted((deterministic_key(b"cm-validator", i) for i in range(3)), key=addr)
V0, V1, V2 = VALIDATORS
FUNDS = deterministic_key(b"cm-funds", 0)
OUTSIDER = deterministic_key(b"cm-outsider", 0)


def make_spec(*, epoch: int = 30_000, period: int = PERIOD) -> ChainSpec:
    path = builtin_spec_path("devnet")
    assert path is not None
    data = json.loads(path.read_text(encoding="utf-8"))
    data["name"] = "cmtest"
    data["chain_id"] = CHAIN_ID
    data["address_version"] = VERSION
    funds = encode_address(addr(FUNDS), VERSION)
    data["genesis"] = {
        "time": T0,
        "allocations": [{"address": funds, "amount": "1000"} for _ in range(COINS)],
    }
    data["validators"] = [encode_address(addr(k), VERSION) for k in reversed(VALIDATORS)]
    data["consensus"] = {"period": period, "epoch": epoch, "max_future": 15}
    del data["dev_keys"]
    return spec_from_dict(data)


class Net:
    """A chain manager on a fresh LevelDB plus helpers to seal blocks on it."""

    def __init__(self, path: Path, spec: ChainSpec) -> None:
        self.path = path
        self.spec = spec
        self.db = Database(path)
        self.chain = ChainManager(self.db, spec, clock=lambda: T0 + 10**6)
        self.pool = self.new_pool()
        genesis_tx = self.chain.genesis.txs[0]
        self.coins = [Outpoint(genesis_tx.txid, i) for i in range(COINS)]

    def new_pool(self) -> Mempool:
        return Mempool(
            self.chain.state, self.spec.consensus_params, min_fee_rate=self.spec.min_relay_fee
        )

    def reopen(self) -> None:
        self.db.close()
        self.db = Database(self.path)
        self.chain = ChainManager(self.db, self.spec, clock=lambda: T0 + 10**6)
        self.pool = self.new_pool()

    def in_turn_key(self) -> PrivateKey:
        snap = self.chain.tip_snapshot()
        wanted = snap.in_turn(self.chain.height + 1)
        return next(k for k in VALIDATORS + [OUTSIDER] if addr(k) == wanted)

    def block(
        self,
        key: PrivateKey | None = None,
        *,
        pool: Mempool | None = None,
        now: int | None = None,
        proposals: Proposals | None = None,
    ) -> Block:
        """The next block on the tip, sealed by ``key`` (default: the in-turn one)."""
        key = key or self.in_turn_key()
        now = self.chain.tip.header.time + PERIOD if now is None else now
        return build_block(
            self.chain, pool or self.new_pool(), key, now, proposals, random.Random(7)
        )

    def add(self, block: Block, now: int | None = None) -> TipChange:
        return self.chain.add_block(block, now=block.header.time if now is None else now)

    def seal(self, key: PrivateKey | None = None, **kw: object) -> Block:
        block = self.block(key, **kw)
        change = self.add(block)
        assert change.connected == (block,)
        return block

    def vote(self, *keys: PrivateKey) -> list[FinalityVote]:
        """Each key votes for the tip as an honest validator does (persisted
        first), and the votes are counted as if gossiped."""
        votes = []
        for key in keys:
            vote = self.chain.finality.make_own_vote(key)
            assert vote is not None, "the finality rules refused an honest vote"
            outcome, _ = self.chain.finality.add_vote(vote)
            assert outcome == "new"
            votes.append(vote)
        self.chain.on_votes_changed()
        return votes

    def payment(self, coin: int, fee: int) -> Tx:
        dest = deterministic_key(b"cm-dest", coin)
        tx = Tx(
            (TxIn(self.coins[coin]),), (TxOut(NATIVE_ASSET, COIN_VALUE - fee, p2a(dest)),)
        )
        return sign_tx(tx, [[FUNDS]], CHAIN_ID)


@pytest.fixture
def net(tmp_path):
    n = Net(tmp_path / "db", make_spec())
    yield n
    n.db.close()


def reason(fn, *args, **kw) -> str:
    with pytest.raises(BlockInvalid) as info:
        fn(*args, **kw)
    return info.value.reason


def resealed(block: Block, key: PrivateKey, **changes: object) -> Block:
    header = dataclasses.replace(block.header, **changes)
    return Block(seal_header(header, key, CHAIN_ID), block.txs)


def fork_key(net: Net, block: Block) -> ForkChoiceKey:
    entry = net.chain.state.get_index(block.hash)
    assert entry is not None
    validators = net.chain.snapshot(block.header.prev_hash).validators
    signer = block.header.seal_pubkey
    index = [k.public_key.to_bytes() for k in VALIDATORS].index(signer)
    assert validators[index] == addr(VALIDATORS[index])
    return ForkChoiceKey(entry.total_difficulty, block.height, index, len(validators), block.hash)


# ------------------------------------------------------------- header rules
def test_spec_validators_are_sorted_and_genesis_snapshot_stored(net):
    assert net.chain.spec.validators == tuple(addr(k) for k in VALIDATORS)
    assert net.chain.tip_snapshot() == Snapshot(0, tuple(addr(k) for k in VALIDATORS))
    assert net.chain.height == 0
    assert net.chain.finalized_height == 0


def test_in_turn_blocks_connect(net):
    for height in range(1, 7):
        key = net.in_turn_key()
        assert addr(key) == addr(VALIDATORS[height % 3])
        block = net.block(key)
        assert block.header.difficulty == DIFF_IN_TURN
        assert block.header.time == T0 + PERIOD * height
        change = net.add(block)
        assert change == TipChange(connected=(block,))
        assert net.chain.tip.hash == block.hash
        assert net.chain.sealer_of(net.chain.tip) == addr(key)
    assert net.chain.height == 6
    assert net.chain.tip.total_difficulty == 6 * DIFF_IN_TURN
    snap = net.chain.tip_snapshot()
    assert snap.height == 6
    # The last `limit` (2) sealers: the next block's pruning keeps only height 6.
    assert snap.recents == ((5, addr(V2)), (6, addr(V0)))


def test_out_of_turn_block_connects_with_difficulty_one(net):
    block = net.block(V0)  # height 1 is V1's turn
    assert block.header.difficulty == DIFF_NO_TURN
    assert net.add(block).connected == (block,)
    assert net.chain.tip.total_difficulty == DIFF_NO_TURN


def test_block_by_non_validator_is_refused(net):
    block = net.block(OUTSIDER)
    assert reason(net.add, block) == "bad-poa-unauthorized"
    assert net.chain.height == 0
    assert net.chain.state.get_index(block.hash) is None


def test_same_validator_twice_in_a_row_is_refused(net):
    first = net.seal(V1)
    again = net.block(V1)
    assert reason(net.add, again) == "bad-poa-recently-signed"
    assert net.chain.tip.hash == first.hash
    # With 3 validators the window is 2: V1 may seal again after one other block.
    net.seal(V2)
    net.seal(V1)
    assert net.chain.height == 3


@pytest.mark.parametrize(("key", "wrong"), [(V1, DIFF_NO_TURN), (V0, DIFF_IN_TURN), (V1, 3)])
def test_wrong_difficulty_is_refused(net, key, wrong):
    honest = net.block(key)
    assert honest.header.difficulty != wrong
    bad = resealed(honest, key, difficulty=wrong)
    assert reason(net.add, bad) == "bad-poa-difficulty"
    assert net.add(honest).connected == (honest,)


def test_block_before_parent_time_plus_period_is_refused(net):
    net.seal()
    key = net.in_turn_key()
    honest = net.block(key)
    parent_time = net.chain.tip.header.time
    early = resealed(honest, key, time=parent_time + PERIOD - 1)
    assert reason(net.add, early, now=parent_time + 100) == "bad-poa-time-too-early"
    on_time = resealed(honest, key, time=parent_time + PERIOD)
    assert net.add(on_time, now=parent_time + 100).connected == (on_time,)


def test_block_too_far_in_the_future_is_refused(net):
    block = net.block(now=T0 + 100)
    assert block.header.time == T0 + 100
    assert reason(net.add, block, now=T0 + 100 - 16) == "bad-poa-time-future"
    assert net.chain.height == 0
    assert net.add(block, now=T0 + 100 - 15).connected == (block,)


def test_block_time_uses_the_clock_when_now_is_omitted(tmp_path):
    spec = make_spec()
    with Database(tmp_path / "db") as db:
        chain = ChainManager(db, spec, clock=lambda: T0)
        block = build_block(
            chain, Mempool(chain.state, spec.consensus_params, min_fee_rate=1000), V1, T0 + 30
        )
        assert reason(chain.add_block, block) == "bad-poa-time-future"
        chain.clock = lambda: T0 + 15
        assert chain.add_block(block).connected == (block,)


def test_tampered_seal_is_refused(net):
    key = net.in_turn_key()
    honest = net.block(key)
    sig = bytearray(honest.header.seal_signature)
    sig[5] ^= 0x01
    flipped = Block(dataclasses.replace(honest.header, seal_signature=bytes(sig)), honest.txs)
    assert reason(net.add, flipped) == "bad-poa-seal"
    # A seal moved to another validator's public key does not verify either.
    stolen = Block(
        dataclasses.replace(honest.header, seal_pubkey=V0.public_key.to_bytes()), honest.txs
    )
    assert reason(net.add, stolen) == "bad-poa-seal"
    # Nor does a header changed after sealing.
    moved = Block(dataclasses.replace(honest.header, time=honest.header.time + 1), honest.txs)
    assert reason(net.add, moved) == "bad-poa-seal"
    assert net.chain.height == 0
    assert net.add(honest).connected == (honest,)


def test_block_sealed_for_another_chain_is_refused(net):
    honest = net.block(V1)
    other = Block(seal_header(honest.header, V1, "o2o-other"), honest.txs)
    assert reason(net.add, other) == "bad-poa-seal"


# -------------------------------------------------------------- fork choice
@pytest.mark.parametrize("order", ["v2-first", "v0-first"])
def test_competing_out_of_turn_blocks_follow_eip3436(net, order):
    tx = net.payment(0, fee=20_000)
    net.pool.accept(tx, T0)
    # Height 1 is V1's turn: V0 and V2 both seal out of turn (difficulty 1).
    b0 = net.block(V0)  # empty
    b2 = net.block(V2, pool=net.pool)  # carries the payment and a fee claim
    assert b0.header.difficulty == b2.header.difficulty == DIFF_NO_TURN
    assert tx in b2.txs
    first, second = (b2, b0) if order == "v2-first" else (b0, b2)
    change1 = net.add(first)
    assert change1.connected == (first,)
    if first is b2:
        net.pool.remove_for_block(b2)
        assert tx.txid not in net.pool
    change2 = net.add(second)

    k0, k2 = fork_key(net, b0), fork_key(net, b2)
    assert k0.total_difficulty == k2.total_difficulty and k0.height == k2.height
    winner = b0 if prefer_chain(k0, k2) else b2
    # (1 - 0) % 3 = 1 beats (1 - 2) % 3 = 2: V0's head is preferred.
    assert winner is b0
    assert net.chain.tip.hash == winner.hash
    if order == "v2-first":
        assert change2 == TipChange(disconnected=(b2,), connected=(b0,))
        back = [t for block in reversed(change2.disconnected) for t in block.txs]
        net.pool.readd_txs(back, T0 + 5)
        assert [e.txid for e in net.pool.entries()] == [tx.txid]
        assert net.chain.state.get_tx(tx.txid) is None
        assert net.chain.state.get(net.coins[0]) is not None
        assert net.chain.state.get(Outpoint(b2.txs[0].txid, 0)) is None  # V2's fee claim
    else:
        assert not change2
        assert net.chain.state.get_index(b2.hash) is not None  # stored as a side branch


def test_in_turn_block_beats_out_of_turn_block(net):
    out_of_turn = net.block(V2)
    in_turn = net.block(V1)
    net.add(out_of_turn)
    change = net.add(in_turn)
    assert change == TipChange(disconnected=(out_of_turn,), connected=(in_turn,))
    assert net.chain.tip.total_difficulty == DIFF_IN_TURN


def test_lower_height_wins_at_equal_total_difficulty(net):
    # Main: V1 in turn at height 1 (2).  Branch: V2 then V0, both out of turn (1 + 1):
    # the same total difficulty at a greater height, so the main chain stays.
    main = net.seal(V1)
    genesis = net.chain.state.get_index(main.header.prev_hash)
    assert genesis is not None
    b1 = build_block_on(net, genesis.hash, V2, T0 + PERIOD)
    net.add(b1)
    b2 = build_block_on(net, b1.hash, V0, T0 + 2 * PERIOD)
    assert b2.header.difficulty == DIFF_NO_TURN  # height 2 is V2's turn
    change = net.add(b2)
    assert not change
    assert net.chain.tip.hash == main.hash
    assert net.chain.state.get_index(b2.hash).total_difficulty == main.header.difficulty


def build_block_on(net: Net, parent_hash: bytes, key: PrivateKey, now: int) -> Block:
    """A block on a stored, possibly non-tip block (temporarily viewing it as tip)."""
    entry = net.chain.state.get_index(parent_hash)
    assert entry is not None
    snap = net.chain.snapshot(parent_hash)
    height = entry.height + 1
    header = BlockHeader(
        height,
        parent_hash,
        merkle_root([]),
        max(entry.header.time + PERIOD, now),
        DIFF_IN_TURN if snap.in_turn(height) == addr(key) else DIFF_NO_TURN,
        checkpoint=snap.validators if height % net.spec.epoch == 0 else (),
    )
    return Block(seal_header(header, key, CHAIN_ID), ())


# ----------------------------------------------------------------- finality
def test_seals_alone_never_finalize(net):
    """The split seen under load: V1 seals 1 out of turn, V2 builds 2 on it.
    Two distinct sealers used to make block 1 final; with votes nothing is."""
    net.seal(V1)
    net.seal(V2)
    net.seal(V0)
    assert net.chain.finalized_height == 0
    assert net.chain.finality.view(net.chain.tip).best_justified[0] == 0


def test_finality_needs_a_quorum_of_votes_and_guards_reorgs(net):
    genesis_hash = net.chain.tip.hash
    b1 = net.seal(V1)
    net.vote(V1)
    assert net.chain.finalized_height == 0  # 1 of 3 votes: nothing justified
    assert net.chain.finality.view(net.chain.tip).best_justified == (0, genesis_hash)
    net.vote(V2)  # 2 of 3 = ceil(2*3/3): block 1 justified
    assert net.chain.finality.view(net.chain.tip).best_justified == (1, b1.hash)
    assert net.chain.finalized_height == 0
    b2 = net.seal(V2)
    net.vote(V1, V2)  # links 1 -> 2 from two validators: 1 final
    assert net.chain.finalized_height == 1
    assert net.chain.finalized_hash == b1.hash

    # A heavier branch from genesis (below the finalized height) is not adopted.
    parent = genesis_hash
    for height, key in ((1, V0), (2, V2), (3, V0)):
        block = build_block_on(net, parent, key, T0 + height * PERIOD)
        assert not net.add(block)
        parent = block.hash
    f3 = block
    heavy = net.chain.state.get_index(f3.hash)
    assert heavy is not None and heavy.total_difficulty > net.chain.tip.total_difficulty
    assert net.chain.tip.hash == b2.hash
    assert net.chain.finalized_height == 1

    # A heavier branch forking at the finalized block loses to the tip's
    # higher justified block (fork choice: justified first) ...
    g2 = build_block_on(net, b1.hash, V0, T0 + 2 * PERIOD)
    assert not net.add(g2)
    g3 = build_block_on(net, g2.hash, V2, T0 + 3 * PERIOD)
    assert not net.add(g3)
    g4 = build_block_on(net, g3.hash, V1, T0 + 4 * PERIOD)
    assert not net.add(g4)
    assert net.chain.tip.hash == b2.hash
    # ... until a quorum justifies a higher block on it: then the node follows.
    for key in (V0, V2):
        digest = vote_digest(CHAIN_ID, 1, b1.hash, 3, g3.hash)
        vote = FinalityVote(key.public_key.to_bytes(), 1, b1.hash, 3, g3.hash, key.sign(digest))
        assert net.chain.finality.add_vote(vote)[0] == "new"
    change = net.chain.on_votes_changed()
    assert change == TipChange(disconnected=(b2,), connected=(g2, g3, g4))
    assert net.chain.tip.hash == g4.hash
    assert net.chain.finality.view(net.chain.tip).best_justified == (3, g3.hash)
    assert net.chain.finalized_height == 1  # 1 -> 3 skips a height: nothing new final

    # The branch below the finalized block is still refused after a restart
    # (the finalized block is persisted).
    net.reopen()
    assert net.chain.tip.hash == g4.hash
    assert net.chain.finalized_height == 1
    assert net.chain.finalized_hash == b1.hash
    assert not net.chain.add_block(f3, now=T0 + 100)
    assert net.chain.tip.hash == g4.hash


def test_finalized_height_follows_the_tip_with_votes(net):
    for height in range(1, 6):
        net.seal()
        net.vote(V0, V1, V2)
        assert net.chain.finalized_height == height - 1
    # The votes are carried by later blocks: the chain alone proves finality.
    tip_state = net.chain.finality.state(net.chain.tip.hash)
    assert tip_state.finalized[0] == 3  # votes for 5 are not in a block yet


def test_a_validator_never_signs_two_conflicting_votes_even_after_restart(net):
    net.seal(V1)
    first = net.chain.finality.make_own_vote(V1)
    assert first is not None and first.target_height == 1
    net.reopen()  # the last vote is on disk
    assert net.chain.finality.make_own_vote(V1) is None  # same target: would be a double vote
    assert net.chain.finality.last_own_vote(addr(V1)) == (0, 1)
    net.seal(V2)
    second = net.chain.finality.make_own_vote(V1)
    assert second is not None and (second.source_height, second.target_height) == (0, 2)


def test_finality_goes_on_after_every_node_restarts_with_gossip_only_justification(net):
    """Block 2's producer had not seen the votes for block 1 yet, so block 1 is
    justified by gossiped votes only when V0 and V1 vote 1 -> 2 (persisted).
    Then every node restarts (an upgrade) before a block carries those votes:
    the gossip is gone, block 1 is justified nowhere, and V0 and V1 may never
    again vote from a source below 1: with 2 of 3 stuck, nothing was ever
    final again.  A validator now keeps the votes behind its vote's source
    with its own last vote, and gossips them again after a restart."""
    b1 = net.seal()
    early = [net.chain.finality.make_own_vote(key) for key in (V0, V1, V2)]
    b2 = net.seal()
    assert b2.votes == ()
    for vote in early:
        assert vote is not None and net.chain.finality.add_vote(vote)[0] == "new"
    net.chain.on_votes_changed()
    assert net.chain.finality.view(net.chain.tip).best_justified == (1, b1.hash)
    for key in (V0, V1):
        vote = net.chain.finality.make_own_vote(key)
        assert vote is not None and (vote.source_height, vote.target_height) == (1, 2)
    net.reopen()
    assert net.chain.finality.last_own_vote(addr(V0)) == (1, 2)
    assert net.chain.finalized_height == 1  # the restored votes link 1 -> 2
    for _ in range(3):
        net.seal()
        net.vote(V0, V1, V2)  # each would refuse a vote if V0/V1 were stuck
    assert net.chain.finalized_height == net.chain.height - 1


def test_a_vote_recounts_only_the_tips_of_side_branches(net, monkeypatch):
    """Every incoming vote re-runs the fork choice over the recent side blocks.
    It used to compute the view of each of them (each walking its branch back
    to the main chain): a healed partition's 300-block losing branch cost half
    a second per vote.  Only the side branch's tip needs a view."""
    for _ in range(30):
        net.seal()
    parent, prev = net.chain.genesis.hash, None
    for height in range(1, 31):
        wanted = net.chain.snapshot(parent).in_turn(height)
        key = next(k for k in VALIDATORS if addr(k) not in (wanted, prev))
        side = build_block_on(net, parent, key, T0 + height * PERIOD + 1)
        assert not net.add(side, now=T0 + 10**6)
        parent, prev = side.hash, addr(key)
    finality = net.chain.finality
    computed: list[bytes] = []
    real_view = finality.view

    def counting_view(entry):
        if finality._views.get(entry.hash, (None,))[0] != finality.pool.version:
            computed.append(entry.hash)
        return real_view(entry)

    monkeypatch.setattr(finality, "view", counting_view)
    tip = net.chain.tip
    vote = signed_vote(V0, (0, net.chain.genesis.hash), (tip.height, tip.hash))
    assert finality.add_vote(vote)[0] == "new"
    assert not net.chain.on_votes_changed()
    assert set(computed) <= {tip.hash, side.hash}, f"{len(computed)} views for one vote"


def test_the_chain_carries_finality_again_after_two_restarts(net):
    """As above, then a block without votes (its producer lacked them) and a
    second restart of every node.  The votes kept with an own vote must be
    those the *chain* needs, not only those above this node's finalized
    block: else the votes that justified block 1 are gone for good, no block
    can carry a vote from a source at or above 1 ever again, and a node that
    syncs from the chain never sees anything final."""
    b1 = net.seal()
    early = [net.chain.finality.make_own_vote(key) for key in (V0, V1, V2)]
    b2 = net.seal()
    for vote in early:
        assert vote is not None and net.chain.finality.add_vote(vote)[0] == "new"
    for key in (V0, V1):
        assert net.chain.finality.make_own_vote(key) is not None  # 1 -> 2
    net.reopen()
    assert net.chain.finalized_height == 1
    b3 = build_block_on(net, b2.hash, V0, T0 + 3 * PERIOD)
    assert net.add(b3).connected == (b3,)
    for key in (V0, V1):
        vote = net.chain.finality.make_own_vote(key)
        assert vote is not None and (vote.source_height, vote.target_height) == (2, 3)
    net.reopen()
    for _ in range(3):
        net.seal()
        net.vote(V0, V1, V2)
    tip = net.chain.tip
    assert net.chain.finality.state(tip.hash).finalized[0] >= 3, (
        "the blocks no longer carry finality", b1.hash.hex())


def test_a_finality_stall_adds_a_bounded_state_per_block(net):
    """Only V0 votes (1 of 3: no quorum) while blocks keep coming, as when too
    many validators are offline.  Every block stores its branch's finality
    state, and each stalled block adds a link: the state stored per block must
    stop growing after a few hundred blocks (it grew to 4096 links, ~120 KB
    per block for one voter, ~280 KB for three: gigabytes a day)."""
    sizes = {}
    for height in range(1, 601):
        net.seal()
        vote = net.chain.finality.make_own_vote(V0)
        assert vote is not None and net.chain.finality.add_vote(vote)[0] == "new"
        net.chain.on_votes_changed()
        if height in (300, 600):
            sizes[height] = len(net.db.get(k.FINALITY + net.chain.tip.hash))
    assert net.chain.finalized_height == 0
    assert sizes[600] == sizes[300] < 10_000, sizes
    # When the stall ends (V1 votes for the tip again) finality resumes.
    net.seal()
    net.vote(V0, V1)
    net.seal()
    net.vote(V0, V1)
    assert net.chain.finalized_height == net.chain.height - 1


def test_conflicting_gossiped_votes_become_evidence(net):
    b1 = net.seal(V1)
    side = build_block_on(net, net.chain.genesis.hash, V0, T0 + PERIOD)
    net.add(side)
    votes = []
    for target in (b1, side):
        digest = vote_digest(CHAIN_ID, 0, net.chain.genesis.hash, 1, target.hash)
        votes.append(FinalityVote(V2.public_key.to_bytes(), 0, net.chain.genesis.hash, 1,
                                  target.hash, V2.sign(digest)))
    assert net.chain.finality.add_vote(votes[0])[0] == "new"
    outcome, evidence = net.chain.finality.add_vote(votes[1])
    assert outcome == "conflict" and evidence is not None
    assert evidence.signer == addr(V2)
    assert net.chain.finality.accused() == {addr(V2)}
    # The next block carries the evidence; a block carrying it again is refused.
    b2 = net.seal(V2)
    assert b2.evidence == (evidence,)
    net.reopen()
    assert net.chain.finality.accused() == {addr(V2)}
    plain = build_block_on(net, b2.hash, V0, T0 + 3 * PERIOD)
    header = dataclasses.replace(plain.header, version=2,
                                 merkle_root=block_commitment(2, (), (), (evidence,)))
    again = Block(seal_header(header, V0, CHAIN_ID), (), (), (evidence,))
    assert reason(net.add, again) == "bad-evidence-duplicate"


def test_gossiped_evidence_is_bounded_to_validators(net):
    """Anyone can make a key and sign two conflicting votes with it: evidence
    against a key that is no validator is not stored nor relayed (it used to
    grow the store and the relay without bound), and an equivocating
    validator's evidence is kept a few times, not once per pair it signs."""
    from o2ocli.core.finality import Evidence
    from o2ocli.node.finality import MAX_EVIDENCE_PER_VALIDATOR

    finality = net.chain.finality
    genesis = (0, net.chain.genesis.hash)

    def pair(key: PrivateKey, height: int) -> Evidence:
        return Evidence.of(signed_vote(key, genesis, (height, sha256d(b"a%d" % height))),
                           signed_vote(key, genesis, (height, sha256d(b"b%d" % height))))

    for i in range(5):
        stranger = deterministic_key(b"cm-stranger", i)
        assert not finality.add_evidence(pair(stranger, 1))
    assert finality.evidence == {}
    assert list(net.db.iterate(k.EVIDENCE)) == []
    kept = [finality.add_evidence(pair(V2, height)) for height in range(1, 20)]
    assert kept.count(True) == MAX_EVIDENCE_PER_VALIDATOR
    assert len(list(net.db.iterate(k.EVIDENCE))) == MAX_EVIDENCE_PER_VALIDATOR
    assert finality.accused() == {addr(V2)}


# -------------------------------------------------------- snapshots & votes
def test_vote_adds_a_validator_once_a_majority_voted(net):
    newcomer = OUTSIDER
    proposals = Proposals({addr(newcomer): True})
    assert reason(net.add, net.block(newcomer)) == "bad-poa-unauthorized"

    b1 = net.seal(V1, proposals=proposals)
    assert (b1.header.vote_kind, b1.header.vote_address) == (VOTE_ADD, addr(newcomer))
    snap1 = net.chain.tip_snapshot()
    assert snap1.validators == tuple(addr(k) for k in VALIDATORS)
    assert snap1.votes == (Vote(addr(V1), addr(newcomer), True, 1),)
    assert net.chain.snapshot(b1.hash) == snap1

    b2 = net.seal(V2, proposals=proposals)  # 2 of 3: a majority
    assert b2.header.vote_kind == VOTE_ADD
    snap2 = net.chain.tip_snapshot()
    assert addr(newcomer) in snap2.validators and len(snap2.validators) == 4
    assert snap2.validators == tuple(sorted(snap2.validators))
    assert snap2.votes == ()
    # The earlier snapshots are kept per block.
    assert net.chain.snapshot(b1.hash) == snap1

    # The proposal is no longer meaningful: the next block carries no vote.
    b3 = net.block(V0, proposals=proposals)
    assert b3.header.vote_kind == VOTE_NONE
    # The newcomer may now seal.
    b3 = net.block(newcomer)
    assert net.add(b3).connected == (b3,)


def test_single_vote_does_not_change_the_set(net):
    proposals = Proposals({addr(OUTSIDER): True})
    net.seal(V1, proposals=proposals)
    net.seal(V2)
    net.seal(V0)
    assert len(net.chain.tip_snapshot().validators) == 3
    assert [v.signer for v in net.chain.tip_snapshot().votes] == [addr(V1)]


def test_snapshots_and_finality_survive_reopen(net):
    proposals = Proposals({addr(OUTSIDER): True})
    tx = net.payment(1, fee=5_000)
    net.pool.accept(tx, T0)
    blocks = [net.seal(V1, pool=net.pool, proposals=proposals)]
    net.vote(V1, V2)
    blocks.append(net.seal(V2))
    net.vote(V1, V2)
    blocks.append(net.seal(V0))
    before = {b.hash: net.chain.snapshot(b.hash) for b in blocks}
    net.vote(V0, V1)
    tip, final = net.chain.tip.hash, net.chain.finalized_height
    utxo = net.chain.state.utxo_set_hash()
    assert final == 2

    net.reopen()
    assert net.chain.tip.hash == tip
    assert net.chain.finalized_height == final
    assert net.chain.state.utxo_set_hash() == utxo
    assert {h: net.chain.snapshot(h) for h in before} == before
    assert net.chain.state.get_tx(tx.txid) is not None
    # And the reopened chain keeps applying the rules with those snapshots.
    assert reason(net.add, net.block(V0)) == "bad-poa-recently-signed"
    net.seal()
    assert net.chain.height == 4


# ------------------------------------------------------------------ reindex
def test_reindex_rebuilds_the_same_state_and_reports_progress(net):
    for coin, fee in ((0, 3_000), (1, 7_000)):
        net.pool.accept(net.payment(coin, fee), T0)
    main = []
    for height in range(1, 5):
        votes = Proposals({addr(OUTSIDER): True}) if height == 1 else None
        block = net.seal(pool=net.pool, proposals=votes)
        net.pool.remove_for_block(block)
        main.append(block)
    # A stale side block at height 4 (out of turn, loses to the in-turn tip).
    side = build_block_on(net, main[2].hash, V2, T0 + 4 * PERIOD)
    assert not net.add(side)
    stats = net.chain.state.utxo_stats()
    snaps = {b.hash: net.chain.snapshot(b.hash) for b in main}
    final = net.chain.finalized_height
    commits = {b.hash: net.chain.state.utxo_stats(b.hash) for b in main}

    progress: list[ReindexProgress] = []
    height = net.chain.reindex(progress.append)

    assert height == 4 == net.chain.height
    assert net.chain.tip.hash == main[-1].hash
    assert net.chain.state.utxo_stats() == stats
    assert net.chain.finalized_height == final
    assert {h: net.chain.snapshot(h) for h in snaps} == snaps
    # The UTXO commitment of every main-chain block was deleted and rebuilt.
    assert {h: net.chain.state.utxo_stats(h) for h in commits} == commits
    assert [p.done for p in progress] == [1, 2, 3, 4, 5]
    assert {p.total for p in progress} == {5}
    assert [p.height for p in progress] == sorted(p.height for p in progress)
    assert progress[-1].height == 4
    assert net.chain.state.get_index(side.hash) is not None
    assert not net.chain.state.is_main_chain(net.chain.state.get_index(side.hash))
    # The rebuilt chain keeps going.
    net.pool = net.new_pool()
    net.seal()
    assert net.chain.height == 5


def test_reindex_of_a_fresh_chain(net):
    progress: list[ReindexProgress] = []
    assert net.chain.reindex(progress.append) == 0
    assert progress == []
    assert net.chain.tip.hash == net.chain.genesis.hash
    assert net.chain.state.utxo_stats().count == COINS


def test_reindex_keeps_a_branch_refused_below_the_finalized_height(net):
    # Main chain: four out-of-turn blocks (total difficulty 4), each voted for
    # by two validators; the votes ride in the next blocks, so the chain alone
    # finalizes block 2.
    main = []
    for key in (V0, V1, V2, V0):
        main.append(net.seal(key))
        net.vote(V1, V2)
    assert [b.header.difficulty for b in main] == [DIFF_NO_TURN] * 4
    assert net.chain.finality.state(main[-1].hash).finalized[0] == 2
    # A heavier branch from genesis (two in-turn blocks, total 4) arrives later: refused.
    f1 = build_block_on(net, net.chain.genesis.hash, V1, T0 + PERIOD)
    assert not net.add(f1)
    f2 = build_block_on(net, f1.hash, V2, T0 + 2 * PERIOD)
    assert not net.add(f2)
    f3 = build_block_on(net, f2.hash, V0, T0 + 3 * PERIOD)
    assert not net.add(f3)
    assert net.chain.state.get_index(f3.hash).total_difficulty == 6 > net.chain.tip.total_difficulty
    assert net.chain.tip.hash == main[-1].hash
    stats = net.chain.state.utxo_stats()

    net.chain.reindex()

    # A reindex must not reorganise below the finalized height either.
    tip = net.chain.tip
    assert tip.hash == main[-1].hash, (
        f"reindex moved the tip to height {tip.height} "
        f"({'the refused branch' if tip.hash == f3.hash else 'another block'})"
    )
    assert net.chain.state.utxo_stats() == stats
    assert net.chain.finalized_height >= 2


def test_reindex_keeps_the_address_book_and_bans(tmp_path):
    """Reindex rebuilds chain state only: peers and bans (not derived from the
    blocks) survive it."""
    from o2ocli.chainspec import load_spec
    from o2ocli.node.chain import ChainManager as Manager
    from o2ocli.storage.db import Database as DB

    with DB(tmp_path / "db") as db:
        chain = Manager(db, load_spec("devnet"))
        with db.write_batch() as batch:
            batch.put(b"n127.0.0.9:18444", b'{"seen": 1}')
            batch.put(b"x127.0.0.66", (2**40).to_bytes(8, "big"))
        assert chain.reindex() == 0
        assert db.get(b"n127.0.0.9:18444") == b'{"seen": 1}'
        assert db.get(b"x127.0.0.66") == (2**40).to_bytes(8, "big")
        assert chain.state.has_tx(chain.genesis.txs[0].txid)
        assert not chain.state.has_tx(bytes(32))


# ------------------------------------------------------------ vote gossip bounds
def signed_vote(key: PrivateKey, source: tuple[int, bytes], target: tuple[int, bytes],
                chain_id: str = CHAIN_ID) -> FinalityVote:
    digest = vote_digest(chain_id, source[0], source[1], target[0], target[1])
    return FinalityVote(key.public_key.to_bytes(), source[0], source[1], target[0], target[1],
                        key.sign(digest))


def test_gossiped_votes_are_checked_and_bounded(net):
    from o2ocli.node.finality import (
        MAX_PENDING_VOTES,
        MAX_PENDING_VOTES_PER_SIGNER,
        MAX_POOL_VOTES_PER_SIGNER,
    )

    finality = net.chain.finality
    genesis = (0, net.chain.genesis.hash)
    b1 = net.seal(V1)
    # Invalid whatever the receiver knows: refused with a reason (the sender is punished).
    forged = dataclasses.replace(signed_vote(V1, genesis, (1, b1.hash)), target_height=2)
    assert reason(finality.add_vote, forged) == "bad-vote-signature"
    other_chain = signed_vote(V1, genesis, (1, b1.hash), chain_id="another-chain")
    assert reason(finality.add_vote, other_chain) == "bad-vote-signature"
    backwards = signed_vote(V1, (1, b1.hash), genesis)
    assert reason(finality.add_vote, backwards) == "bad-vote-order"
    # Depends on the receiver's view: kept or dropped, never an error.
    assert finality.add_vote(signed_vote(OUTSIDER, genesis, (1, b1.hash)))[0] == "ignored"
    assert len(finality.pool) == 0
    # A flood of votes for blocks nobody has: bounded per key and in all.
    for i in range(MAX_PENDING_VOTES + 100):
        unknown = (5 + i, sha256d(i.to_bytes(4, "big")))
        assert finality.add_vote(signed_vote(V0, genesis, unknown))[0] == "pending"
    assert len(finality.pending) == MAX_PENDING_VOTES_PER_SIGNER
    assert len(finality.pending) <= MAX_PENDING_VOTES
    # Votes of one validator beyond the per-key bound: the highest targets stay.
    for _ in range(MAX_POOL_VOTES_PER_SIGNER + 5):
        net.seal()
    tip = net.chain.height
    for target in range(1, tip + 1):
        block_hash = net.chain.state.get_block_hash(target)
        finality.add_vote(signed_vote(V2, (target - 1, net.chain.state.get_block_hash(
            target - 1)), (target, block_hash)))
    mine = [v for v, signer in finality.pool.votes.values() if signer == addr(V2)]
    assert len(mine) == MAX_POOL_VOTES_PER_SIGNER
    assert max(v.target_height for v in mine) == tip


def test_a_vote_waiting_for_its_block_survives_a_flood(net):
    """Votes often arrive before their block.  A flood of validly signed votes
    for unknown blocks, from made-up keys or from one validator, used to push
    the honest waiting vote out of the bounded pending pool, so it was never
    counted here."""
    from o2ocli.node.finality import MAX_PENDING_VOTES

    finality = net.chain.finality
    genesis = (0, net.chain.genesis.hash)
    b1 = net.block(V1)
    early = signed_vote(V2, genesis, (1, b1.hash))
    assert finality.add_vote(early)[0] == "pending"
    for i in range(MAX_PENDING_VOTES):
        unknown = (2 + i, sha256d(b"flood%d" % i))
        stranger = deterministic_key(b"cm-stranger", i % 8)
        finality.add_vote(signed_vote(stranger, genesis, unknown))
        finality.add_vote(signed_vote(V0, genesis, unknown))
    assert net.add(b1).connected == (b1,)
    assert early in finality.retry_pending()
    assert early.id in finality.pool


def test_votes_from_keys_that_are_no_validator_cost_no_signature_check(net, monkeypatch):
    """Anyone can make keys and sign votes: a peer streaming 256 such votes
    per message made this node verify every signature, only to ignore the
    votes.  Votes from a validator are still verified (and a bad signature
    is still refused, the sender punished)."""
    import o2ocli.node.finality as node_finality

    finality = net.chain.finality
    genesis = (0, net.chain.genesis.hash)
    b1 = net.seal(V1)
    checked: list[bytes] = []
    real_check = node_finality.check_vote_signature

    def counting_check(vote, chain_id):
        checked.append(vote.id)
        return real_check(vote, chain_id)

    monkeypatch.setattr(node_finality, "check_vote_signature", counting_check)
    for i in range(50):
        stranger = deterministic_key(b"cm-stranger", i)
        for target in ((1, b1.hash), (9, sha256d(b"unknown%d" % i))):
            assert finality.add_vote(signed_vote(stranger, genesis, target))[0] == "ignored"
    assert checked == []
    forged = dataclasses.replace(signed_vote(V1, genesis, (1, b1.hash)), target_height=2)
    assert reason(finality.add_vote, forged) == "bad-vote-signature"
    assert finality.add_vote(signed_vote(V2, genesis, (1, b1.hash)))[0] == "new"
    assert len(checked) == 2


# ------------------------------------------------- reindex interrupted (issue 14)
class SimulatedKill(BaseException):
    """Stands for SIGKILL: nothing below catches it."""


class KilledAfter(Database):
    """A real LevelDB whose process 'dies' when it starts write batch number
    ``batches + 1``: the first ``batches`` batches are committed, the rest never
    happen (LevelDB applies each batch atomically, so this is every state a
    SIGKILL can leave behind)."""

    def __init__(self, path: Path, batches: int) -> None:
        super().__init__(path)
        self.left = batches
        self.written = 0

    @contextmanager
    def write_batch(self, *, sync: bool = True) -> Iterator[Any]:
        if self.left == 0:
            raise SimulatedKill
        self.left -= 1
        self.written += 1
        with super().write_batch(sync=sync) as batch:
            yield batch


def dump(path: Path) -> dict[bytes, bytes]:
    with Database(path) as db:
        return dict(db.iterate(b""))


def chain_with_a_side_block(net: Net) -> tuple[list[Block], Block]:
    """Four main blocks (payments, a vote) and a stale side block at height 4."""
    for coin, fee in ((0, 3_000), (1, 7_000)):
        net.pool.accept(net.payment(coin, fee), T0)
    main = []
    for height in range(1, 5):
        votes = Proposals({addr(OUTSIDER): True}) if height == 1 else None
        block = net.seal(pool=net.pool, proposals=votes)
        net.pool.remove_for_block(block)
        main.append(block)
    side = build_block_on(net, main[2].hash, V2, T0 + 4 * PERIOD)
    assert not net.add(side)
    return main, side


def branch_refused_below_finality(net: Net) -> tuple[list[Block], Block]:
    """Four out-of-turn main blocks (finalized at 2 by votes the blocks carry)
    and a heavier branch from genesis that arrived later and was refused:
    replayed in the wrong order, it would win."""
    main = []
    for key in (V0, V1, V2, V0):
        main.append(net.seal(key))
        net.vote(V1, V2)
    assert net.chain.finality.state(main[-1].hash).finalized[0] == 2
    f1 = build_block_on(net, net.chain.genesis.hash, V1, T0 + PERIOD)
    assert not net.add(f1)
    f2 = build_block_on(net, f1.hash, V2, T0 + 2 * PERIOD)
    assert not net.add(f2)
    f3 = build_block_on(net, f2.hash, V0, T0 + 3 * PERIOD)
    assert not net.add(f3)
    assert net.chain.state.get_index(f3.hash).total_difficulty > net.chain.tip.total_difficulty
    return main, f3


KILL_SEED = int(os.environ.get("O2O_REINDEX_KILL_SEED", "14"))


@pytest.mark.parametrize("scenario", [chain_with_a_side_block, branch_refused_below_finality])
def test_reindex_killed_before_any_write_resumes_to_the_same_database(net, tmp_path, scenario):
    """Kill the reindex before each of its write batches in turn (then kill the
    resumed run too, at a seeded random batch): the database always reopens
    through a reindex, which ends exactly where an uninterrupted one does."""
    main, side = scenario(net)
    tip, stats = net.chain.tip.hash, net.chain.state.utxo_stats()
    net.db.close()
    pristine = tmp_path / "pristine"
    shutil.copytree(net.path, pristine)
    # The reference: one uninterrupted reindex, counting its write batches.
    reference_path = tmp_path / "reference"
    shutil.copytree(pristine, reference_path)
    with KilledAfter(reference_path, 10**9) as db:
        chain = rebuild_chainstate(db, net.spec)
        assert (chain.tip.hash, chain.state.utxo_stats()) == (tip, stats)
        batches = db.written
    reference = dump(reference_path)
    assert batches > 10

    rng = random.Random(KILL_SEED)
    for cut in range(batches):
        again = rng.randrange(batches)
        why = (f"killed before write batch {cut + 1} of {batches}, then before {again + 1} "
               f"(O2O_REINDEX_KILL_SEED={KILL_SEED})")
        path = tmp_path / f"cut{cut}"
        shutil.copytree(pristine, path)
        with KilledAfter(path, cut) as db, pytest.raises(SimulatedKill):
            rebuild_chainstate(db, net.spec)
        with Database(path) as db:
            if cut == 0:  # nothing was written yet: the old chainstate is intact
                assert ChainManager(db, net.spec).tip.hash == tip, why
            else:
                with pytest.raises(ReindexRequired, match="run: o2ocli node reindex"):
                    ChainManager(db, net.spec)
        with KilledAfter(path, again) as db:  # the resumed run is killed too, perhaps
            try:
                rebuild_chainstate(db, net.spec)
            except SimulatedKill:
                pass
        with Database(path) as db:
            chain = rebuild_chainstate(db, net.spec)
            assert chain.tip.hash == tip == main[-1].hash, why
            assert chain.state.utxo_stats() == stats, why
            assert not chain.state.is_main_chain(chain.state.get_index(side.hash)), why
        assert dump(path) == reference, why
        with Database(path) as db:  # and it is a normal chainstate again
            assert ChainManager(db, net.spec).tip.hash == tip, why
        shutil.rmtree(path)


@pytest.mark.parametrize("deleted", [
    (k.INDEX,),  # what the old reindex removed in its first batches
    (k.INDEX, k.HEIGHT, k.META),
    DERIVED_PREFIXES,  # everything: only the bodies are left
])
def test_reindex_recovers_every_block_from_the_bodies_alone(net, deleted):
    """An interrupted reindex of an older o2ocli (no marker) left only part of
    the derived data: the block index is gone, but every body is still there."""
    main, side = chain_with_a_side_block(net)
    tip, stats, final = net.chain.tip.hash, net.chain.state.utxo_stats(), net.chain.finalized_height
    snaps = {b.hash: net.chain.snapshot(b.hash) for b in [*main, side]}
    with net.db.write_batch() as batch:
        for prefix in deleted:
            for key in net.db.iterate_keys(prefix):
                batch.delete(key)

    chain = rebuild_chainstate(net.db, net.spec)

    assert chain.tip.hash == tip
    assert chain.state.utxo_stats() == stats
    assert chain.finalized_height == final
    assert {h: chain.snapshot(h) for h in snaps} == snaps
    assert not chain.state.is_main_chain(chain.state.get_index(side.hash))
    net.db.close()
    with Database(net.path) as db:
        assert ChainManager(db, net.spec).tip.hash == tip


def test_a_database_of_an_older_schema_is_refused_until_a_reindex_rebuilds_it(net):
    main, side = chain_with_a_side_block(net)
    tip, stats = net.chain.tip.hash, net.chain.state.utxo_stats()
    with net.db.write_batch() as batch:  # what an o2ocli before the burn index wrote
        batch.put(k.META_SCHEMA, (2).to_bytes(4, "big"))
    with pytest.raises(SchemaMismatch, match="schema 2, from an older o2ocli.*"
                                             "run: o2ocli node reindex"):
        ChainManager(net.db, net.spec)

    chain = rebuild_chainstate(net.db, net.spec)

    assert (chain.tip.hash, chain.state.utxo_stats()) == (tip, stats)
    assert net.db.get(k.META_SCHEMA) == k.SCHEMA_VERSION.to_bytes(4, "big")
    assert ChainManager(net.db, net.spec).tip.hash == tip


def test_reindex_starts_again_when_its_partial_state_cannot_be_resumed(net):
    main, side = chain_with_a_side_block(net)
    tip, stats = net.chain.tip.hash, net.chain.state.utxo_stats()

    def die(p: ReindexProgress) -> None:
        if p.done == 2:
            raise SimulatedKill

    with pytest.raises(SimulatedKill):
        rebuild_chainstate(net.db, net.spec, progress=die)
    with net.db.write_batch() as batch:  # damage no reindex leaves behind
        batch.delete(k.META_TIP)

    chain = rebuild_chainstate(net.db, net.spec)

    assert (chain.tip.hash, chain.state.utxo_stats()) == (tip, stats)
    assert chain.state.get_index(side.hash) is not None

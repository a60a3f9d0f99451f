"""Governance rules both ways, on a real chainstate (LevelDB, signed txs, hand-built blocks).

Genesis coin ``i`` belongs to ``KEYS[i % 5]``.  Roles: 0 proposes, 1 (B) and
2 (C) hold coins and vote, 3 is the merchant, 4 (D) a customer.  Block 1 is
the snapshot of the proposals made in it: it also holds D's purchase from
the merchant, and C spends genesis coin 7 (so it was spent at the snapshot).
Block 2 gives B a new coin (created after the snapshot).
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from o2ocli.consensus.errors import BlockInvalid
from o2ocli.consensus.gov import GOV_OUTPOINT, read_ballot, spent_at
from o2ocli.consensus.params import ConsensusParams
from o2ocli.core.payloads import (
    NO_PAYLOAD,
    WEIGHT_CUSTOMERS,
    WEIGHT_TOKENS,
    GovProposal,
    GovVote,
    KeySig,
    vote_sig_digest,
)
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, Tx, TxIn, TxOut
from o2ocli.node.methods.gov import compute_tally
from o2ocli.storage import ChainState, Database, schema
from o2ocli.testing.chaingen import deterministic_key, make_block, make_genesis, p2a, sign_tx

CHAIN_ID = "o2o-gov-test"
COIN = 1_000_000
FEE = 100
DEPOSIT = 5_000
KEYS = [deterministic_key(b"o2o-gov-tests", i) for i in range(5)]
PROPOSER, B, C, MERCHANT, D = range(5)
PARAMS = ConsensusParams(CHAIN_ID, min_purchase=1_000, gov_deposit=DEPOSIT)
GENESIS = make_genesis(CHAIN_ID, [TxOut(NATIVE_ASSET, COIN + i, p2a(KEYS[i % 5]))
                                  for i in range(60)])
VOTING_BLOCKS = 8


def h160(i):
    return KEYS[i].public_key.hash160()


def g(i):
    """Genesis coin ``i`` (owned by ``KEYS[i % 5]``), as (outpoint, owner)."""
    return Outpoint(GENESIS.txs[0].txid, i), i % 5


def wire(op: Outpoint) -> bytes:
    return op.txid + op.index.to_bytes(4, "little")


def native(amount, owner):
    return TxOut(NATIVE_ASSET, amount, p2a(KEYS[owner]))


def spend(inputs, outputs, payload=NO_PAYLOAD, burn=0):
    """A tx spending ``inputs`` ((outpoint, owner)); a vote's keys sign it bound to the inputs.
    Without ``outputs``, the first input's owner gets its coin back less fee and burn."""
    if outputs is None:
        op, owner = inputs[0]
        outputs = [native(GENESIS.txs[0].outputs[op.index].amount - FEE - burn, owner)]
    if isinstance(payload, GovVote):
        digest = vote_sig_digest(payload, CHAIN_ID, [wire(op) for op, _ in inputs])
        by_pub = {k.public_key.to_bytes(): k for k in KEYS}
        payload = replace(payload, keys=tuple(
            KeySig(p.pubkey, by_pub[p.pubkey].sign(digest)) for p in payload.keys))
    tx = Tx(tuple(TxIn(op) for op, _ in inputs), tuple(outputs), payload=payload)
    return sign_tx(tx, [[KEYS[owner]] for _, owner in inputs], CHAIN_ID)


def proposal(weight=WEIGHT_TOKENS, options=(b"yes", b"no", b"later"), merchant=None,
             deposit=DEPOSIT, blocks=VOTING_BLOCKS):
    return GovProposal(b"Open on Sundays?", b"", tuple(options), weight, NATIVE_ASSET, merchant,
                       blocks, deposit)


def vote(pid, option, outpoints=(), keys=(B,), purchase=None):
    return GovVote(pid, option, tuple(wire(op) for op in outpoints), purchase,
                   tuple(KeySig(KEYS[k].public_key.to_bytes(), bytes(64)) for k in keys))


class Chain:
    """A chainstate with the scenario's first two blocks, and a spare-coin dispenser."""

    def __init__(self, path):
        self.state = ChainState(Database(path), PARAMS, GENESIS)
        self.spare = {k: [g(i) for i in range(20, 60) if i % 5 == k] for k in range(5)}
        self.tokens = spend([g(0)], None, proposal(), burn=DEPOSIT)
        self.customers = spend([g(5)], None, proposal(WEIGHT_CUSTOMERS, merchant=h160(MERCHANT)),
                               burn=DEPOSIT)
        self.purchase = spend([g(4)], [native(50_000, MERCHANT), native(COIN + 4 - 50_000 - FEE,
                                                                          D)])
        self.early_spend = spend([g(7)], None)
        # a coin created and spent within the snapshot block
        self.chained = spend([(Outpoint(self.early_spend.txid, 0), C)],
                             [native(amount(7) - 2 * FEE, C)])
        self.mine(self.tokens, self.customers, self.purchase, self.early_spend, self.chained)
        self.late_coin = spend([g(11)], None)
        self.mine(self.late_coin)

    def fee_coin(self, owner):
        return self.spare[owner].pop()

    def cast(self, pid, option, outpoints=(), keys=(B,), purchase=None):
        """A vote tx paying its fee with a spare coin of ``keys[0]``."""
        return spend([self.fee_coin(keys[0])], None, vote(pid, option, outpoints, keys, purchase))

    def mine(self, *txs):
        block = make_block(self.state.tip.header, list(txs))
        self.state.add_block(block)
        assert self.state.tip.hash == block.hash
        return block

    def refused(self, *txs) -> str:
        tip = self.state.tip.hash
        with pytest.raises(BlockInvalid) as err:
            self.state.add_block(make_block(self.state.tip.header, list(txs)))
        assert self.state.tip.hash == tip
        return err.value.reason

    def tally(self, pid, options=3):
        return list(compute_tally(self.state, pid, options).weights)


@pytest.fixture
def chain(tmp_path) -> Chain:
    return Chain(tmp_path / "db")


def amount(i):
    return COIN + i


# --------------------------------------------------------------------------- proposals


def test_a_proposal_records_snapshot_and_end_and_burns_its_deposit(chain):
    record = chain.state.gov_proposal(chain.tokens.txid)
    assert (record.snapshot, record.end, record.options) == (1, 1 + VOTING_BLOCKS, 3)
    assert record.deposit == DEPOSIT
    # the burned deposit is no fee: the tx's outputs are its input less fee and deposit
    assert sum(o.amount for o in chain.tokens.outputs) == amount(0) - FEE - DEPOSIT


@pytest.mark.parametrize("payload, reason", [
    (proposal(deposit=DEPOSIT - 1), "bad-gov-deposit-too-small"),
    (proposal(options=(b"only",)), "bad-gov-options"),
    (proposal(options=tuple(b"o%d" % i for i in range(17))), "bad-gov-options"),
    (proposal(blocks=0), "bad-gov-voting-blocks"),
    (proposal(weight=WEIGHT_CUSTOMERS), "bad-gov-merchant"),
    (proposal(merchant=h160(MERCHANT)), "bad-gov-merchant"),
])
def test_bad_proposals_are_refused(chain, payload, reason):
    assert chain.refused(spend([chain.fee_coin(PROPOSER)], None, payload,
                               burn=payload.deposit)) == reason


def test_sixteen_options_and_the_exact_deposit_are_accepted(chain):
    payload = proposal(options=tuple(b"o%d" % i for i in range(16)))
    chain.mine(spend([chain.fee_coin(PROPOSER)], None, payload, burn=DEPOSIT))


def test_a_proposal_must_really_burn_its_deposit(chain):
    coin = chain.fee_coin(PROPOSER)
    tx = spend([coin], [native(amount(coin[0].index) - FEE, PROPOSER)], proposal())
    assert chain.refused(tx) == "bad-gov-deposit-not-burned"


# --------------------------------------------------------------------------- tokens votes


def test_a_vote_counts_the_coins_held_at_the_snapshot(chain):
    pid = chain.tokens.txid
    chain.mine(chain.cast(pid, 2, [g(1)[0], g(6)[0]]))
    assert chain.tally(pid) == [0, amount(1) + amount(6), 0]
    ballot = read_ballot(chain.state, pid, h160(B))
    assert (ballot.option, ballot.height) == (2, 3)


def test_the_last_vote_counts_and_replaces_the_whole_ballot(chain):
    pid = chain.tokens.txid
    chain.mine(chain.cast(pid, 1, [g(1)[0], g(6)[0]]))
    chain.mine(chain.cast(pid, 3, [g(1)[0]]))
    assert chain.tally(pid) == [0, 0, amount(1)]
    # g(6) was released by the replacement: nobody holds it any more
    assert chain.state.read((GOV_OUTPOINT.name, pid + wire(g(6)[0]))) is None


def test_an_outpoint_twice_in_one_vote_is_refused(chain):
    pid = chain.tokens.txid
    assert chain.refused(chain.cast(pid, 1, [g(1)[0], g(1)[0]])) == \
        "bad-gov-vote-duplicate-outpoint"


def test_another_voter_cannot_vote_with_a_counted_outpoint_before_or_after_it_moves(chain):
    pid = chain.tokens.txid
    chain.mine(chain.cast(pid, 1, [g(1)[0]]))
    # C as voter, B co-signing for its coin: the coin already votes in B's ballot
    assert chain.refused(chain.cast(pid, 2, [g(1)[0], g(2)[0]], keys=(C, B))) == \
        "bad-gov-vote-outpoint-used"
    # B moves the coin to C after the snapshot
    moved = spend([g(1)], [native(amount(1) - FEE, C)])
    chain.mine(moved)
    assert spent_at(chain.state, g(1)[0]) == 4
    assert chain.refused(chain.cast(pid, 2, [g(1)[0], g(2)[0]], keys=(C, B))) == \
        "bad-gov-vote-outpoint-used"
    # the new owner cannot vote with the old outpoint, nor with the coin it became
    assert chain.refused(chain.cast(pid, 2, [g(1)[0]], keys=(C,))) == "bad-gov-vote-not-owner"
    assert chain.refused(chain.cast(pid, 2, [Outpoint(moved.txid, 0)], keys=(C,))) == \
        "bad-gov-vote-outpoint-after-snapshot"
    # B itself may still change its vote with the moved coin (it held it at the snapshot)
    chain.mine(chain.cast(pid, 2, [g(1)[0]]))
    assert chain.tally(pid) == [0, amount(1), 0]


def test_the_same_voter_revoting_with_a_moved_outpoint_counts_it_once(chain):
    pid = chain.tokens.txid
    chain.mine(chain.cast(pid, 1, [g(1)[0]]))
    chain.mine(spend([g(1)], [native(amount(1) - FEE, C)]))
    chain.mine(chain.cast(pid, 1, [g(1)[0]]))
    assert chain.tally(pid) == [amount(1), 0, 0]


def test_coins_created_after_or_spent_by_the_snapshot_do_not_vote(chain):
    pid = chain.tokens.txid
    late = Outpoint(chain.late_coin.txid, 0)  # B's coin from block 2
    assert chain.refused(chain.cast(pid, 1, [late])) == "bad-gov-vote-outpoint-after-snapshot"
    assert spent_at(chain.state, g(7)[0]) == 1
    assert chain.refused(chain.cast(pid, 1, [g(7)[0]], keys=(C,))) == \
        "bad-gov-vote-outpoint-spent"
    # a coin created and spent within the snapshot block was not there at the snapshot either
    made = Outpoint(chain.early_spend.txid, 0)
    assert spent_at(chain.state, made) == 1
    assert chain.refused(chain.cast(pid, 1, [made], keys=(C,))) == "bad-gov-vote-outpoint-spent"


def test_a_coin_of_another_key_needs_that_key(chain):
    pid = chain.tokens.txid
    assert chain.refused(chain.cast(pid, 1, [g(2)[0]])) == "bad-gov-vote-not-owner"


def test_a_vote_signature_must_verify_and_cannot_be_replayed(chain):
    pid = chain.tokens.txid
    good = chain.cast(pid, 1, [g(1)[0]])
    # the same signed payload in another tx (other inputs) does not verify
    replay = sign_tx(Tx((TxIn(chain.fee_coin(B)[0]),), (native(COIN, B),), payload=good.payload),
                     [[KEYS[B]]], CHAIN_ID)
    assert chain.refused(replay) == "bad-txns-signature"


@pytest.mark.parametrize("option", [0, 4])
def test_an_option_out_of_range_is_refused(chain, option):
    pid = chain.tokens.txid
    assert chain.refused(chain.cast(pid, option, [g(1)[0]])) == "bad-gov-vote-option"


def test_votes_are_accepted_up_to_the_end_height_only(chain):
    pid = chain.tokens.txid
    while chain.state.height < 1 + VOTING_BLOCKS - 1:
        chain.mine()
    chain.mine(chain.cast(pid, 1, [g(1)[0]]))  # at the end height
    assert chain.state.height == 1 + VOTING_BLOCKS
    assert chain.refused(chain.cast(pid, 2, [g(1)[0]])) == "bad-gov-vote-ended"


def test_a_vote_on_an_unknown_proposal_is_refused(chain):
    assert chain.refused(chain.cast(bytes(32), 1, [g(1)[0]])) == "bad-gov-vote-no-proposal"


# --------------------------------------------------------------------------- customers votes


def test_a_customer_votes_once_with_a_purchase_however_rich(chain):
    pid = chain.customers.txid
    chain.mine(chain.cast(pid, 1, keys=(D,), purchase=chain.purchase.txid))
    chain.mine(chain.cast(pid, 2, keys=(D,), purchase=chain.purchase.txid))
    assert chain.tally(pid) == [0, 1, 0]


def test_customer_votes_without_or_with_someone_elses_purchase_are_refused(chain):
    pid = chain.customers.txid
    # C names D's purchase: C is no buyer of it
    assert chain.refused(chain.cast(pid, 1, keys=(C,), purchase=chain.purchase.txid)) == \
        "bad-gov-vote-not-buyer"
    # a tx that paid nobody's merchant is no purchase from it
    assert chain.refused(chain.cast(pid, 1, keys=(C,), purchase=chain.early_spend.txid)) == \
        "bad-gov-vote-wrong-merchant"
    # a purchase mined after the snapshot does not count
    later = spend([chain.fee_coin(C)], [native(50_000, MERCHANT), native(COIN - 60_000, C)])
    chain.mine(later)
    assert chain.refused(chain.cast(pid, 1, keys=(C,), purchase=later.txid)) == \
        "bad-gov-vote-no-purchase"
    # outpoints are no customer vote
    assert chain.refused(chain.cast(pid, 1, [g(4)[0]], keys=(D,),
                                    purchase=chain.purchase.txid)) == "bad-gov-vote-shape"


# --------------------------------------------------------------------------- reorgs


def test_tallies_follow_a_reorg_and_votes_are_re_mined(chain):
    pid = chain.tokens.txid
    fork = chain.state.tip.header
    v1 = chain.cast(pid, 1, [g(1)[0], g(6)[0]])
    v2 = chain.cast(pid, 2, [g(2)[0]], keys=(C,))
    move = spend([g(12)], [native(amount(12) - FEE, B)])
    chain.mine(v1, v2, move)
    v1b = chain.cast(pid, 3, [g(1)[0]])
    chain.mine(v1b)
    assert chain.tally(pid) == [0, amount(2), amount(1)]
    # a heavier branch from the fork orphans both vote blocks
    other1 = make_block(fork, [], difficulty=3)
    other2 = make_block(other1.header, [], difficulty=3)
    chain.state.add_block(other1)
    chain.state.add_block(other2)
    assert chain.state.tip.hash == other2.hash
    assert chain.tally(pid) == [0, 0, 0]
    assert list(chain.state.db.iterate(schema.GOV_BALLOT)) == []
    assert list(chain.state.db.iterate(schema.GOV_OUTPOINT)) == []
    assert spent_at(chain.state, g(12)[0]) is None
    # the orphaned votes are mined again on the new branch, in order
    chain.mine(v1, v2, move)
    chain.mine(v1b)
    assert chain.tally(pid) == [0, amount(2), amount(1)]
    assert read_ballot(chain.state, pid, h160(B)).height == 6  # re-mined two blocks higher
    assert spent_at(chain.state, g(12)[0]) == 5
    # and disconnecting them restores the branch's state exactly
    chain.state.disconnect_tip()
    chain.state.disconnect_tip()
    assert chain.tally(pid) == [0, 0, 0]
    assert list(chain.state.db.iterate(schema.GOV_OUTPOINT)) == []


# --------------------------------------------------------------------------- independent tally


def recount(blocks, pid, options):
    """The tally from the raw vote txs of ``blocks`` (main chain, in order),
    computed without the node's ballots: each voter's last vote, weighted by
    the amounts of the coins it names."""
    outputs = {}
    for block in [GENESIS, *blocks]:
        for tx in block.txs:
            for i, out in enumerate(tx.outputs):
                outputs[wire(Outpoint(tx.txid, i))] = out.amount
    last = {}
    for block in blocks:
        for tx in block.txs:
            if isinstance(tx.payload, GovVote) and tx.payload.proposal == pid:
                last[tx.payload.keys[0].pubkey] = tx.payload
    weights = [0] * options
    for v in last.values():
        weights[v.option - 1] += sum(outputs[op] for op in v.outpoints)
    return weights


def test_the_node_tally_matches_a_recount_from_the_raw_votes(chain):
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    pid = chain.tokens.txid
    blocks = [chain.state.get_block(chain.state.get_block_hash(h)) for h in (1, 2)]
    held = {B: [g(i)[0] for i in range(1, 20, 5)], C: [g(i)[0] for i in (2, 12, 17)]}
    for _ in range(3):
        txs = []
        for voter in rng.sample([B, C], rng.randint(1, 2)):
            coins = rng.sample(held[voter], rng.randint(1, len(held[voter])))
            txs.append(chain.cast(pid, rng.randint(1, 3), coins, keys=(voter,)))
        blocks.append(chain.mine(*txs))
    assert chain.tally(pid) == recount(blocks, pid, 3), f"seed {seed}"


# --------------------------------------------------------------------------- node views


def node_over(chain, finalized=0):
    from types import SimpleNamespace

    from o2ocli.chainspec import load_spec

    spec = replace(load_spec("devnet"), chain_id=CHAIN_ID, min_purchase=PARAMS.min_purchase,
                   gov_deposit=DEPOSIT)
    return SimpleNamespace(spec=spec, chain=SimpleNamespace(
        state=chain.state, height=chain.state.height, finalized_height=finalized))


def test_winner_state_and_turnout_as_the_node_shows_them(chain):
    from o2ocli.node.methods.gov import Tally, proposal_json, proposal_state

    assert Tally((0, 0, 0), 0).winner is None
    assert Tally((5, 5, 1), 3).winner is None  # a tie has no winner
    assert Tally((5, 6, 1), 3).winner == 2
    record = chain.state.gov_proposal(chain.tokens.txid)
    assert proposal_state(record, record.end - 1, 0) == "open"
    assert proposal_state(record, record.end, record.end - 1) == "closed"
    assert proposal_state(record, record.end + 3, record.end) == "final"
    pid = chain.tokens.txid
    chain.mine(chain.cast(pid, 3, [g(1)[0]]), chain.cast(pid, 1, [g(2)[0]], keys=(C,)))
    shown = proposal_json(node_over(chain), pid)
    assert shown["id"] == pid.hex() and shown["state"] == "open"
    assert shown["tallies"] == [{"option": 1, "weight": amount(2)}, {"option": 2, "weight": 0},
                                {"option": 3, "weight": amount(1)}]
    assert shown["turnout"]["ballots"] == 2 and shown["winner"] == 1


def test_vote_rights_list_what_the_rules_accept(chain):
    from o2ocli.node.methods.gov import listvoterights

    node = node_over(chain)
    pid = chain.tokens.txid
    chain.mine(chain.cast(pid, 1, [g(1)[0]]))
    node.chain.height = chain.state.height
    b_addr = node.spec.address(h160(B))
    rights = listvoterights(node, pid.hex(), [b_addr])
    listed = {c["outpoint"]: c for c in rights["coins"]}
    # every genesis coin of B (held at the snapshot, spent since or not), not the late coin
    assert set(listed) == {str(g(i)[0]) for i in range(1, 60, 5)}
    assert listed[str(g(1)[0])]["voter"] == b_addr and listed[str(g(6)[0])]["voter"] is None
    c_rights = listvoterights(node, pid.hex(), [node.spec.address(h160(C))])
    assert str(g(7)[0]) not in {c["outpoint"] for c in c_rights["coins"]}  # spent at snapshot
    customers = listvoterights(node, chain.customers.txid.hex(),
                               [node.spec.address(h160(D)), node.spec.address(h160(C))])
    assert customers["purchases"] == [{"txid": chain.purchase.txid.hex(),
                                       "buyer": node.spec.address(h160(D))}]


def test_a_pool_keeps_one_pending_vote_per_voter_and_per_coin(chain):
    from o2ocli.node.mempool import Mempool, MempoolError

    pool = Mempool(chain.state, PARAMS, min_fee_rate=1)
    pid = chain.tokens.txid
    first = chain.cast(pid, 1, [g(1)[0]])
    pool.accept(first, 1_700_000_000)
    for second in (chain.cast(pid, 2, [g(6)[0]]),                   # same voter
                   chain.cast(pid, 2, [g(1)[0], g(2)[0]], keys=(C, B))):  # same coin
        with pytest.raises(MempoolError) as err:
            pool.accept(second, 1_700_000_000)
        assert err.value.reason == "txn-mempool-conflict"
    # once the first is mined, the voter may change the vote
    chain.mine(first)
    pool.remove_for_block(chain.state.get_block(chain.state.tip.hash))
    pool.accept(chain.cast(pid, 2, [g(6)[0]]), 1_700_000_000)


def test_a_token_vote_counts_that_token_only_and_shows_its_supply(chain):
    from o2ocli.core.locks import lock_bytes
    from o2ocli.core.payloads import TokenCommit, TokenIssue, token_asset_id, token_commitment
    from o2ocli.node.methods.gov import proposal_json

    loy = token_asset_id("LOY")
    unknown = replace(proposal(), asset=loy)
    assert chain.refused(spend([chain.fee_coin(PROPOSER)], None, unknown, burn=DEPOSIT)) == \
        "bad-gov-unknown-token"
    salt = bytes(range(32))
    commit = spend([g(16)], None, TokenCommit(token_commitment("LOY", salt,
                                                               lock_bytes(native(1, B).lock))))
    chain.mine(commit)
    issue = spend([(Outpoint(commit.txid, 0), B)],
                  [TxOut(loy, 7_000, native(1, B).lock), native(amount(16) - 2 * FEE, B)],
                  TokenIssue(b"LOY", b"Loyalty", 0, False, salt))
    chain.mine(issue)
    chain.mine(spend([chain.fee_coin(PROPOSER)], None, unknown, burn=DEPOSIT))
    pid = chain.state.get_block(chain.state.tip.hash).txs[0].txid
    assert chain.refused(chain.cast(pid, 1, [g(1)[0]])) == "bad-gov-vote-outpoint-asset"
    chain.mine(chain.cast(pid, 1, [Outpoint(issue.txid, 0)]))
    shown = proposal_json(node_over(chain), pid)
    assert shown["token"] == "LOY" and shown["tallies"][0]["weight"] == 7_000
    assert shown["turnout"]["eligible"] == 7_000 and shown["turnout"]["percent"] == 100.0

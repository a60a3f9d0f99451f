"""O2O state in the chainstate (real LevelDB): tokens, reviews, replies and
rewards are recorded when a block connects, indexed for queries, and restored
exactly when it disconnects (undo data under ``o``) or is reorganised away.

Blocks are built by hand (``make_block``) from a small genesis: coin ``i`` of
the genesis allocation belongs to ``KEYS[i % 4]``.  Roles: ``KEYS[0]`` issues
LOY (mintable) and pays rewards, ``KEYS[1]`` is the merchant, ``KEYS[2]`` the
buyer and reviewer, ``KEYS[3]`` issues CUP (fixed supply).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from o2ocli.consensus.errors import BlockInvalid
from o2ocli.consensus.escrow import PATH_DISPUTE
from o2ocli.consensus.o2o import ReviewRecord, TokenRecord
from o2ocli.consensus.params import ConsensusParams
from o2ocli.core.block import Block
from o2ocli.core.locks import Escrow, lock_bytes
from o2ocli.core.payloads import (
    NO_PAYLOAD,
    REWARD_PURCHASES,
    REWARD_REVIEWS,
    KeySig,
    Review,
    ReviewReply,
    TokenBurn,
    TokenCommit,
    TokenFreeze,
    TokenIssue,
    TokenMint,
    TokenReward,
    authority_asset_id,
    reply_sig_digest,
    review_sig_digest,
    reward_sig_digest,
    token_asset_id,
    token_commitment,
)
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, Tx, TxIn, TxOut
from o2ocli.crypto.hashes import sha256
from o2ocli.storage import ChainState, Database, schema
from o2ocli.storage.chainstate import STATUS_INVALID, SchemaMismatch
from o2ocli.testing.chaingen import deterministic_key, make_block, make_genesis, p2a, sign_tx

CHAIN_ID = "o2o-test"
ISSUE_FEE = 10_000
WINDOW = 20
MIN_PURCHASE = 1_000
COIN = 1_000_000
FEE = 100
KEYS = [deterministic_key(b"o2o-chainstate-tests", i) for i in range(4)]
ISSUER, MERCHANT, BUYER, CUP_ISSUER = 0, 1, 2, 3
SALT = sha256(b"o2o-chainstate/salt")
CUP_SALT = sha256(b"o2o-chainstate/cup-salt")
LOY = token_asset_id("LOY")
LOY_AUTH = authority_asset_id(LOY)
CUP = token_asset_id("CUP")
PARAMS = ConsensusParams(
    CHAIN_ID, token_issue_fee=ISSUE_FEE, review_window=WINDOW, min_purchase=MIN_PURCHASE
)
GENESIS = make_genesis(CHAIN_ID, [TxOut(NATIVE_ASSET, COIN, p2a(KEYS[i % 4])) for i in range(16)])


def h160(i):
    return KEYS[i].public_key.hash160()


def g(i):
    """Genesis coin ``i`` (owned by ``KEYS[i % 4]``)."""
    return Outpoint(GENESIS.txs[0].txid, i), i % 4


def out(tx, index, owner):
    """Output ``index`` of ``tx``, spendable by ``KEYS[owner]``."""
    return Outpoint(tx.txid, index), owner


def native(amount, owner):
    return TxOut(NATIVE_ASSET, amount, p2a(KEYS[owner]))


def token(asset, amount, owner):
    return TxOut(asset, amount, p2a(KEYS[owner]))


def spend(inputs, outputs, payload=NO_PAYLOAD):
    """A tx spending ``inputs`` ((outpoint, owner) pairs), each signed by its owner."""
    payload = bind_reward(payload, [op for op, _ in inputs], KEYS, CHAIN_ID)
    tx = Tx(tuple(TxIn(op) for op, _ in inputs), tuple(outputs), payload=payload)
    return sign_tx(tx, [[KEYS[owner]] for _, owner in inputs], CHAIN_ID)


def bind_reward(payload, prevouts, keys, chain_id):
    """Re-sign a reward's merchant keys over the tx's inputs (the consensus
    digest commits to them).  A signature that was not valid for the unbound
    digest (a deliberate forgery in a test) is left as it is."""
    from o2ocli.core.payloads import KeySig, TokenReward
    from o2ocli.crypto.backends import verify

    if not isinstance(payload, TokenReward):
        return payload
    unbound = reward_sig_digest(payload, chain_id)
    wire = [op.txid + op.index.to_bytes(4, "little") for op in prevouts]
    bound = reward_sig_digest(payload, chain_id, wire)
    by_pub = {k.public_key.to_bytes(): k for k in keys}
    fixed = []
    for pair in payload.keys:
        key = by_pub.get(pair.pubkey)
        if key is not None and verify(pair.pubkey, pair.signature, unbound):
            pair = KeySig(pair.pubkey, key.sign(bound))
        fixed.append(pair)
    return replace(payload, keys=tuple(fixed))


def review_payload(purchase_txid, *, rating=5, text=b"Great coffee", merchant=MERCHANT,
                   reviewer=BUYER):
    key = KEYS[reviewer]
    unsigned = Review(h160(merchant), purchase_txid, rating, text, key.public_key.to_bytes(),
                      bytes(64))
    return replace(unsigned, signature=key.sign(review_sig_digest(unsigned, CHAIN_ID)))


def reply_payload(review_txid, text=b"Thank you!", signer=MERCHANT):
    key = KEYS[signer]
    unsigned = ReviewReply(review_txid, text, key.public_key.to_bytes(), bytes(64))
    return replace(unsigned, signature=key.sign(reply_sig_digest(unsigned, CHAIN_ID)))


def reward_payload(asset, refs, kind=REWARD_PURCHASES, signer=MERCHANT):
    pubkey = KEYS[signer].public_key.to_bytes()
    unsigned = TokenReward(asset, kind, tuple(refs), (KeySig(pubkey, bytes(64)),))
    sig = KEYS[signer].sign(reward_sig_digest(unsigned, CHAIN_ID))
    return replace(unsigned, keys=(KeySig(pubkey, sig),))


@dataclass
class Story:
    """The blocks of the main scenario and the txs the tests look at."""

    blocks: list[Block] = field(default_factory=list)
    tx: dict[str, Tx] = field(default_factory=dict)

    def add(self, *named):
        """Append a block (difficulty 2, no fee claim) holding the (name, tx) pairs."""
        parent = self.blocks[-1].header if self.blocks else GENESIS.header
        for name, tx in named:
            self.tx[name] = tx
        self.blocks.append(make_block(parent, [tx for _, tx in named]))


def story() -> Story:
    """Heights 1..5: commit → issue → mint + review → reply + reward → review
    reward, second review, burn and freeze."""
    s = Story()
    # 1: two commits and a purchase (the buyer pays the merchant 50 000).
    commit = spend([g(0)], [native(COIN - FEE, ISSUER)],
                   TokenCommit(token_commitment("LOY", SALT, lock_bytes(p2a(KEYS[ISSUER])))))
    cup_commit = spend([g(3)], [native(COIN - FEE, CUP_ISSUER)],
                       TokenCommit(token_commitment("CUP", CUP_SALT,
                                                    lock_bytes(p2a(KEYS[CUP_ISSUER])))))
    purchase = spend([g(2)], [native(50_000, MERCHANT), native(COIN - 50_000 - FEE, BUYER)])
    s.add(("commit", commit), ("cup_commit", cup_commit), ("purchase", purchase))
    # 2: the reveals; LOY is mintable (authority at output 1), CUP fixed at 777.
    change = COIN - FEE - ISSUE_FEE - FEE
    issue = spend(
        [out(commit, 0, ISSUER)],
        [token(LOY, 1_000_000, ISSUER), token(LOY_AUTH, 1, ISSUER), native(change, ISSUER)],
        TokenIssue(b"LOY", b"Loyalty points", 2, True, SALT),
    )
    cup_issue = spend(
        [out(cup_commit, 0, CUP_ISSUER)],
        [token(CUP, 777, CUP_ISSUER), native(change, CUP_ISSUER)],
        TokenIssue(b"CUP", "Café cup ☕".encode(), 0, False, CUP_SALT),
    )
    s.add(("issue", issue), ("cup_issue", cup_issue))
    # 3: mint 5 000 LOY, review the purchase, and a second purchase.
    mint = spend(
        [out(issue, 1, ISSUER), g(4)],
        [native(COIN - FEE, ISSUER), token(LOY_AUTH, 1, ISSUER), token(LOY, 5_000, ISSUER)],
        TokenMint(LOY, 5_000),
    )
    review = spend([out(purchase, 1, BUYER)], [native(COIN - 50_000 - 2 * FEE, BUYER)],
                   review_payload(purchase.txid, rating=5))
    purchase2 = spend([g(6)], [native(2_000, MERCHANT), native(COIN - 2_000 - FEE, BUYER)])
    s.add(("mint", mint), ("review", review), ("purchase2", purchase2))
    # 4: the merchant replies; the issuer rewards the purchase (signed by the merchant).
    reply = spend([out(purchase, 0, MERCHANT)], [native(50_000 - FEE, MERCHANT)],
                  reply_payload(review.txid))
    reward = spend(
        [out(issue, 0, ISSUER), out(issue, 2, ISSUER)],
        [token(LOY, 100, BUYER), token(LOY, 999_900, ISSUER), native(change - FEE, ISSUER)],
        reward_payload(LOY, [purchase.txid]),
    )
    s.add(("reply", reply), ("reward", reward))
    # 5: reward the review, review the second purchase, burn 1 000 LOY, freeze LOY.
    review_reward = spend(
        [out(reward, 1, ISSUER), g(8)],
        [token(LOY, 50, BUYER), token(LOY, 999_850, ISSUER), native(COIN - FEE, ISSUER)],
        reward_payload(LOY, [review.txid], REWARD_REVIEWS),
    )
    review2 = spend([out(purchase2, 1, BUYER)], [native(COIN - 2_000 - 2 * FEE, BUYER)],
                    review_payload(purchase2.txid, rating=2, text=b"Cold"))
    burn = spend([out(mint, 2, ISSUER), g(12)],
                 [token(LOY, 4_000, ISSUER), native(COIN - FEE, ISSUER)], TokenBurn(LOY, 1_000))
    freeze = spend([out(mint, 1, ISSUER), out(mint, 0, ISSUER)], [native(COIN - 2 * FEE, ISSUER)],
                   TokenFreeze(LOY))
    s.add(("review_reward", review_reward), ("review2", review2), ("burn", burn),
          ("freeze", freeze))
    return s


def open_state(path) -> ChainState:
    return ChainState(Database(path), PARAMS, GENESIS)


def o2o_dump(state):
    """Every key/value of every O2O key space."""
    return {prefix: dict(state.db.iterate(prefix)) for prefix in schema.O2O_PREFIXES}


def full_dump(state):
    return dict(state.db.iterate(b""))


def loy_record(height=2, **changes):
    return replace(
        TokenRecord(LOY, "LOY", "Loyalty points", 2, h160(ISSUER), 1_000_000, True, height,
                    bytes(32)),
        **changes,
    )


@pytest.fixture
def s() -> Story:
    return story()


# ---------------------------------------------------------------------------
# Connect: lookups and indexes
# ---------------------------------------------------------------------------


def test_full_dump_sees_every_key(tmp_path):
    state = open_state(tmp_path / "db")
    dump = full_dump(state)
    assert schema.META_TIP in dump
    assert any(key.startswith(schema.UTXO) for key in dump)


def test_story_connects_and_records_the_o2o_state(tmp_path, s):
    state = open_state(tmp_path / "db")
    for block in s.blocks:
        assert state.add_block(block)
    assert state.height == 5
    t = s.tx

    loy = state.token(LOY)
    assert loy == loy_record(txid=t["issue"].txid, supply=1_000_000 + 5_000 - 1_000,
                             mintable=False)
    cup = state.token(CUP)
    assert cup == TokenRecord(CUP, "CUP", "Café cup ☕", 0, h160(CUP_ISSUER), 777, False, 2,
                              t["cup_issue"].txid)
    assert list(state.iter_tokens()) == sorted([loy, cup], key=lambda r: r.asset)
    assert state.token(token_asset_id("NOPE")) is None
    assert state.token_of_authority(LOY_AUTH) == loy
    assert state.token_of_authority(LOY) is None

    assert state.main_tx(t["purchase"].txid) == (t["purchase"], 1)
    assert state.main_tx(t["freeze"].txid) == (t["freeze"], 5)
    assert state.main_tx(sha256(b"nowhere")) is None

    review, review2 = t["review"].txid, t["review2"].txid
    assert state.review_of_purchase(t["purchase"].txid) == review
    assert state.review_of_purchase(t["purchase2"].txid) == review2
    assert state.review_of_purchase(t["reply"].txid) is None
    assert state.review(review) == ReviewRecord(
        h160(MERCHANT), h160(BUYER), t["purchase"].txid, 5, 50_000, 3
    )
    assert state.review(review2) == ReviewRecord(
        h160(MERCHANT), h160(BUYER), t["purchase2"].txid, 2, 2_000, 5
    )
    assert state.review(t["purchase"].txid) is None
    assert state.reply_of(review) == t["reply"].txid
    assert state.reply_of(review2) is None
    assert state.rewarded_by(LOY, t["purchase"].txid) == t["reward"].txid
    assert state.rewarded_by(LOY, review) == t["review_reward"].txid
    assert state.rewarded_by(LOY, t["purchase2"].txid) is None
    assert state.rewarded_by(CUP, t["purchase"].txid) is None

    assert state.reviews_by_merchant(h160(MERCHANT)) == [review, review2]  # oldest first
    assert state.reviews_by_reviewer(h160(BUYER)) == [review, review2]
    assert state.reviews_by_merchant(h160(BUYER)) == []
    assert state.reviews_by_reviewer(h160(MERCHANT)) == []


def test_asset_coins_follow_spends(tmp_path, s):
    state = open_state(tmp_path / "db")
    t = s.tx

    def coins(asset):
        return sorted((op.to_bytes(), c.output.amount) for op, c in state.asset_coins(asset))

    def expect(*pairs):
        return sorted((op.to_bytes(), amount) for op, amount in pairs)

    for block in s.blocks[:3]:
        state.add_block(block)
    assert coins(LOY) == expect((Outpoint(t["issue"].txid, 0), 1_000_000),
                                (Outpoint(t["mint"].txid, 2), 5_000))
    assert coins(LOY_AUTH) == expect((Outpoint(t["mint"].txid, 1), 1))
    assert coins(CUP) == expect((Outpoint(t["cup_issue"].txid, 0), 777))
    assert coins(NATIVE_ASSET) == []  # the native coin is not indexed
    for block in s.blocks[3:]:
        state.add_block(block)
    assert coins(LOY) == expect(
        (Outpoint(t["reward"].txid, 0), 100),
        (Outpoint(t["review_reward"].txid, 0), 50),
        (Outpoint(t["review_reward"].txid, 1), 999_850),
        (Outpoint(t["burn"].txid, 0), 4_000),
    )
    assert coins(LOY_AUTH) == []
    assert sum(amount for _, amount in coins(LOY)) == state.token(LOY).supply
    assert state.utxo_stats().totals[LOY] == state.token(LOY).supply
    assert LOY_AUTH not in state.utxo_stats().totals
    # Back to height 3: the authority and the minted coin are unspent again.
    state.disconnect_tip()
    state.disconnect_tip()
    assert coins(LOY_AUTH) == expect((Outpoint(t["mint"].txid, 1), 1))
    assert coins(LOY) == expect((Outpoint(t["issue"].txid, 0), 1_000_000),
                                (Outpoint(t["mint"].txid, 2), 5_000))


def test_each_block_records_its_own_token_changes(tmp_path, s):
    state = open_state(tmp_path / "db")
    issue = s.tx["issue"].txid
    expected = [
        None,
        loy_record(txid=issue),
        loy_record(txid=issue, supply=1_005_000),
        loy_record(txid=issue, supply=1_005_000),
        loy_record(txid=issue, supply=1_004_000, mintable=False),
    ]
    for block, record in zip(s.blocks, expected, strict=True):
        state.add_block(block)
        assert state.token(LOY) == record
    assert state.token_of_authority(LOY_AUTH).mintable is False


# ---------------------------------------------------------------------------
# Disconnect: exact restoration
# ---------------------------------------------------------------------------


def test_disconnect_restores_every_o2o_key_space(tmp_path, s):
    state = open_state(tmp_path / "db")
    dumps = [o2o_dump(state)]
    utxo_hashes = [state.utxo_set_hash()]
    for block in s.blocks:
        state.add_block(block)
        dumps.append(o2o_dump(state))
        utxo_hashes.append(state.utxo_set_hash())
    assert all(not v for v in dumps[0].values())  # genesis holds no O2O state
    assert dumps[1] == dumps[0]  # block 1 (commits, a purchase) changes no O2O key
    assert all(dumps[i] != dumps[i + 1] for i in range(1, len(s.blocks)))
    # Undo data exists for exactly the blocks that changed the O2O state.
    undo_keys = set(dumps[-1][schema.O2O_UNDO])
    assert undo_keys == {schema.o2o_undo_key(b.hash) for b in s.blocks[1:]}
    for height in range(len(s.blocks), 0, -1):
        assert state.disconnect_tip().hash == s.blocks[height - 1].hash
        assert o2o_dump(state) == dumps[height - 1], f"after disconnecting height {height}"
        assert state.utxo_set_hash() == utxo_hashes[height - 1]
    assert state.token(LOY) is None
    assert state.review_of_purchase(s.tx["purchase"].txid) is None
    assert list(state.iter_tokens()) == []
    # Reconnecting gives the same state again, undo data included.
    assert state.add_block(s.blocks[-1])
    assert state.height == len(s.blocks)
    assert o2o_dump(state) == dumps[-1]


def test_disconnect_then_reconnect_each_block_is_idempotent(tmp_path, s):
    state = open_state(tmp_path / "db")
    for block in s.blocks:
        state.add_block(block)
        before = full_dump(state)
        state.disconnect_tip()
        state.add_block(block)
        assert full_dump(state) == before


def test_burns_are_indexed_newest_first_and_a_disconnect_removes_them(tmp_path, s):
    state = open_state(tmp_path / "db")
    for block in s.blocks:
        state.add_block(block)
    burn = s.tx["burn"]
    assert state.token_burns(LOY, 10) == [(5, burn.txid, 1_000)]
    assert state.token_burns(CUP, 10) == []
    # Height 6: a second burn, of 500 LOY (the first burn's outputs).
    burn2 = spend([out(burn, 0, ISSUER), out(burn, 1, ISSUER)],
                  [token(LOY, 3_500, ISSUER), native(COIN - 2 * FEE, ISSUER)], TokenBurn(LOY, 500))
    assert state.add_block(make_block(s.blocks[-1].header, [burn2]))
    assert state.token_burns(LOY, 10) == [(6, burn2.txid, 500), (5, burn.txid, 1_000)]
    assert state.token_burns(LOY, 1) == [(6, burn2.txid, 500)]
    assert state.token(LOY).supply == 1_003_500
    assert state.disconnect_tip().height == 6
    assert state.token_burns(LOY, 10) == [(5, burn.txid, 1_000)]
    assert state.disconnect_tip().height == 5
    assert state.token_burns(LOY, 10) == []
    assert list(state.db.iterate(schema.BURNS)) == []


def test_a_database_of_another_schema_is_refused_with_a_reindex_hint(tmp_path, s):
    state = open_state(tmp_path / "db")
    state.add_block(s.blocks[0])
    for version, found in ((2, "schema 2, from an older o2ocli"),
                           (99, "schema 99, from a newer o2ocli")):
        with state.db.write_batch() as batch:
            batch.put(schema.META_SCHEMA, version.to_bytes(4, "big"))
        with pytest.raises(SchemaMismatch, match=f"{found}; this o2ocli uses schema 4 .*"
                                                 "run: o2ocli node reindex"):
            ChainState(state.db, PARAMS, GENESIS)
    with state.db.write_batch() as batch:
        batch.put(schema.META_SCHEMA, schema.SCHEMA_VERSION.to_bytes(4, "big"))
    assert ChainState(state.db, PARAMS, GENESIS).height == 1


# ---------------------------------------------------------------------------
# Reorg
# ---------------------------------------------------------------------------


def purchase_and_review():
    purchase = spend([g(2)], [native(50_000, MERCHANT), native(COIN - 50_000 - FEE, BUYER)])
    review = spend([g(6)], [native(COIN - FEE, BUYER)], review_payload(purchase.txid))
    return purchase, review


def test_reorg_orphaning_a_purchase_removes_its_review(tmp_path):
    state = open_state(tmp_path / "db")
    empty = o2o_dump(state)
    purchase, review = purchase_and_review()
    a1 = make_block(GENESIS.header, [purchase])
    a2 = make_block(a1.header, [review])
    state.add_block(a1)
    state.add_block(a2)
    assert state.review_of_purchase(purchase.txid) == review.txid
    assert state.reviews_by_merchant(h160(MERCHANT)) == [review.txid]

    # A heavier branch without the purchase: 2 + 3 > 2 + 2.
    b1 = make_block(GENESIS.header, [], time=GENESIS.header.time + 7)
    b2 = make_block(b1.header, [], difficulty=3)
    assert not state.add_block(b1)
    change = state.add_block(b2)
    assert [b.hash for b in change.disconnected] == [a2.hash, a1.hash]
    assert [b.hash for b in change.connected] == [b1.hash, b2.hash]
    assert state.main_tx(purchase.txid) is None
    assert state.review_of_purchase(purchase.txid) is None
    assert state.review(review.txid) is None
    assert state.reviews_by_merchant(h160(MERCHANT)) == []
    assert state.reviews_by_reviewer(h160(BUYER)) == []
    assert o2o_dump(state) == empty

    # The review cannot come back without its purchase ...
    with pytest.raises(BlockInvalid) as err:
        state.add_block(make_block(b2.header, [review]))
    assert err.value.reason == "bad-review-no-purchase"
    # ... but once the purchase is mined again, it is reviewable again.
    b3 = make_block(b2.header, [purchase])
    b4 = make_block(b3.header, [review])
    assert state.add_block(b3)
    assert state.main_tx(purchase.txid) == (purchase, 3)
    assert state.review_of_purchase(purchase.txid) is None
    assert state.add_block(b4)
    assert state.review_of_purchase(purchase.txid) == review.txid
    assert state.review(review.txid).height == 4
    assert state.reviews_by_merchant(h160(MERCHANT)) == [review.txid]


def test_reorg_remining_the_purchase_frees_it_for_review(tmp_path):
    state = open_state(tmp_path / "db")
    purchase, review = purchase_and_review()
    a1 = make_block(GENESIS.header, [purchase])
    a2 = make_block(a1.header, [review])
    state.add_block(a1)
    state.add_block(a2)
    b1 = make_block(GENESIS.header, [], time=GENESIS.header.time + 7)
    b2 = make_block(b1.header, [purchase], difficulty=3)
    state.add_block(b1)
    assert state.add_block(b2)
    assert state.tip.hash == b2.hash
    assert state.main_tx(purchase.txid) == (purchase, 2)
    assert state.review_of_purchase(purchase.txid) is None
    assert state.review(review.txid) is None
    assert state.add_block(make_block(b2.header, [review]))
    assert state.review(review.txid) == ReviewRecord(
        h160(MERCHANT), h160(BUYER), purchase.txid, 5, 50_000, 3
    )


def test_reorg_onto_a_branch_with_an_invalid_o2o_block_restores_the_o2o_state(tmp_path):
    state = open_state(tmp_path / "db")
    purchase, review = purchase_and_review()
    a1 = make_block(GENESIS.header, [purchase])
    a2 = make_block(a1.header, [review])
    state.add_block(a1)
    state.add_block(a2)
    before = (o2o_dump(state), state.utxo_set_hash(), state.tip.hash)
    # The same purchase on a competing branch, then a block reviewing it twice.
    second = spend([g(10)], [native(COIN - FEE, BUYER)],
                   review_payload(purchase.txid, text=b"again"))
    b1 = make_block(GENESIS.header, [purchase], time=GENESIS.header.time + 7)
    b2 = make_block(b1.header, [review, second], difficulty=3)
    assert not state.add_block(b1)
    with pytest.raises(BlockInvalid) as err:
        state.add_block(b2)
    assert err.value.reason == "bad-review-duplicate"
    assert (o2o_dump(state), state.utxo_set_hash(), state.tip.hash) == before
    assert state.get_index(b2.hash).status == STATUS_INVALID
    assert state.review_of_purchase(purchase.txid) == review.txid
    assert state.main_tx(purchase.txid) == (purchase, 1)


def test_reorg_orphaning_an_issue_frees_the_symbol(tmp_path, s):
    state = open_state(tmp_path / "db")
    for block in s.blocks[:2]:
        state.add_block(block)
    assert state.token(LOY) is not None
    # A heavier branch from block 1 without the reveal, which then issues LOY again.
    b2 = make_block(s.blocks[0].header, [], difficulty=3)
    assert state.add_block(b2)
    assert state.token(LOY) is None and state.token(CUP) is None
    assert state.token_of_authority(LOY_AUTH) is None
    assert state.asset_coins(LOY) == []
    b3 = make_block(b2.header, [s.tx["issue"]])
    assert state.add_block(b3)
    assert state.token(LOY) == loy_record(height=3, txid=s.tx["issue"].txid)


# ---------------------------------------------------------------------------
# Invalid O2O blocks change nothing
# ---------------------------------------------------------------------------


def connected_story(tmp_path, s, upto=4):
    state = open_state(tmp_path / "db")
    for block in s.blocks[:upto]:
        state.add_block(block)
    return state


def bad_block_cases(s):
    t = s.tx
    tip = s.blocks[3].header
    valid_mint = spend(
        [out(t["mint"], 1, ISSUER), out(t["mint"], 0, ISSUER)],
        [native(COIN - 2 * FEE, ISSUER), token(LOY_AUTH, 1, ISSUER), token(LOY, 7, ISSUER)],
        TokenMint(LOY, 7),
    )
    second_review = spend([g(10)], [native(COIN - FEE, BUYER)],
                          review_payload(t["purchase"].txid, text=b"again"))
    second_reply = spend([g(5)], [native(COIN - FEE, MERCHANT)],
                         reply_payload(t["review"].txid, text=b"again"))
    rereward = spend([out(t["reward"], 1, ISSUER), g(8)],
                     [token(LOY, 999_900, BUYER), native(COIN - FEE, ISSUER)],
                     reward_payload(LOY, [t["purchase"].txid]))
    review2_of_2 = spend([out(t["purchase2"], 1, BUYER)], [native(COIN - 2_000 - 2 * FEE, BUYER)],
                         review_payload(t["purchase2"].txid))
    tampered = replace(review_payload(t["purchase2"].txid, text=b"nice"), text=b"nasty")
    tampered_review = spend([out(t["purchase2"], 1, BUYER)],
                            [native(COIN - 2_000 - 2 * FEE, BUYER)], tampered)
    cup_mint = spend([g(7), out(t["cup_issue"], 0, CUP_ISSUER)],
                     [native(COIN - FEE, CUP_ISSUER), token(CUP, 1_777, CUP_ISSUER)],
                     TokenMint(CUP, 1_000))
    return {
        "duplicate-review": (make_block(tip, [valid_mint, second_review]),
                             "bad-review-duplicate"),
        "duplicate-reply": (make_block(tip, [review2_of_2, second_reply]),
                            "bad-reply-duplicate"),
        "duplicate-reward": (make_block(tip, [valid_mint, rereward]),
                             "bad-token-reward-duplicate"),
        "bad-review-signature": (make_block(tip, [valid_mint, tampered_review]),
                                 "bad-txns-signature"),
        "fixed-supply-mint": (make_block(tip, [valid_mint, cup_mint]), "bad-token-fixed-supply"),
    }


@pytest.mark.parametrize(
    "case",
    ["duplicate-review", "duplicate-reply", "duplicate-reward", "bad-review-signature",
     "fixed-supply-mint"],
)
def test_invalid_o2o_block_leaves_the_database_unchanged(tmp_path, s, case):
    state = connected_story(tmp_path, s)
    block, reason = bad_block_cases(s)[case]
    before = full_dump(state)
    tip = state.tip
    with pytest.raises(BlockInvalid) as err:
        state.add_block(block)
    assert err.value.reason == reason
    assert full_dump(state) == before
    assert state.tip == tip
    assert state.get_block(block.hash) is None
    # The valid continuation still connects.
    assert state.add_block(s.blocks[4])
    assert state.token(LOY).supply == 1_004_000


def test_valid_first_tx_of_an_invalid_block_is_not_recorded(tmp_path, s):
    state = connected_story(tmp_path, s)
    block, _ = bad_block_cases(s)["duplicate-review"]
    with pytest.raises(BlockInvalid):
        state.add_block(block)
    assert state.token(LOY).supply == 1_005_000  # the mint of 7 was not applied
    assert state.review_of_purchase(s.tx["purchase"].txid) == s.tx["review"].txid


# ---------------------------------------------------------------------------
# The issuance fee is burned: a fee claim cannot take it
# ---------------------------------------------------------------------------


def test_fee_claim_cannot_take_the_burned_issue_fee(tmp_path, s):
    state = connected_story(tmp_path, s, upto=1)
    txs = [s.tx["issue"], s.tx["cup_issue"]]
    native_before = state.utxo_stats().totals[NATIVE_ASSET]
    lock = p2a(KEYS[0])
    greedy = make_block(s.blocks[0].header, txs, fees=2 * FEE + ISSUE_FEE, fee_lock=lock)
    with pytest.raises(BlockInvalid) as err:
        state.add_block(greedy)
    assert err.value.reason == "bad-cb-amount"
    honest = make_block(s.blocks[0].header, txs, fees=2 * FEE, fee_lock=lock)
    assert state.add_block(honest)
    assert state.utxo_stats().totals[NATIVE_ASSET] == native_before - 2 * ISSUE_FEE


# ---------------------------------------------------------------------------
# The buyer of an escrow purchase, read through the chainstate
# ---------------------------------------------------------------------------


def test_escrow_settled_by_the_arbiter_is_reviewed_by_its_payer_only(tmp_path):
    """An escrow opened and settled by the arbiter for the merchant in one
    block (the review rule reads the escrow lock from a tx of that same block):
    the arbiter, who signed the settlement, cannot review; the payer, who did
    not sign it, can; the review goes away with its block."""
    arbiter = deterministic_key(b"o2o-chainstate-tests", 4)
    state = open_state(tmp_path / "db")
    lock = Escrow(h160(BUYER), ((h160(MERCHANT), 10_000),), arbiter.public_key.hash160(), 1_000)
    opened = spend([g(2)], [TxOut(NATIVE_ASSET, COIN - FEE, lock)])
    settle = Tx((TxIn(Outpoint(opened.txid, 0)),), (native(COIN - 2 * FEE, MERCHANT),))
    settle = sign_tx(settle, [[arbiter, KEYS[MERCHANT]]], CHAIN_ID)
    b1 = make_block(GENESIS.header, [opened, settle])
    assert state.add_block(b1)
    assert state.escrow_settlement(Outpoint(opened.txid, 0)) == (settle.txid, PATH_DISPUTE)
    settled = o2o_dump(state)

    unsigned = Review(h160(MERCHANT), settle.txid, 1, b"ruled", arbiter.public_key.to_bytes(),
                      bytes(64))
    by_arbiter = replace(unsigned, signature=arbiter.sign(review_sig_digest(unsigned, CHAIN_ID)))
    before = full_dump(state)
    with pytest.raises(BlockInvalid) as err:
        state.add_block(make_block(b1.header, [spend([g(6)], [native(COIN - FEE, BUYER)],
                                                     by_arbiter)]))
    assert err.value.reason == "bad-review-not-buyer"
    assert full_dump(state) == before

    review = spend([g(6)], [native(COIN - FEE, BUYER)], review_payload(settle.txid, rating=4))
    assert state.add_block(make_block(b1.header, [review]))
    assert state.review(review.txid) == ReviewRecord(
        h160(MERCHANT), h160(BUYER), settle.txid, 4, COIN - 2 * FEE, 2)
    state.disconnect_tip()
    assert o2o_dump(state) == settled

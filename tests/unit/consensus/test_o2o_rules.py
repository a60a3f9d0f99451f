"""O2O payload rules (:mod:`o2ocli.consensus.o2o`) as applied by the tx and block rules.

Each rule gets its valid case and one test per way to break it; every failure is
asserted by its stable ``reason``.  The chain is a small in-memory
:class:`FakeState` (plain dicts), the UTXO view is the ``kit``'s dict, and every
signature (witnesses, reviews, replies, reward keys) is real.

Roles: ``keys[0]`` issues tokens and funds rewards, ``keys[1]`` is the merchant,
``keys[2]`` the buyer/reviewer, ``keys[3]`` another merchant, ``keys[4]`` a stranger.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from o2o_helpers import FakeState, decoded, effect_of, typed

from o2ocli.consensus.block import apply_block
from o2ocli.consensus.errors import BlockInvalid, TxInvalid
from o2ocli.consensus.escrow import PATH_DISPUTE, PATH_REFUND, PATH_RELEASE
from o2ocli.consensus.o2o import (
    EMPTY_STATE,
    MAX_DECIMALS,
    MAX_REVIEW_TEXT,
    MAX_TOKEN_NAME,
    O2OBlockView,
    O2OEffect,
    ReviewRecord,
    TokenRecord,
    check_o2o_inputs,
    check_o2o_payload,
    check_review_buyer,
    check_symbol,
    o2o_claims,
    purchase_buyers,
    spent_locks,
)
from o2ocli.consensus.params import MAX_AMOUNT, ConsensusParams
from o2ocli.consensus.tx import (
    check_asset_conservation,
    check_transaction,
    check_tx_contextual,
    resolve_inputs,
    serial_verifier,
    validate_transaction,
)
from o2ocli.core.block import BlockHeader
from o2ocli.core.locks import Escrow, lock_bytes
from o2ocli.core.payloads import (
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
from o2ocli.core.tx import NATIVE_ASSET, Coin, Outpoint
from o2ocli.crypto.hashes import sha256

CHAIN_ID = "o2o-test"
ISSUE_FEE = 5_000
WINDOW = 10
MIN_PURCHASE = 1_000
HEIGHT = 50
"""Height of the block the tested transactions would be mined in."""
COMMIT_VALUE = 10_000
SALT = sha256(b"o2o-rules/salt")
OTHER_SALT = sha256(b"o2o-rules/other-salt")
LOY = token_asset_id("LOY")
LOY_AUTH = authority_asset_id(LOY)

ISSUER, MERCHANT, BUYER, OTHER_MERCHANT, STRANGER = 0, 1, 2, 3, 4


@pytest.fixture
def params() -> ConsensusParams:
    """Test chain with an issuance fee, a short review window and a minimum purchase
    (overrides the conftest's defaults for this module)."""
    return ConsensusParams(
        CHAIN_ID, token_issue_fee=ISSUE_FEE, review_window=WINDOW, min_purchase=MIN_PURCHASE
    )


@pytest.fixture
def state():
    return FakeState()


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def h160(kit, i):
    return kit.keys[i].public_key.hash160()


def pub(kit, i):
    return kit.keys[i].public_key.to_bytes()


def contextual(kit, tx, state, height=HEIGHT):
    """Stage 2 of ``tx`` against the kit's view and ``state``: (fee, checks, effect)."""
    return check_tx_contextual(tx, resolve_inputs(tx, kit.view), height, kit.params, state)


def accept(kit, tx, state, height=HEIGHT):
    """Both stages plus signature verification must pass; returns (fee, effect)."""
    check_transaction(tx, kit.params)
    fee, checks, effect = contextual(kit, tx, state, height)
    assert serial_verifier(checks) is None
    return fee, effect


def refuse(kit, tx, state, reason, height=HEIGHT):
    """Stage 1 passes and stage 2 fails with ``reason``."""
    check_transaction(tx, kit.params)
    with pytest.raises(TxInvalid) as e:
        contextual(kit, tx, state, height)
    assert e.value.reason == reason


def malformed(kit, tx, reason):
    """The context-free rules refuse ``tx`` with ``reason``."""
    with pytest.raises(TxInvalid) as e:
        check_o2o_payload(tx)
    assert e.value.reason == reason
    with pytest.raises(TxInvalid) as e:
        check_transaction(tx, kit.params)
    assert e.value.reason == reason


def bad_signature(kit, tx, state, height=HEIGHT):
    """Every rule passes but a payload signature does not verify: returns the
    index of the failing check (always one of the payload's, after the witnesses)."""
    check_transaction(tx, kit.params)
    _, checks, _ = contextual(kit, tx, state, height)
    failed = serial_verifier(checks)
    assert failed is not None
    assert failed >= len(tx.inputs)
    with pytest.raises(TxInvalid) as e:
        validate_transaction(tx, kit.view, height, kit.params, state=state)
    assert e.value.reason == "bad-txns-signature"
    return failed


def plain_tx(kit, payload, payer=ISSUER):
    """A signed 1-in/1-out native spend of a fresh coin of ``payer`` carrying ``payload``."""
    op = kit.fund(1_000, kit.p2a(payer))
    return kit.spend([op], [kit.out(900, kit.p2a(payer))], [[kit.keys[payer]]], payload=payload)


# -- tokens ------------------------------------------------------------------


def commit(kit, state, symbol="LOY", salt=SALT, *, height=HEIGHT - 1, owner=ISSUER):
    """Mine a TokenCommit at ``height``; returns the outpoint of its output 0."""
    op = kit.fund(COMMIT_VALUE, kit.p2a(owner))
    tx = kit.spend(
        [op], [kit.out(COMMIT_VALUE, kit.p2a(owner))], [[kit.keys[owner]]],
        payload=TokenCommit(token_commitment(symbol, salt, lock_bytes(kit.p2a(owner)))),
    )
    state.mine(tx, height)
    commit_op = Outpoint(tx.txid, 0)
    kit.view[commit_op] = Coin(tx.outputs[0], height)
    return commit_op


def issue_tx(
    kit, commit_op, symbol=b"LOY", *, supply=1_000_000, mintable=True, salt=SALT,
    name=b"Loyalty points", decimals=2, authority=None, change=COMMIT_VALUE - ISSUE_FEE - 100,
):
    """A reveal spending ``commit_op`` (signed by the issuer); ``authority`` lists
    the amounts of the authority outputs (default: [1] if mintable, else [])."""
    asset = token_asset_id(symbol.decode())
    outs = []
    if supply:
        outs.append(kit.out(supply, kit.p2a(ISSUER), asset))
    if authority is None:
        authority = [1] if mintable else []
    outs += [kit.out(a, kit.p2a(ISSUER), authority_asset_id(asset)) for a in authority]
    if change:
        outs.append(kit.out(change, kit.p2a(ISSUER)))
    payload = TokenIssue(symbol, name, decimals, mintable, salt)
    return kit.spend([commit_op], outs, payload=payload)


def register(kit, state, symbol="LOY", *, supply=1_000_000, mintable=True):
    """Put a token record into ``state``; returns its asset id."""
    asset = token_asset_id(symbol)
    state.tokens[asset] = TokenRecord(
        asset, symbol, "Loyalty points", 2, h160(kit, ISSUER), supply, mintable, 10,
        sha256(b"o2o-rules/issue" + symbol.encode()),
    )
    return asset


def mint_tx(kit, asset, amount=500, *, minted=None, authority_in=True, authority_out=1,
            authority_to=ISSUER):
    """Spend a native coin (+ the authority coin) and create ``minted`` (default
    ``amount``) tokens plus ``authority_out`` authority units; fee 100."""
    auth = authority_asset_id(asset)
    inputs = [kit.fund(1_000)]
    if authority_in:
        inputs.append(kit.fund(1, asset=auth))
    outs = [kit.out(900, kit.p2a(ISSUER))]
    if authority_out:
        outs.append(kit.out(authority_out, kit.p2a(authority_to), auth))
    minted = amount if minted is None else minted
    if minted:
        outs.append(kit.out(minted, kit.p2a(ISSUER), asset))
    return kit.spend(inputs, outs, payload=TokenMint(asset, amount))


def burn_tx(kit, asset, amount, *, held=1_000, left=None):
    """Spend a native coin and ``held`` tokens, keep ``left`` (default held - amount)."""
    inputs = [kit.fund(1_000), kit.fund(held, asset=asset)]
    left = held - amount if left is None else left
    outs = [kit.out(900, kit.p2a(ISSUER))]
    if left:
        outs.append(kit.out(left, kit.p2a(ISSUER), asset))
    return kit.spend(inputs, outs, payload=TokenBurn(asset, amount))


def freeze_tx(kit, asset, *, authority_in=True, authority_out=0):
    auth = authority_asset_id(asset)
    inputs = [kit.fund(1_000)]
    if authority_in:
        inputs.append(kit.fund(1, asset=auth))
    outs = [kit.out(900, kit.p2a(ISSUER))]
    if authority_out:
        outs.append(kit.out(authority_out, kit.p2a(ISSUER), auth))
    return kit.spend(inputs, outs, payload=TokenFreeze(asset))


# -- purchases, reviews, replies, rewards --------------------------------------


def mined_coin(kit, state, amount, lock, asset=NATIVE_ASSET, *, height=1):
    """A coin of ``amount`` paying ``lock``, created by a tx mined in ``state`` at
    ``height`` (the review rules read the locks a purchase spent from the
    main-chain txs that created them); returns its outpoint."""
    tx = kit.spend([kit.fund(amount, asset=asset)], [kit.out(amount, lock, asset)])
    state.mine(tx, height)
    op = Outpoint(tx.txid, 0)
    kit.view[op] = Coin(tx.outputs[0], height)
    return op


def purchase(kit, state, *, paid=5_000, merchant=MERCHANT, buyer=BUYER, height=HEIGHT - 5):
    """Mine a purchase at ``height``: ``buyer`` pays ``merchant`` ``paid``."""
    op = mined_coin(kit, state, 100_000, kit.p2a(buyer))
    outs = [kit.out(paid, kit.p2a(merchant)), kit.out(100_000 - paid - 100, kit.p2a(buyer))]
    tx = kit.spend([op], outs, [[kit.keys[buyer]]])
    state.mine(tx, height)
    return tx


def signed_review(kit, purchase_txid, *, merchant=MERCHANT, reviewer=BUYER, rating=5,
                  text=b"Great coffee", chain_id=CHAIN_ID):
    key = kit.keys[reviewer]
    unsigned = Review(h160(kit, merchant), purchase_txid, rating, text,
                      key.public_key.to_bytes(), bytes(64))
    return replace(unsigned, signature=key.sign(review_sig_digest(unsigned, chain_id)))


def signed_reply(kit, review_txid, *, signer=MERCHANT, text=b"Thanks, come again!",
                 chain_id=CHAIN_ID):
    key = kit.keys[signer]
    unsigned = ReviewReply(review_txid, text, key.public_key.to_bytes(), bytes(64))
    return replace(unsigned, signature=key.sign(reply_sig_digest(unsigned, chain_id)))


def signed_reward(kit, asset, refs, *, kind=REWARD_PURCHASES, signers=(MERCHANT,),
                  chain_id=CHAIN_ID):
    pubkeys = [pub(kit, i) for i in signers]
    unsigned = TokenReward(asset, kind, tuple(refs), tuple(KeySig(p, bytes(64)) for p in pubkeys))
    digest = reward_sig_digest(unsigned, chain_id)
    keys = tuple(KeySig(p, kit.keys[i].sign(digest)) for p, i in zip(pubkeys, signers, strict=True))
    return replace(unsigned, keys=keys)


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


def reward_tx(kit, reward, *, pay=100, held=1_000):
    """The issuer pays ``pay`` of the reward's asset to the buyer (change back to itself)."""
    inputs = [kit.fund(1_000)]
    outs = [kit.out(900, kit.p2a(ISSUER))]
    if held:
        inputs.append(kit.fund(held, asset=reward.asset))
    if pay:
        outs.append(kit.out(pay, kit.p2a(BUYER), reward.asset))
    if held - pay:
        outs.append(kit.out(held - pay, kit.p2a(ISSUER), reward.asset))
    reward = bind_reward(reward, inputs, kit.keys, CHAIN_ID)
    return kit.spend(inputs, outs, payload=reward)


def mined_review(kit, state, *, merchant=MERCHANT, rating=4, height=HEIGHT - 2):
    """A purchase and its accepted review, recorded in ``state``; returns the review txid."""
    bought = purchase(kit, state, merchant=merchant, height=height - 1)
    tx = plain_tx(kit, signed_review(kit, bought.txid, merchant=merchant, rating=rating), BUYER)
    _, effect = accept(kit, tx, state, height)
    state.apply(effect)
    state.mine(tx, height)
    return tx.txid


# ---------------------------------------------------------------------------
# Context-free: symbols, names, decimals, amounts, reward lists, texts
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("symbol", [b"LOY", b"ABC123", b"A1B2C3D4E5F6", b"999"])
def test_valid_symbols(kit, state, symbol):
    check_symbol(symbol)
    check_transaction(issue_tx(kit, commit(kit, state, symbol.decode()), symbol), kit.params)


@pytest.mark.parametrize(
    "symbol",
    [b"loy", b"Loy", b"AB", b"A1B2C3D4E5F6G", b"", b"LO Y", b"LO-Y", b"L\xc3\x96Y", b"LOY\x00"],
)
def test_bad_symbols_are_refused(kit, state, symbol):
    with pytest.raises(TxInvalid) as e:
        check_symbol(symbol)
    assert e.value.reason == "bad-token-symbol"
    malformed(kit, issue_tx(kit, commit(kit, state), symbol), "bad-token-symbol")


@pytest.mark.parametrize(
    "name", [b"L", b"x" * MAX_TOKEN_NAME, "Café ☕ points".encode(), b"Loyalty points"]
)
def test_valid_token_names(kit, state, name):
    check_transaction(issue_tx(kit, commit(kit, state), name=name), kit.params)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        (b"", "bad-token-name-length"),
        (b"x" * (MAX_TOKEN_NAME + 1), "bad-token-name-length"),
        (b"Loyalty\npoints", "bad-token-name-control"),
        (b"Loyalty\x07", "bad-token-name-control"),
        (b"\x7fDEL", "bad-token-name-control"),
        ("x\u0085y".encode(), "bad-token-name-control"),
        (b"\xff\xfe", "bad-token-name-utf8"),
        (b"caf\xc3", "bad-token-name-utf8"),
        (b"\xed\xa0\x80", "bad-token-name-utf8"),  # an encoded surrogate
    ],
)
def test_bad_token_names_are_refused(kit, state, name, reason):
    malformed(kit, issue_tx(kit, commit(kit, state), name=name), reason)


def test_decimals_up_to_8_are_valid_and_9_is_refused(kit, state):
    check_transaction(issue_tx(kit, commit(kit, state), decimals=0), kit.params)
    check_transaction(issue_tx(kit, commit(kit, state), decimals=MAX_DECIMALS), kit.params)
    malformed(kit, issue_tx(kit, commit(kit, state), decimals=9), "bad-token-decimals")
    malformed(kit, issue_tx(kit, commit(kit, state), decimals=255), "bad-token-decimals")


@pytest.mark.parametrize("cls", [TokenMint, TokenBurn])
def test_mint_and_burn_amounts_must_be_1_to_max(kit, cls):
    check_transaction(plain_tx(kit, cls(LOY, 1)), kit.params)
    check_transaction(plain_tx(kit, cls(LOY, MAX_AMOUNT)), kit.params)
    malformed(kit, plain_tx(kit, cls(LOY, 0)), "bad-token-amount")
    malformed(kit, plain_tx(kit, cls(LOY, MAX_AMOUNT + 1)), "bad-token-amount")


def test_commit_and_freeze_have_no_context_free_rules(kit):
    check_transaction(plain_tx(kit, TokenCommit(bytes(32))), kit.params)
    check_transaction(plain_tx(kit, TokenFreeze(LOY)), kit.params)


def test_valid_reward_lists(kit):
    refs = [sha256(b"a"), sha256(b"b")]
    check_transaction(plain_tx(kit, signed_reward(kit, LOY, refs)), kit.params)
    both = signed_reward(kit, LOY, refs, kind=REWARD_REVIEWS, signers=(MERCHANT, OTHER_MERCHANT))
    check_transaction(plain_tx(kit, both), kit.params)


def test_reward_of_unknown_kind_is_refused(kit):
    reward = replace(signed_reward(kit, LOY, [sha256(b"a")]), kind=2)
    malformed(kit, plain_tx(kit, reward), "bad-token-reward-kind")


def test_reward_without_refs_is_refused(kit):
    malformed(kit, plain_tx(kit, signed_reward(kit, LOY, [])), "bad-token-reward-refs")


def test_reward_listing_a_ref_twice_is_refused(kit):
    refs = [sha256(b"a"), sha256(b"b"), sha256(b"a")]
    malformed(kit, plain_tx(kit, signed_reward(kit, LOY, refs)), "bad-token-reward-refs")


def test_reward_without_keys_is_refused(kit):
    reward = replace(signed_reward(kit, LOY, [sha256(b"a")]), keys=())
    malformed(kit, plain_tx(kit, reward), "bad-token-reward-keys")


def test_reward_listing_a_key_twice_is_refused(kit):
    reward = signed_reward(kit, LOY, [sha256(b"a")], signers=(MERCHANT, OTHER_MERCHANT, MERCHANT))
    malformed(kit, plain_tx(kit, reward), "bad-token-reward-keys")


@pytest.mark.parametrize("rating", [1, 2, 3, 4, 5])
def test_ratings_1_to_5_are_valid(kit, rating):
    check_transaction(plain_tx(kit, signed_review(kit, sha256(b"p"), rating=rating)), kit.params)


@pytest.mark.parametrize("rating", [0, 6, 255])
def test_ratings_outside_1_to_5_are_refused(kit, rating):
    malformed(kit, plain_tx(kit, signed_review(kit, sha256(b"p"), rating=rating)),
              "bad-review-rating")


@pytest.mark.parametrize(
    "text", [b"", b"x" * MAX_REVIEW_TEXT, "Très bon café ☕ — 5/5".encode(), b"tab-free text"]
)
def test_valid_review_texts(kit, text):
    check_transaction(plain_tx(kit, signed_review(kit, sha256(b"p"), text=text)), kit.params)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b"x" * (MAX_REVIEW_TEXT + 1), "bad-review-text-length"),
        (b"Great\ncoffee", "bad-review-text-control"),
        (b"Great\x07coffee", "bad-review-text-control"),
        (b"\tindented", "bad-review-text-control"),
        (b"caf\xe9", "bad-review-text-utf8"),
        (b"\xc0\xaf", "bad-review-text-utf8"),  # overlong encoding of "/"
    ],
)
def test_bad_review_texts_are_refused(kit, text, reason):
    malformed(kit, plain_tx(kit, signed_review(kit, sha256(b"p"), text=text)), reason)


def test_review_text_length_counts_bytes_not_characters(kit):
    at_limit = "é".encode() * (MAX_REVIEW_TEXT // 2)
    check_transaction(plain_tx(kit, signed_review(kit, sha256(b"p"), text=at_limit)), kit.params)
    over = at_limit + b"x"
    malformed(kit, plain_tx(kit, signed_review(kit, sha256(b"p"), text=over)),
              "bad-review-text-length")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b"", "bad-reply-text-length"),
        (b"x" * (MAX_REVIEW_TEXT + 1), "bad-reply-text-length"),
        (b"Thanks\n", "bad-reply-text-control"),
        (b"\x07", "bad-reply-text-control"),
        (b"\xff", "bad-reply-text-utf8"),
    ],
)
def test_bad_reply_texts_are_refused(kit, text, reason):
    malformed(kit, plain_tx(kit, signed_reply(kit, sha256(b"r"), text=text)), reason)


def test_valid_reply_texts(kit):
    for text in (b"x", b"x" * MAX_REVIEW_TEXT, "Merci ☕".encode()):
        check_transaction(plain_tx(kit, signed_reply(kit, sha256(b"r"), text=text)), kit.params)


# ---------------------------------------------------------------------------
# Token issue (the reveal)
# ---------------------------------------------------------------------------


def test_valid_issue_creates_the_record_and_burns_the_fee(kit, state):
    tx = issue_tx(kit, commit(kit, state), supply=1_000_000)
    fee, effect = accept(kit, tx, state)
    assert fee == 100  # surplus (ISSUE_FEE + 100) minus the burned issue fee
    assert effect.burned == ISSUE_FEE
    assert effect.deltas == {LOY: 1_000_000, LOY_AUTH: 1}
    assert decoded(effect).tokens == {
        LOY: TokenRecord(LOY, "LOY", "Loyalty points", 2, h160(kit, ISSUER), 1_000_000, True,
                         HEIGHT, tx.txid)
    }
    d = decoded(effect)
    assert not d.rewarded and not d.reviews and not d.replies


def test_issue_burning_exactly_the_fee_pays_no_fee(kit, state):
    tx = issue_tx(kit, commit(kit, state), change=COMMIT_VALUE - ISSUE_FEE)
    fee, effect = accept(kit, tx, state)
    assert fee == 0
    assert effect.burned == ISSUE_FEE


def test_issue_fee_comes_from_all_native_inputs(kit, state):
    extra = kit.fund(ISSUE_FEE)
    tx = issue_tx(kit, commit(kit, state), change=COMMIT_VALUE - 30)
    tx = kit.spend([txin.prevout for txin in tx.inputs] + [extra], tx.outputs, payload=tx.payload)
    fee, _ = accept(kit, tx, state)
    assert fee == 30


def test_issue_not_burning_the_fee_is_refused(kit, state):
    tx = issue_tx(kit, commit(kit, state), change=COMMIT_VALUE - ISSUE_FEE + 1)
    refuse(kit, tx, state, "bad-token-issue-fee")
    refuse(kit, issue_tx(kit, commit(kit, state), change=COMMIT_VALUE), state,
           "bad-token-issue-fee")


def test_issue_without_fee_param_burns_nothing(kit, state):
    kit.params = ConsensusParams(CHAIN_ID)
    tx = issue_tx(kit, commit(kit, state), change=COMMIT_VALUE)
    fee, effect = accept(kit, tx, state)
    assert (fee, effect.burned) == (0, 0)


def test_fixed_supply_issue(kit, state):
    tx = issue_tx(kit, commit(kit, state), supply=21_000, mintable=False)
    _, effect = accept(kit, tx, state)
    record = decoded(effect).tokens[LOY]
    assert (record.supply, record.mintable, record.issuer) == (21_000, False, h160(kit, ISSUER))
    assert effect.deltas == {LOY: 21_000, LOY_AUTH: 0}


def test_mintable_issue_with_zero_supply_is_valid(kit, state):
    _, effect = accept(kit, issue_tx(kit, commit(kit, state), supply=0), state)
    assert (decoded(effect).tokens[LOY].supply, decoded(effect).tokens[LOY].mintable) == (0, True)


def test_issue_supply_is_the_sum_of_its_outputs(kit, state):
    tx = issue_tx(kit, commit(kit, state), supply=700)
    outs = tx.outputs + (kit.out(300, kit.p2a(BUYER), LOY),)
    tx = kit.spend([tx.inputs[0].prevout], outs, payload=tx.payload)
    _, effect = accept(kit, tx, state)
    assert decoded(effect).tokens[LOY].supply == 1_000


def test_issue_commitment_is_case_insensitive(kit, state):
    _, effect = accept(kit, issue_tx(kit, commit(kit, state, "loy")), state)
    assert decoded(effect).tokens[LOY].symbol == "LOY"


def test_issue_spending_another_output_of_the_commit_is_refused(kit, state):
    commit_op = commit(kit, state)
    second = Outpoint(commit_op.txid, 1)
    kit.view[second] = Coin(kit.out(COMMIT_VALUE, kit.p2a(ISSUER)), HEIGHT - 1)
    refuse(kit, issue_tx(kit, second), state, "bad-token-no-commit")


def test_issue_whose_commit_is_a_later_input_is_refused(kit, state):
    commit_op = commit(kit, state)
    other = kit.fund(COMMIT_VALUE, height=HEIGHT - 1)
    tx = issue_tx(kit, commit_op)
    tx = kit.spend([other, commit_op], tx.outputs, payload=tx.payload)
    refuse(kit, tx, state, "bad-token-no-commit")


def test_issue_in_the_commit_block_is_refused(kit, state):
    refuse(kit, issue_tx(kit, commit(kit, state, height=HEIGHT)), state, "bad-token-reveal-early")


def test_issue_in_the_block_after_the_commit_is_valid(kit, state):
    accept(kit, issue_tx(kit, commit(kit, state, height=HEIGHT - 1)), state)


def test_issue_spending_a_non_commit_tx_is_refused(kit, state):
    op = kit.fund(COMMIT_VALUE)
    plain = kit.spend([op], [kit.out(COMMIT_VALUE, kit.p2a(ISSUER))])
    state.mine(plain, HEIGHT - 1)
    plain_op = Outpoint(plain.txid, 0)
    kit.view[plain_op] = Coin(plain.outputs[0], HEIGHT - 1)
    refuse(kit, issue_tx(kit, plain_op), state, "bad-token-no-commit")


def test_issue_spending_a_coin_of_no_main_chain_tx_is_refused(kit, state):
    op = kit.fund(COMMIT_VALUE, height=HEIGHT - 1)
    op0 = Outpoint(op.txid, 0)
    kit.view[op0] = kit.view.pop(op)
    refuse(kit, issue_tx(kit, op0), state, "bad-token-no-commit")


def test_issue_with_the_wrong_salt_is_refused(kit, state):
    refuse(kit, issue_tx(kit, commit(kit, state), salt=OTHER_SALT), state, "bad-token-commitment")


def test_issue_of_another_symbol_than_committed_is_refused(kit, state):
    refuse(kit, issue_tx(kit, commit(kit, state, "LOY"), b"LOYAL"), state, "bad-token-commitment")


def test_issue_of_a_taken_symbol_is_refused(kit, state):
    register(kit, state, "LOY")
    refuse(kit, issue_tx(kit, commit(kit, state)), state, "bad-token-symbol-taken")


def test_issue_of_another_symbol_is_not_taken(kit, state):
    register(kit, state, "LOY")
    _, effect = accept(kit, issue_tx(kit, commit(kit, state, "COFFEE"), b"COFFEE"), state)
    assert list(decoded(effect).tokens) == [token_asset_id("COFFEE")]


@pytest.mark.parametrize("authority", [[], [2], [1, 1]])
def test_mintable_issue_needs_exactly_one_authority_of_1(kit, state, authority):
    tx = issue_tx(kit, commit(kit, state), mintable=True, authority=authority)
    refuse(kit, tx, state, "bad-token-authority")


@pytest.mark.parametrize("authority", [[1], [2]])
def test_fixed_supply_issue_with_an_authority_output_is_refused(kit, state, authority):
    tx = issue_tx(kit, commit(kit, state), mintable=False, authority=authority)
    refuse(kit, tx, state, "bad-token-authority")


def test_fixed_supply_issue_of_nothing_is_refused(kit, state):
    tx = issue_tx(kit, commit(kit, state), supply=0, mintable=False)
    refuse(kit, tx, state, "bad-token-empty")


def test_issue_creating_another_token_is_unbalanced(kit, state):
    tx = issue_tx(kit, commit(kit, state))
    outs = tx.outputs + (kit.out(5, kit.p2a(ISSUER), token_asset_id("OTHER")),)
    tx = kit.spend([tx.inputs[0].prevout], outs, payload=tx.payload)
    refuse(kit, tx, state, "bad-txns-in-belowout")


# ---------------------------------------------------------------------------
# Mint, burn, freeze
# ---------------------------------------------------------------------------


def test_valid_mint_updates_the_supply(kit, state):
    register(kit, state, supply=1_000)
    fee, effect = accept(kit, mint_tx(kit, LOY, 500), state)
    assert fee == 100
    assert effect.burned == 0
    assert effect.deltas == {LOY: 500, LOY_AUTH: 0}
    assert decoded(effect).tokens[LOY] == replace(state.tokens[LOY], supply=1_500)


def test_mint_may_hand_the_authority_to_another_key(kit, state):
    register(kit, state)
    accept(kit, mint_tx(kit, LOY, 1, authority_to=MERCHANT), state)


def test_mint_of_an_unknown_token_is_refused(kit, state):
    refuse(kit, mint_tx(kit, LOY), state, "bad-token-unknown")


def test_mint_of_a_fixed_supply_token_is_refused(kit, state):
    register(kit, state, mintable=False)
    refuse(kit, mint_tx(kit, LOY), state, "bad-token-fixed-supply")


def test_mint_without_the_authority_input_is_refused(kit, state):
    register(kit, state)
    refuse(kit, mint_tx(kit, LOY, authority_in=False), state, "bad-token-no-authority")


def test_mint_not_recreating_the_authority_is_refused(kit, state):
    register(kit, state)
    refuse(kit, mint_tx(kit, LOY, authority_out=0), state, "bad-txns-asset-unbalanced")


def test_mint_doubling_the_authority_is_refused(kit, state):
    register(kit, state)
    refuse(kit, mint_tx(kit, LOY, authority_out=2), state, "bad-txns-in-belowout")


@pytest.mark.parametrize("minted", [501, 499, 0])
def test_mint_creating_other_than_the_payload_amount_is_refused(kit, state, minted):
    register(kit, state)
    refuse(kit, mint_tx(kit, LOY, 500, minted=minted), state, "bad-txns-asset-unbalanced")


def test_mint_up_to_max_supply_is_valid_and_beyond_overflows(kit, state):
    register(kit, state, supply=MAX_AMOUNT - 10)
    _, effect = accept(kit, mint_tx(kit, LOY, 10), state)
    assert decoded(effect).tokens[LOY].supply == MAX_AMOUNT
    refuse(kit, mint_tx(kit, LOY, 11), state, "bad-token-supply-overflow")


def test_mint_of_another_token_with_this_authority_is_refused(kit, state):
    register(kit, state, "LOY")
    coffee = register(kit, state, "COFFEE")
    tx = mint_tx(kit, LOY)
    tx = kit.spend([t.prevout for t in tx.inputs], tx.outputs[:2] + (kit.out(500, asset=coffee),),
                   payload=TokenMint(coffee, 500))
    refuse(kit, tx, state, "bad-token-no-authority")


def test_valid_burn_updates_the_supply(kit, state):
    register(kit, state, supply=10_000)
    fee, effect = accept(kit, burn_tx(kit, LOY, 300, held=1_000), state)
    assert fee == 100
    assert effect.deltas == {LOY: -300}
    assert decoded(effect).tokens[LOY].supply == 9_700


def test_burning_everything_held_is_valid(kit, state):
    register(kit, state, supply=1_000)
    _, effect = accept(kit, burn_tx(kit, LOY, 1_000, held=1_000), state)
    assert decoded(effect).tokens[LOY].supply == 0


def test_burn_of_a_fixed_supply_token_is_valid(kit, state):
    register(kit, state, supply=1_000, mintable=False)
    _, effect = accept(kit, burn_tx(kit, LOY, 1), state)
    d = decoded(effect)
    assert (d.tokens[LOY].supply, d.tokens[LOY].mintable) == (999, False)


def test_burning_more_than_the_inputs_hold_is_refused(kit, state):
    register(kit, state)
    refuse(kit, burn_tx(kit, LOY, 1_001, held=1_000, left=0), state,
           "bad-token-burn-exceeds-inputs")


@pytest.mark.parametrize("left", [701, 699, 1_000])
def test_burn_whose_outputs_are_not_reduced_by_exactly_the_amount_is_refused(kit, state, left):
    register(kit, state)
    refuse(kit, burn_tx(kit, LOY, 300, held=1_000, left=left), state,
           "bad-txns-asset-unbalanced")


def test_burn_of_an_unknown_token_is_refused(kit, state):
    refuse(kit, burn_tx(kit, LOY, 300), state, "bad-token-unknown")


def test_valid_freeze_fixes_the_supply(kit, state):
    register(kit, state, supply=1_000)
    fee, effect = accept(kit, freeze_tx(kit, LOY), state)
    assert fee == 100
    assert effect.deltas == {LOY_AUTH: -1}
    assert decoded(effect).tokens[LOY] == replace(state.tokens[LOY], mintable=False)


def test_freeze_without_the_authority_is_refused(kit, state):
    register(kit, state)
    refuse(kit, freeze_tx(kit, LOY, authority_in=False), state, "bad-token-no-authority")


def test_freeze_keeping_the_authority_is_refused(kit, state):
    register(kit, state)
    refuse(kit, freeze_tx(kit, LOY, authority_out=1), state, "bad-txns-asset-unbalanced")


def test_freeze_of_a_fixed_supply_token_is_refused(kit, state):
    register(kit, state, mintable=False)
    refuse(kit, freeze_tx(kit, LOY), state, "bad-token-fixed-supply")


def test_freeze_of_an_unknown_token_is_refused(kit, state):
    refuse(kit, freeze_tx(kit, LOY), state, "bad-token-unknown")


# ---------------------------------------------------------------------------
# Plain token transfers (no payload)
# ---------------------------------------------------------------------------


def test_balanced_plain_token_transfer_is_valid(kit, state):
    register(kit, state)
    t = kit.fund(1_000, asset=LOY)
    n = kit.fund(1_000)
    tx = kit.spend([t, n], [kit.out(400, asset=LOY), kit.out(600, asset=LOY), kit.out(950)])
    fee, effect = accept(kit, tx, state)
    assert fee == 50
    assert effect == O2OEffect()


def test_plain_transfer_creating_tokens_is_refused(kit, state):
    # Creating tokens without a payload trips the "outputs exceed inputs" rule
    # first (bad-txns-in-belowout), before the per-asset balance rule.
    register(kit, state)
    t = kit.fund(1_000, asset=LOY)
    tx = kit.spend([t, kit.fund(1_000)], [kit.out(1_001, asset=LOY), kit.out(950)])
    refuse(kit, tx, state, "bad-txns-in-belowout")
    tx = kit.spend([kit.fund(1_000)], [kit.out(1, asset=LOY_AUTH), kit.out(950)])
    refuse(kit, tx, state, "bad-txns-in-belowout")


def test_plain_transfer_destroying_tokens_is_refused(kit, state):
    register(kit, state)
    t = kit.fund(1_000, asset=LOY)
    tx = kit.spend([t, kit.fund(1_000)], [kit.out(999, asset=LOY), kit.out(950)])
    refuse(kit, tx, state, "bad-txns-asset-unbalanced")
    a = kit.fund(1, asset=LOY_AUTH)
    tx = kit.spend([a, kit.fund(1_000)], [kit.out(950)])
    refuse(kit, tx, state, "bad-txns-asset-unbalanced")


def test_asset_conservation_with_deltas(kit):
    t = kit.fund(100, asset=LOY)
    tx = kit.unsigned([t, kit.fund(1_000)], [kit.out(150, asset=LOY), kit.out(900)])
    coins = resolve_inputs(tx, kit.view)
    assert check_asset_conservation(tx, coins, {LOY: 50}) == 100
    for delta, reason in ((49, "bad-txns-asset-unbalanced"), (51, "bad-txns-asset-unbalanced"),
                          (0, "bad-txns-in-belowout"), (-50, "bad-txns-in-belowout")):
        with pytest.raises(TxInvalid) as e:
            check_asset_conservation(tx, coins, {LOY: delta})
        assert e.value.reason == reason
    # A delta for an asset the tx does not touch must still be met.
    with pytest.raises(TxInvalid) as e:
        check_asset_conservation(tx, coins, {LOY: 50, LOY_AUTH: 1})
    assert e.value.reason == "bad-txns-asset-unbalanced"


# ---------------------------------------------------------------------------
# Rewards
# ---------------------------------------------------------------------------


def test_valid_purchase_reward(kit, state):
    register(kit, state)
    bought = purchase(kit, state)
    tx = reward_tx(kit, signed_reward(kit, LOY, [bought.txid]))
    fee, effect = accept(kit, tx, state)
    assert fee == 100
    assert decoded(effect).rewarded == {(LOY, bought.txid): tx.txid}
    assert effect.deltas == {}
    assert effect.burned == 0
    assert not decoded(effect).tokens


def test_reward_of_several_purchases_to_several_merchant_keys(kit, state):
    register(kit, state)
    a = purchase(kit, state, merchant=MERCHANT)
    b = purchase(kit, state, merchant=OTHER_MERCHANT)
    reward = signed_reward(kit, LOY, [a.txid, b.txid], signers=(MERCHANT, OTHER_MERCHANT))
    tx = reward_tx(kit, reward)
    _, effect = accept(kit, tx, state)
    assert decoded(effect).rewarded == {(LOY, a.txid): tx.txid, (LOY, b.txid): tx.txid}


def test_valid_review_reward(kit, state):
    register(kit, state)
    review_txid = mined_review(kit, state)
    tx = reward_tx(kit, signed_reward(kit, LOY, [review_txid], kind=REWARD_REVIEWS))
    _, effect = accept(kit, tx, state)
    assert decoded(effect).rewarded == {(LOY, review_txid): tx.txid}


def test_reward_in_an_unknown_token_is_refused(kit, state):
    bought = purchase(kit, state)
    refuse(kit, reward_tx(kit, signed_reward(kit, LOY, [bought.txid])), state, "bad-token-unknown")


def test_reward_paying_none_of_the_asset_is_refused(kit, state):
    register(kit, state)
    bought = purchase(kit, state)
    tx = reward_tx(kit, signed_reward(kit, LOY, [bought.txid]), pay=0, held=0)
    refuse(kit, tx, state, "bad-token-reward-empty")


def test_reward_paying_another_token_only_is_refused(kit, state):
    register(kit, state)
    coffee = register(kit, state, "COFFEE")
    bought = purchase(kit, state)
    reward = signed_reward(kit, LOY, [bought.txid])
    tx = reward_tx(kit, replace(reward, asset=coffee))
    tx = kit.spend([t.prevout for t in tx.inputs], tx.outputs, payload=reward)
    refuse(kit, tx, state, "bad-token-reward-empty")


def test_reward_of_an_already_rewarded_ref_is_refused(kit, state):
    register(kit, state)
    bought = purchase(kit, state)
    state.rewarded[(LOY, bought.txid)] = sha256(b"earlier reward")
    refuse(kit, reward_tx(kit, signed_reward(kit, LOY, [bought.txid])), state,
           "bad-token-reward-duplicate")


def test_ref_rewarded_in_one_token_can_be_rewarded_in_another(kit, state):
    register(kit, state)
    coffee = register(kit, state, "COFFEE")
    bought = purchase(kit, state)
    state.rewarded[(LOY, bought.txid)] = sha256(b"earlier reward")
    tx = reward_tx(kit, signed_reward(kit, coffee, [bought.txid]))
    _, effect = accept(kit, tx, state)
    assert decoded(effect).rewarded == {(coffee, bought.txid): tx.txid}


def test_reward_of_a_purchase_not_in_the_chain_is_refused(kit, state):
    register(kit, state)
    refuse(kit, reward_tx(kit, signed_reward(kit, LOY, [sha256(b"nowhere")])), state,
           "bad-token-reward-unknown")


def test_reward_of_a_purchase_that_paid_no_merchant_key_is_refused(kit, state):
    register(kit, state)
    bought = purchase(kit, state, merchant=OTHER_MERCHANT)
    refuse(kit, reward_tx(kit, signed_reward(kit, LOY, [bought.txid])), state,
           "bad-token-reward-not-merchant")


def test_reward_one_listed_purchase_of_another_merchant_spoils_it(kit, state):
    register(kit, state)
    ok = purchase(kit, state, merchant=MERCHANT)
    other = purchase(kit, state, merchant=OTHER_MERCHANT)
    refuse(kit, reward_tx(kit, signed_reward(kit, LOY, [ok.txid, other.txid])), state,
           "bad-token-reward-not-merchant")


def test_reward_of_an_unknown_review_is_refused(kit, state):
    register(kit, state)
    bought = purchase(kit, state)  # a purchase is not a review
    reward = signed_reward(kit, LOY, [bought.txid], kind=REWARD_REVIEWS)
    refuse(kit, reward_tx(kit, reward), state, "bad-token-reward-unknown")


def test_reward_of_a_review_of_another_merchant_is_refused(kit, state):
    register(kit, state)
    review_txid = mined_review(kit, state, merchant=OTHER_MERCHANT)
    reward = signed_reward(kit, LOY, [review_txid], kind=REWARD_REVIEWS)
    refuse(kit, reward_tx(kit, reward), state, "bad-token-reward-not-merchant")


def test_review_reward_of_a_purchase_txid_is_not_a_purchase_reward(kit, state):
    register(kit, state)
    review_txid = mined_review(kit, state)
    reward = signed_reward(kit, LOY, [review_txid], kind=REWARD_PURCHASES)
    # The review tx itself paid the merchant nothing.
    refuse(kit, reward_tx(kit, reward), state, "bad-token-reward-not-merchant")


def test_reward_with_a_bad_merchant_signature_fails_verification(kit, state):
    register(kit, state)
    bought = purchase(kit, state)
    reward = signed_reward(kit, LOY, [bought.txid])
    digest = reward_sig_digest(reward, CHAIN_ID)
    forged = KeySig(pub(kit, MERCHANT), kit.keys[STRANGER].sign(digest))
    tx = reward_tx(kit, replace(reward, keys=(forged,)))
    assert bad_signature(kit, tx, state) == len(tx.inputs)


def test_reward_signed_for_another_chain_fails_verification(kit, state):
    register(kit, state)
    bought = purchase(kit, state)
    tx = reward_tx(kit, signed_reward(kit, LOY, [bought.txid], chain_id="o2o-other"))
    bad_signature(kit, tx, state)


def test_reward_with_refs_changed_after_signing_fails_verification(kit, state):
    register(kit, state)
    a, b = purchase(kit, state), purchase(kit, state)
    reward = signed_reward(kit, LOY, [a.txid])
    tx = reward_tx(kit, replace(reward, refs=(a.txid, b.txid)))
    bad_signature(kit, tx, state)


def test_reward_with_one_good_and_one_bad_key_fails_verification(kit, state):
    register(kit, state)
    bought = purchase(kit, state)
    reward = signed_reward(kit, LOY, [bought.txid], signers=(MERCHANT, OTHER_MERCHANT))
    second = reward.keys[1]
    bad = KeySig(second.pubkey, reward.keys[0].signature)
    tx = reward_tx(kit, replace(reward, keys=(reward.keys[0], bad)))
    assert bad_signature(kit, tx, state) == len(tx.inputs) + 1


# ---------------------------------------------------------------------------
# Reviews
# ---------------------------------------------------------------------------


def test_valid_review_records_it(kit, state):
    bought = purchase(kit, state, paid=5_000, height=HEIGHT - 3)
    tx = plain_tx(kit, signed_review(kit, bought.txid, rating=4), BUYER)
    fee, effect = accept(kit, tx, state)
    assert fee == 100
    assert decoded(effect).reviews == {
        tx.txid: ReviewRecord(h160(kit, MERCHANT), h160(kit, BUYER), bought.txid, 4, 5_000, HEIGHT)
    }
    d = decoded(effect)
    assert not d.tokens and not d.rewarded and not d.replies
    assert effect.deltas == {} and effect.burned == 0


def test_review_may_be_published_by_anyone(kit, state):
    bought = purchase(kit, state)
    tx = plain_tx(kit, signed_review(kit, bought.txid), STRANGER)
    _, effect = accept(kit, tx, state)
    assert decoded(effect).reviews[tx.txid].reviewer == h160(kit, BUYER)


def test_review_with_empty_text_is_valid(kit, state):
    bought = purchase(kit, state)
    accept(kit, plain_tx(kit, signed_review(kit, bought.txid, text=b""), BUYER), state)


def test_review_of_a_purchase_not_in_the_chain_is_refused(kit, state):
    tx = plain_tx(kit, signed_review(kit, sha256(b"nowhere")), BUYER)
    refuse(kit, tx, state, "bad-review-no-purchase")


def test_review_exactly_at_the_window_is_valid(kit, state):
    bought = purchase(kit, state, height=HEIGHT - WINDOW)
    accept(kit, plain_tx(kit, signed_review(kit, bought.txid), BUYER), state)


def test_review_outside_the_window_is_refused(kit, state):
    bought = purchase(kit, state, height=HEIGHT - WINDOW - 1)
    refuse(kit, plain_tx(kit, signed_review(kit, bought.txid), BUYER), state, "bad-review-window")


def test_review_naming_another_merchant_is_refused(kit, state):
    bought = purchase(kit, state, merchant=MERCHANT)
    review = signed_review(kit, bought.txid, merchant=OTHER_MERCHANT)
    refuse(kit, plain_tx(kit, review, BUYER), state, "bad-review-wrong-merchant")


def test_review_of_a_purchase_at_the_minimum_is_valid(kit, state):
    bought = purchase(kit, state, paid=MIN_PURCHASE)
    _, effect = accept(kit, plain_tx(kit, signed_review(kit, bought.txid), BUYER), state)
    assert next(iter(decoded(effect).reviews.values())).value == MIN_PURCHASE


def test_review_of_a_purchase_below_the_minimum_is_refused(kit, state):
    bought = purchase(kit, state, paid=MIN_PURCHASE - 1)
    refuse(kit, plain_tx(kit, signed_review(kit, bought.txid), BUYER), state,
           "bad-review-purchase-too-small")


def test_review_value_sums_every_payment_to_the_merchant(kit, state):
    op = mined_coin(kit, state, 100_000, kit.p2a(BUYER))
    outs = [kit.out(600, kit.p2a(MERCHANT)), kit.out(600, kit.p2a(MERCHANT)),
            kit.out(98_000, kit.p2a(BUYER))]
    bought = kit.spend([op], outs, [[kit.keys[BUYER]]])
    state.mine(bought, HEIGHT - 1)
    _, effect = accept(kit, plain_tx(kit, signed_review(kit, bought.txid), BUYER), state)
    assert next(iter(decoded(effect).reviews.values())).value == 1_200


def test_review_token_payment_does_not_count_as_a_purchase(kit, state):
    op = kit.fund(100_000, kit.p2a(BUYER))
    t = kit.fund(10_000, kit.p2a(BUYER), LOY)
    outs = [kit.out(10_000, kit.p2a(MERCHANT), LOY), kit.out(99_900, kit.p2a(BUYER))]
    bought = kit.spend([op, t], outs, [[kit.keys[BUYER]]] * 2)
    state.mine(bought, HEIGHT - 1)
    refuse(kit, plain_tx(kit, signed_review(kit, bought.txid), BUYER), state,
           "bad-review-wrong-merchant")


def test_merchant_reviewing_itself_is_refused(kit, state):
    bought = purchase(kit, state, merchant=MERCHANT, buyer=MERCHANT)
    review = signed_review(kit, bought.txid, merchant=MERCHANT, reviewer=MERCHANT)
    refuse(kit, plain_tx(kit, review, MERCHANT), state, "bad-review-self")


def test_review_of_someone_elses_purchase_is_refused(kit, state):
    bought = purchase(kit, state, buyer=BUYER)
    review = signed_review(kit, bought.txid, reviewer=STRANGER)
    refuse(kit, plain_tx(kit, review, STRANGER), state, "bad-review-not-buyer")


def test_second_review_of_a_purchase_is_refused(kit, state):
    bought = purchase(kit, state)
    state.reviewed[bought.txid] = sha256(b"first review")
    refuse(kit, plain_tx(kit, signed_review(kit, bought.txid), BUYER), state,
           "bad-review-duplicate")


def test_review_with_text_tampered_after_signing_fails_verification(kit, state):
    bought = purchase(kit, state)
    review = replace(signed_review(kit, bought.txid, text=b"Great coffee"), text=b"Awful coffee")
    assert bad_signature(kit, plain_tx(kit, review, BUYER), state) == 1


def test_review_with_rating_tampered_after_signing_fails_verification(kit, state):
    bought = purchase(kit, state)
    review = replace(signed_review(kit, bought.txid, rating=5), rating=1)
    bad_signature(kit, plain_tx(kit, review, BUYER), state)


def test_review_signed_for_another_chain_fails_verification(kit, state):
    bought = purchase(kit, state)
    review = signed_review(kit, bought.txid, chain_id="o2o-other")
    bad_signature(kit, plain_tx(kit, review, BUYER), state)


# ---------------------------------------------------------------------------
# Replies
# ---------------------------------------------------------------------------


def test_valid_reply_records_it(kit, state):
    review_txid = mined_review(kit, state)
    tx = plain_tx(kit, signed_reply(kit, review_txid), MERCHANT)
    fee, effect = accept(kit, tx, state)
    assert fee == 100
    assert decoded(effect).replies == {review_txid: tx.txid}
    d = decoded(effect)
    assert not d.reviews and not d.tokens and not d.rewarded


def test_reply_to_no_review_is_refused(kit, state):
    bought = purchase(kit, state)  # a purchase txid is not a review
    refuse(kit, plain_tx(kit, signed_reply(kit, bought.txid), MERCHANT), state,
           "bad-reply-no-review")


@pytest.mark.parametrize("signer", [BUYER, OTHER_MERCHANT, STRANGER])
def test_reply_not_signed_by_the_merchant_key_is_refused(kit, state, signer):
    review_txid = mined_review(kit, state)
    refuse(kit, plain_tx(kit, signed_reply(kit, review_txid, signer=signer), MERCHANT), state,
           "bad-reply-not-merchant")


def test_second_reply_is_refused(kit, state):
    review_txid = mined_review(kit, state)
    state.replies[review_txid] = sha256(b"first reply")
    refuse(kit, plain_tx(kit, signed_reply(kit, review_txid), MERCHANT), state,
           "bad-reply-duplicate")


def test_reply_with_text_tampered_after_signing_fails_verification(kit, state):
    review_txid = mined_review(kit, state)
    reply = replace(signed_reply(kit, review_txid, text=b"Thanks!"), text=b"Liar!")
    assert bad_signature(kit, plain_tx(kit, reply, MERCHANT), state) == 1


def test_reply_with_a_stolen_merchant_pubkey_fails_verification(kit, state):
    review_txid = mined_review(kit, state)
    reply = signed_reply(kit, review_txid, signer=STRANGER)
    reply = replace(reply, pubkey=pub(kit, MERCHANT))
    bad_signature(kit, plain_tx(kit, reply, STRANGER), state)


# ---------------------------------------------------------------------------
# Payloads without contextual rules; o2o_claims
# ---------------------------------------------------------------------------


def test_commit_and_plain_payloads_have_an_empty_effect(kit, state):
    assert check_o2o_inputs(plain_tx(kit, TokenCommit(bytes(32))), [], HEIGHT, kit.params,
                            state) == O2OEffect()
    _, effect = accept(kit, plain_tx(kit, TokenCommit(sha256(b"c"))), EMPTY_STATE)
    assert effect == O2OEffect()


def test_o2o_claims(kit):
    purchase_txid, review_txid = sha256(b"p"), sha256(b"v")
    refs = [sha256(b"r1"), sha256(b"r2")]
    issue = TokenIssue(b"LOY", b"Loyalty", 2, True, SALT)
    assert o2o_claims(plain_tx(kit, issue)) == [("token", LOY)]
    assert o2o_claims(plain_tx(kit, signed_review(kit, purchase_txid))) == [
        ("review-of-purchase", purchase_txid)]
    assert o2o_claims(plain_tx(kit, signed_reply(kit, review_txid))) == [
        ("review-reply", review_txid)]
    assert o2o_claims(plain_tx(kit, signed_reward(kit, LOY, refs))) == [
        ("token-rewarded", LOY + refs[0]), ("token-rewarded", LOY + refs[1])
    ]
    for payload in (TokenCommit(bytes(32)), TokenMint(LOY, 1), TokenBurn(LOY, 1),
                    TokenFreeze(LOY)):
        assert o2o_claims(plain_tx(kit, payload)) == []
    assert o2o_claims(kit.spend([kit.fund()], [kit.out(1)])) == []


def test_claims_of_issue_are_case_insensitive_on_the_asset(kit):
    issue = TokenIssue(b"loy", b"Loyalty", 2, True, SALT)
    assert o2o_claims(plain_tx(kit, issue)) == [("token", LOY)]


# ---------------------------------------------------------------------------
# O2OBlockView and apply_block: a block's own changes are visible to its later txs
# ---------------------------------------------------------------------------


PARENT = BlockHeader(HEIGHT - 1, sha256(b"o2o-rules/parent"), bytes(32), 1_700_000_000, 2)


def apply(kit, state, txs):
    return apply_block(kit.block(PARENT, txs), kit.view, kit.params, serial_verifier, state)


def refused_block(kit, state, txs, reason, index):
    with pytest.raises(BlockInvalid) as e:
        apply(kit, state, txs)
    assert e.value.reason == reason
    assert f"tx {index} " in e.value.message


def test_block_view_overlays_the_base_state(kit, state):
    asset = register(kit, state)
    base_record = state.tokens[asset]
    review_txid = mined_review(kit, state)
    view = O2OBlockView(state)
    assert typed(view).token(asset) == base_record
    assert typed(view).review(review_txid) == state.reviews[review_txid]
    assert view.main_tx(review_txid) == state.txs[review_txid]
    newer = replace(base_record, supply=1)
    record = ReviewRecord(h160(kit, MERCHANT), h160(kit, BUYER), sha256(b"p2"), 3, 1_000, HEIGHT)
    view.apply(effect_of(
        tokens={asset: newer}, rewarded={(asset, sha256(b"p2")): sha256(b"w")},
        reviews={sha256(b"v2"): record}, replies={review_txid: sha256(b"y")},
    ))
    assert typed(view).token(asset) == newer
    assert typed(view).rewarded_by(asset, sha256(b"p2")) == sha256(b"w")
    assert typed(view).review_of_purchase(sha256(b"p2")) == sha256(b"v2")
    assert typed(view).review(sha256(b"v2")) == record
    assert typed(view).reply_of(review_txid) == sha256(b"y")
    # The base is untouched; unknown keys fall through to it.
    assert state.tokens[asset] == base_record
    assert state.review_of_purchase(sha256(b"p2")) is None
    assert typed(view).review_of_purchase(state.reviews[review_txid].purchase) == review_txid
    assert decoded(view.changes).tokens == {asset: newer}


def test_two_reviews_of_one_purchase_in_one_block_are_refused(kit, state):
    bought = purchase(kit, state)
    first = plain_tx(kit, signed_review(kit, bought.txid, text=b"first"), BUYER)
    second = plain_tx(kit, signed_review(kit, bought.txid, text=b"second"), BUYER)
    effects = apply(kit, state, [first])
    assert list(decoded(effects.o2o).reviews) == [first.txid]
    refused_block(kit, state, [first, second], "bad-review-duplicate", 1)


def test_issue_then_mint_in_the_same_block_is_valid(kit, state):
    issue = issue_tx(kit, commit(kit, state), supply=1_000)
    auth_op = Outpoint(issue.txid, 1)
    assert issue.outputs[1].asset == LOY_AUTH
    fee_op = kit.fund(1_000)
    mint = kit.spend(
        [fee_op, auth_op],
        [kit.out(900, kit.p2a(ISSUER)), kit.out(1, kit.p2a(ISSUER), LOY_AUTH),
         kit.out(250, kit.p2a(ISSUER), LOY)],
        payload=TokenMint(LOY, 250),
    )
    effects = apply(kit, state, [issue, mint])
    record = decoded(effects.o2o).tokens[LOY]
    assert (record.supply, record.mintable, record.txid, record.height) == (
        1_250, True, issue.txid, HEIGHT)
    assert effects.fees == 100 + 100
    assert LOY not in state.tokens  # apply_block changes nothing itself


def test_issue_then_freeze_then_mint_in_one_block_is_refused(kit, state):
    issue = issue_tx(kit, commit(kit, state), supply=1_000)
    freeze = kit.spend([kit.fund(1_000), Outpoint(issue.txid, 1)], [kit.out(900)],
                       payload=TokenFreeze(LOY))
    effects = apply(kit, state, [issue, freeze])
    assert decoded(effects.o2o).tokens[LOY].mintable is False
    mint = mint_tx(kit, LOY, 10)
    refused_block(kit, state, [issue, freeze, mint], "bad-token-fixed-supply", 2)


def test_two_issues_of_one_symbol_in_one_block_are_refused(kit, state):
    first = issue_tx(kit, commit(kit, state))
    second = issue_tx(kit, commit(kit, state), supply=5)
    assert first.txid != second.txid
    refused_block(kit, state, [first, second], "bad-token-symbol-taken", 1)


def test_commit_and_issue_in_the_same_block_are_refused(kit, state):
    op = kit.fund(COMMIT_VALUE)
    commit_tx = kit.spend([op], [kit.out(COMMIT_VALUE, kit.p2a(ISSUER))],
                          payload=TokenCommit(token_commitment("LOY", SALT,
                                                               lock_bytes(kit.p2a(ISSUER)))))
    reveal = issue_tx(kit, Outpoint(commit_tx.txid, 0))
    refused_block(kit, state, [commit_tx, reveal], "bad-token-reveal-early", 1)


def test_review_then_reply_then_review_reward_in_one_block(kit, state):
    asset = register(kit, state)
    bought = purchase(kit, state)
    review = plain_tx(kit, signed_review(kit, bought.txid), BUYER)
    reply = plain_tx(kit, signed_reply(kit, review.txid), MERCHANT)
    reward = reward_tx(kit, signed_reward(kit, asset, [review.txid], kind=REWARD_REVIEWS))
    effects = apply(kit, state, [review, reply, reward])
    assert set(decoded(effects.o2o).reviews) == {review.txid}
    assert decoded(effects.o2o).replies == {review.txid: reply.txid}
    assert decoded(effects.o2o).rewarded == {(asset, review.txid): reward.txid}


def test_two_replies_in_one_block_are_refused(kit, state):
    review_txid = mined_review(kit, state)
    first = plain_tx(kit, signed_reply(kit, review_txid, text=b"one"), MERCHANT)
    second = plain_tx(kit, signed_reply(kit, review_txid, text=b"two"), MERCHANT)
    refused_block(kit, state, [first, second], "bad-reply-duplicate", 1)


def test_two_rewards_of_one_ref_in_one_block_are_refused(kit, state):
    asset = register(kit, state)
    bought = purchase(kit, state)
    first = reward_tx(kit, signed_reward(kit, asset, [bought.txid]))
    second = reward_tx(kit, signed_reward(kit, asset, [bought.txid]), pay=5)
    refused_block(kit, state, [first, second], "bad-token-reward-duplicate", 1)


def test_review_of_a_purchase_in_the_same_block_is_refused(kit, state):
    op = kit.fund(100_000, kit.p2a(BUYER))
    bought = kit.spend([op], [kit.out(5_000, kit.p2a(MERCHANT)), kit.out(94_900, kit.p2a(BUYER))],
                       [[kit.keys[BUYER]]])
    review = plain_tx(kit, signed_review(kit, bought.txid), BUYER)
    refused_block(kit, state, [bought, review], "bad-review-no-purchase", 1)


def test_block_with_a_tampered_review_fails_on_signatures(kit, state):
    bought = purchase(kit, state)
    ok = plain_tx(kit, signed_review(kit, bought.txid))
    other = purchase(kit, state)
    tampered = replace(signed_review(kit, other.txid, text=b"nice"), text=b"nasty")
    refused_block(kit, state, [ok, plain_tx(kit, tampered, BUYER)], "bad-txns-signature", 1)


def test_block_rules_report_the_cheapest_failure_first(kit, state):
    """A tampered review (signature) before a duplicate review (rule): the rule wins."""
    bought = purchase(kit, state)
    other = purchase(kit, state)
    tampered = replace(signed_review(kit, other.txid, text=b"nice"), text=b"nasty")
    first = plain_tx(kit, signed_review(kit, bought.txid, text=b"a"), BUYER)
    dup = plain_tx(kit, signed_review(kit, bought.txid, text=b"b"), BUYER)
    refused_block(kit, state, [plain_tx(kit, tampered, BUYER), first, dup],
                  "bad-review-duplicate", 2)


# -- review fixes: binding, payees, display tricks ------------------------------


def test_reward_payload_copied_into_another_tx_fails_verification(kit, state):
    """The merchant keys sign the carrying tx's inputs: a watcher who copies a
    pending reward into its own tx (its own inputs) cannot use up the slot."""
    asset = register(kit, state)
    bought = purchase(kit, state)
    honest = reward_tx(kit, signed_reward(kit, LOY, [bought.txid]))
    accept(kit, honest, state)
    # Same payload, the thief's own coins: one native, one LOY paid back to itself.
    inputs = [kit.fund(1_000, kit.p2a(STRANGER)), kit.fund(10, kit.p2a(STRANGER), asset=asset)]
    outs = [kit.out(900, kit.p2a(STRANGER)), kit.out(10, kit.p2a(BUYER), asset)]
    thief = kit.spend(inputs, outs, [[kit.keys[STRANGER]]] * 2, payload=honest.payload)
    assert bad_signature(kit, thief, state) == len(thief.inputs)


def test_reward_paying_only_the_merchant_is_refused(kit, state):
    register(kit, state)
    bought = purchase(kit, state)
    reward = signed_reward(kit, LOY, [bought.txid])
    inputs = [kit.fund(1_000, kit.p2a(MERCHANT)), kit.fund(50, kit.p2a(MERCHANT), asset=LOY)]
    outs = [kit.out(900, kit.p2a(MERCHANT)), kit.out(50, kit.p2a(MERCHANT), LOY)]
    reward = bind_reward(reward, inputs, kit.keys, CHAIN_ID)
    tx = kit.spend(inputs, outs, [[kit.keys[MERCHANT]]] * 2, payload=reward)
    refuse(kit, tx, state, "bad-token-reward-empty")


@pytest.mark.parametrize("text", ["ok \u202egnp.exe", "line\u2028break", "para\u2029", "\u200f"])
def test_review_text_with_bidi_or_separator_marks_is_refused(kit, state, text):
    bought = purchase(kit, state)
    tx = plain_tx(kit, signed_review(kit, bought.txid, text=text.encode()), BUYER)
    malformed(kit, tx, "bad-review-text-control")


def test_copied_commitment_cannot_be_revealed_by_the_copier(kit, state):
    """The commitment binds the lock of the commit's output 0: a watcher who
    republishes a victim's 32 bytes in a commit of its own (mined in time) and
    then reveals the victim's symbol and salt is refused."""
    victim = commit(kit, state)  # the victim's commit, output 0 locked to ISSUER
    copied = state.txs[victim.txid][0].payload.commitment
    op = kit.fund(COMMIT_VALUE, kit.p2a(STRANGER))
    thief_commit = kit.spend([op], [kit.out(COMMIT_VALUE, kit.p2a(STRANGER))],
                             [[kit.keys[STRANGER]]], payload=TokenCommit(copied))
    state.mine(thief_commit, HEIGHT - 1)
    thief_op = Outpoint(thief_commit.txid, 0)
    kit.view[thief_op] = Coin(thief_commit.outputs[0], HEIGHT - 1)
    outs = [kit.out(1_000, kit.p2a(STRANGER), token_asset_id("LOY")),
            kit.out(1, kit.p2a(STRANGER), authority_asset_id(token_asset_id("LOY"))),
            kit.out(COMMIT_VALUE - ISSUE_FEE - 100, kit.p2a(STRANGER))]
    reveal = kit.spend([thief_op], outs, [[kit.keys[STRANGER]]],
                       payload=TokenIssue(b"LOY", b"Loyalty points", 2, True, SALT))
    refuse(kit, reveal, state, "bad-token-commitment")
    accept(kit, issue_tx(kit, victim), state)  # the victim's own reveal still works


def test_buyer_cannot_use_up_the_reward_slot_of_its_own_purchase(kit, state):
    """The purchase paid the buyer's change address too, but a key that paid
    for a purchase is not its merchant: it cannot reward it (and so cannot
    take the once-per-token slot away from the real merchant)."""
    register(kit, state)
    bought = purchase(kit, state)
    grief = signed_reward(kit, LOY, [bought.txid], signers=(BUYER,))
    inputs = [kit.fund(1_000, kit.p2a(BUYER)), kit.fund(10, kit.p2a(BUYER), asset=LOY)]
    outs = [kit.out(900, kit.p2a(BUYER)), kit.out(10, kit.p2a(STRANGER), LOY)]
    grief = bind_reward(grief, inputs, kit.keys, CHAIN_ID)
    tx = kit.spend(inputs, outs, [[kit.keys[BUYER]]] * 2, payload=grief)
    refuse(kit, tx, state, "bad-token-reward-own-purchase")
    accept(kit, reward_tx(kit, signed_reward(kit, LOY, [bought.txid])), state)


# ---------------------------------------------------------------------------
# Who is a buyer: the owner of the money that paid the merchant
# ---------------------------------------------------------------------------

ARBITER, FRIEND = 5, 6
ESCROWED = 50_000
ESCROW_TIMEOUT = 1_000


def escrowed_coin(kit, state, *, payer=BUYER, payee=MERCHANT):
    """An escrow of ``ESCROWED`` from ``payer`` to ``payee`` (arbiter ``ARBITER``)
    created by a mined tx; returns its outpoint."""
    lock = Escrow(h160(kit, payer), ((h160(kit, payee), 10_000),), h160(kit, ARBITER),
                  ESCROW_TIMEOUT)
    return mined_coin(kit, state, ESCROWED, lock)


def escrow_purchase(kit, state, path, signers, outputs, *, extra=()):
    """Spend an escrow coin (plus the ``extra`` (outpoint, signer) inputs) into
    ``outputs``, signed by the key indexes ``signers``; the spend must be valid
    and take ``path``.  It is mined at ``HEIGHT - 5`` and returned."""
    escrow_op = escrowed_coin(kit, state)
    prevouts = [escrow_op, *(op for op, _ in extra)]
    keys = [[kit.keys[i] for i in signers], *([kit.keys[i]] for _, i in extra)]
    tx = kit.spend(prevouts, outputs, keys)
    _, effect = accept(kit, tx, state, HEIGHT - 5)
    assert decoded(effect).escrows[escrow_op] == (tx.txid, path)
    state.mine(tx, HEIGHT - 5)
    return tx


def review_tx(kit, bought, reviewer, merchant=MERCHANT):
    return plain_tx(kit, signed_review(kit, bought.txid, merchant=merchant, reviewer=reviewer),
                    reviewer)


def test_escrow_payer_reviews_the_merchant_it_released_to(kit, state):
    bought = escrow_purchase(kit, state, PATH_RELEASE, [BUYER],
                             [kit.out(ESCROWED - 100, kit.p2a(MERCHANT))])
    _, effect = accept(kit, review_tx(kit, bought, BUYER), state)
    (record,) = decoded(effect).reviews.values()
    assert (record.reviewer, record.merchant, record.value) == (
        h160(kit, BUYER), h160(kit, MERCHANT), ESCROWED - 100)


def test_escrow_released_to_the_merchant_cannot_be_reviewed_by_the_arbiter(kit, state):
    bought = escrow_purchase(kit, state, PATH_RELEASE, [BUYER],
                             [kit.out(ESCROWED - 100, kit.p2a(MERCHANT))])
    refuse(kit, review_tx(kit, bought, ARBITER), state, "bad-review-not-buyer")


def test_arbiter_of_a_dispute_ruled_for_the_merchant_is_refused(kit, state):
    """The arbiter signed the purchase's only input, but the money was the payer's."""
    bought = escrow_purchase(kit, state, PATH_DISPUTE, [ARBITER, MERCHANT],
                             [kit.out(ESCROWED - 100, kit.p2a(MERCHANT))])
    refuse(kit, review_tx(kit, bought, ARBITER), state, "bad-review-not-buyer")
    _, effect = accept(kit, review_tx(kit, bought, BUYER), state)  # the slot is the payer's
    assert next(iter(decoded(effect).reviews.values())).reviewer == h160(kit, BUYER)


def test_arbiter_paying_a_dispute_fee_from_its_own_coin_is_still_no_buyer(kit, state):
    fee_op = mined_coin(kit, state, 10_000, kit.p2a(ARBITER))
    bought = escrow_purchase(kit, state, PATH_DISPUTE, [ARBITER, MERCHANT],
                             [kit.out(ESCROWED, kit.p2a(MERCHANT)),
                              kit.out(9_900, kit.p2a(ARBITER))], extra=[(fee_op, ARBITER)])
    refuse(kit, review_tx(kit, bought, ARBITER), state, "bad-review-not-buyer")
    accept(kit, review_tx(kit, bought, BUYER), state)


def test_dispute_ruled_for_the_payer_lets_no_co_signer_review_the_payer(kit, state):
    bought = escrow_purchase(kit, state, PATH_DISPUTE, [ARBITER, MERCHANT],
                             [kit.out(ESCROWED - 100, kit.p2a(BUYER))])
    for reviewer in (MERCHANT, ARBITER):
        refuse(kit, review_tx(kit, bought, reviewer, merchant=BUYER), state,
               "bad-review-not-buyer")


def test_payee_of_a_refund_cannot_review_the_payer(kit, state):
    bought = escrow_purchase(kit, state, PATH_REFUND, [MERCHANT],
                             [kit.out(ESCROWED - 100, kit.p2a(BUYER))])
    refuse(kit, review_tx(kit, bought, MERCHANT, merchant=BUYER), state, "bad-review-refund")


def test_refund_with_the_payees_own_fee_coin_is_still_no_purchase(kit, state):
    """The payee's own input makes it fund the tx, and its change pays the payee:
    neither side can review the other on a refund."""
    fee_op = mined_coin(kit, state, 10_000, kit.p2a(MERCHANT))
    bought = escrow_purchase(kit, state, PATH_REFUND, [MERCHANT],
                             [kit.out(ESCROWED, kit.p2a(BUYER)),
                              kit.out(9_900, kit.p2a(MERCHANT))], extra=[(fee_op, MERCHANT)])
    refuse(kit, review_tx(kit, bought, MERCHANT, merchant=BUYER), state, "bad-review-refund")
    refuse(kit, review_tx(kit, bought, BUYER, merchant=MERCHANT), state, "bad-review-refund")


def test_two_customers_paying_together_are_both_buyers(kit, state):
    ops = [mined_coin(kit, state, 3_000, kit.p2a(i)) for i in (BUYER, FRIEND)]
    bought = kit.spend(ops, [kit.out(5_900, kit.p2a(MERCHANT))],
                       [[kit.keys[BUYER]], [kit.keys[FRIEND]]])
    state.mine(bought, HEIGHT - 5)
    for reviewer in (BUYER, FRIEND):
        _, effect = accept(kit, review_tx(kit, bought, reviewer), state)
        assert next(iter(decoded(effect).reviews.values())).reviewer == h160(kit, reviewer)
    refuse(kit, review_tx(kit, bought, STRANGER), state, "bad-review-not-buyer")
    # One review per purchase: the first of them to be mined takes it.
    _, effect = accept(kit, review_tx(kit, bought, FRIEND), state)
    state.apply(effect)
    refuse(kit, review_tx(kit, bought, BUYER), state, "bad-review-duplicate")


def test_merchants_own_inputs_make_it_no_buyer_of_its_own_sale(kit, state):
    """The merchant adds a coin of its own (its change comes back): it is not a
    buyer of itself, the customer is; the merchant's money did pay the other
    merchant, so it may review that one."""
    ops = [mined_coin(kit, state, 3_000, kit.p2a(BUYER)),
           mined_coin(kit, state, 5_000, kit.p2a(MERCHANT))]
    outs = [kit.out(2_000, kit.p2a(MERCHANT)), kit.out(4_000, kit.p2a(MERCHANT)),
            kit.out(1_900, kit.p2a(OTHER_MERCHANT))]
    bought = kit.spend(ops, outs, [[kit.keys[BUYER]], [kit.keys[MERCHANT]]])
    state.mine(bought, HEIGHT - 5)
    refuse(kit, review_tx(kit, bought, MERCHANT), state, "bad-review-self")
    with pytest.raises(TxInvalid) as e:
        check_review_buyer(h160(kit, MERCHANT), h160(kit, MERCHANT), bought,
                           spent_locks(bought, state))
    assert e.value.reason == "bad-review-not-buyer"
    accept(kit, review_tx(kit, bought, BUYER), state)
    accept(kit, review_tx(kit, bought, MERCHANT, merchant=OTHER_MERCHANT), state)


def test_every_owner_of_a_multisig_coin_is_a_buyer(kit, state):
    """A 1-of-2 coin of BUYER and FRIEND, signed by BUYER: both own the money."""
    lock = kit.multisig(1, kit.sorted_keys(1, BUYER) + kit.sorted_keys(1, FRIEND))
    op = mined_coin(kit, state, 10_000, lock)
    bought = kit.spend([op], [kit.out(9_900, kit.p2a(MERCHANT))], [[kit.keys[BUYER]]])
    state.mine(bought, HEIGHT - 5)
    assert purchase_buyers(bought, spent_locks(bought, state)) == {h160(kit, BUYER),
                                                                   h160(kit, FRIEND)}
    accept(kit, review_tx(kit, bought, FRIEND), state)
    refuse(kit, review_tx(kit, bought, STRANGER), state, "bad-review-not-buyer")


def test_buyers_of_a_coinbase_are_nobody(kit, state):
    claim = kit.claim(HEIGHT - 5, 5_000)
    state.mine(claim, HEIGHT - 5)
    assert purchase_buyers(claim, spent_locks(claim, state)) == frozenset()

"""The RPC methods of the O2O families (tokens and rewards, reviews, escrow,
traceability, consent), called directly on a real in-process devnet node
whose chain holds one of each: issued and signed for real, sealed block by
block.  The chain is built once for the module; every test only reads it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest
from node_harness import (
    COIN_UNITS,
    CUSTOMER,
    FEE,
    MERCHANT,
    PAYEE,
    STRANGER,
    NodeHarness,
    p2a,
    wire,
)

from o2ocli.core.locks import Escrow, lock_bytes
from o2ocli.core.payloads import (
    ConsentGrant,
    ConsentRevoke,
    Review,
    ReviewReply,
    TokenCommit,
    TokenIssue,
    TraceEvent,
    TraceRegister,
    authority_asset_id,
    consent_sig_digest,
    item_asset_id,
    item_sig_digest,
    reply_sig_digest,
    review_sig_digest,
    revoke_sig_digest,
    token_asset_id,
    token_commitment,
)
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, Tx, TxIn, TxOut
from o2ocli.node.methods import consent, escrow, reviews, tokens, trace
from o2ocli.rpc import errors as E
from o2ocli.testing.chaingen import sign_tx

COIN = COIN_UNITS
SALT = bytes(range(32))
ITEM = "LOT-1"


@dataclass
class World:
    h: NodeHarness
    purchase: Tx
    purchase_height: int
    review: Tx
    reply: Tx
    issue: Tx
    register: Tx
    event: Tx
    escrow_open: Tx
    release: Tx
    grant: Tx
    revoked_grant: Tx
    revoke: Tx
    expired_grant: Tx


def grant_tx(h: NodeHarness, scope: bytes, until: int) -> Tx:
    """CUSTOMER grants MERCHANT ``scope`` until height ``until``."""
    key = CUSTOMER

    def payload(prevouts: list[Outpoint]) -> ConsentGrant:
        unsigned = ConsentGrant(MERCHANT.public_key.hash160(), scope, until,
                                key.public_key.to_bytes(), bytes(64))
        digest = consent_sig_digest(unsigned, h.spec.chain_id, wire(prevouts))
        return replace(unsigned, signature=key.sign(digest))

    return h.send(h.spend(key, [], payload))


def build_world(h: NodeHarness) -> World:
    chain_id = h.spec.chain_id
    merchant = MERCHANT.public_key.hash160()
    # 1: funding (CUSTOMER gets several coins: one per tx of a block).
    h.mine([h.spend(h.funds, [TxOut(NATIVE_ASSET, 100 * COIN, p2a(MERCHANT))]
                    + [TxOut(NATIVE_ASSET, 5 * COIN, p2a(CUSTOMER))] * 4)])
    # 2: a token commit, a purchase.
    commitment = token_commitment("GEMS", SALT, lock_bytes(p2a(MERCHANT)))
    commit = h.send(h.spend(MERCHANT, [TxOut(NATIVE_ASSET, COIN // 100, p2a(MERCHANT))],
                            TokenCommit(commitment)))
    purchase = h.send(h.pay(CUSTOMER, MERCHANT, 2 * COIN))
    purchase_height = h.mine().height
    # 3: the issue, a review, an item registration, two escrows.
    asset = token_asset_id("GEMS")
    issue = h.send(h.spend(
        MERCHANT,
        [TxOut(asset, 1_000, p2a(MERCHANT)), TxOut(authority_asset_id(asset), 1, p2a(MERCHANT))],
        TokenIssue(b"GEMS", b"Gem points", 2, True, SALT),
        first=Outpoint(commit.txid, 0), extra=[(Outpoint(commit.txid, 1), MERCHANT)],
        burn=h.spec.token_issue_fee))
    unsigned = Review(merchant, purchase.txid, 4, b"good beans",
                      CUSTOMER.public_key.to_bytes(), bytes(64))
    review_payload = replace(unsigned,
                             signature=CUSTOMER.sign(review_sig_digest(unsigned, chain_id)))
    review = h.send(h.spend(CUSTOMER, [], review_payload))
    item = item_asset_id(merchant, ITEM)

    def register_payload(prevouts: list[Outpoint]) -> TraceRegister:
        unsigned = TraceRegister(merchant, ITEM.encode(), b"coffee", ((b"origin", b"Kenya"),),
                                 MERCHANT.public_key.to_bytes(), bytes(64))
        digest = item_sig_digest(unsigned, chain_id, wire(prevouts))
        return replace(unsigned, signature=MERCHANT.sign(digest))

    register = h.send(h.spend(MERCHANT, [TxOut(item, 1, p2a(MERCHANT))], register_payload))
    lock = Escrow(CUSTOMER.public_key.hash160(), ((PAYEE.public_key.hash160(), 10_000),),
                  STRANGER.public_key.hash160(), 1_000)
    escrow_open = h.send(h.spend(h.funds, [TxOut(NATIVE_ASSET, COIN, lock)] * 2))
    h.mine()
    # 4: the merchant's reply, the item shipped, an escrow released, a grant.
    unsigned_reply = ReviewReply(review.txid, b"thanks", MERCHANT.public_key.to_bytes(),
                                 bytes(64))
    reply = h.send(h.spend(MERCHANT, [], replace(
        unsigned_reply, signature=MERCHANT.sign(reply_sig_digest(unsigned_reply, chain_id)))))
    event = h.send(h.spend(MERCHANT, [TxOut(item, 1, p2a(CUSTOMER))],
                           TraceEvent(item, 2, b"Mombasa", b"by sea", None),
                           extra=[(Outpoint(register.txid, 0), MERCHANT)]))
    release = Tx((TxIn(Outpoint(escrow_open.txid, 0)),),
                 (TxOut(NATIVE_ASSET, COIN - FEE, p2a(PAYEE)),))
    release = h.send(sign_tx(release, [[CUSTOMER]], chain_id))
    grant = grant_tx(h, b"purchase-history", 10_000)
    h.mine()
    # 5: a grant to revoke and one that ends at once; 6: the revocation.
    revoked_grant = grant_tx(h, b"email", 10_000)
    expired_grant = grant_tx(h, b"location", h.node.chain.height + 1)
    h.mine()
    unsigned_revoke = ConsentRevoke(revoked_grant.txid, CUSTOMER.public_key.to_bytes(),
                                    bytes(64))
    revoke = h.send(h.spend(CUSTOMER, [], replace(
        unsigned_revoke, signature=CUSTOMER.sign(revoke_sig_digest(unsigned_revoke, chain_id)))))
    h.mine()
    return World(h, purchase, purchase_height, review, reply, issue, register, event,
                 escrow_open, release, grant, revoked_grant, revoke, expired_grant)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    h = NodeHarness(tmp_path_factory.mktemp("o2o-node"))
    try:
        yield build_world(h)
    finally:
        h.close()


def addr(w: World, key: Any) -> str:
    return w.h.address(key)


# -- tokens --------------------------------------------------------------------


def test_gettoken_by_symbol_any_case_or_asset_id(world):
    w = world
    data = w.h.call(tokens.gettoken, "gems")
    asset = token_asset_id("GEMS")
    assert data == {
        "symbol": "GEMS", "name": "Gem points", "asset": asset.hex(), "decimals": 2,
        "supply": "10", "supply_units": 1_000, "mintable": True,
        "issuer": addr(w, MERCHANT), "height": 3, "txid": w.issue.txid.hex(),
        "authority_asset": authority_asset_id(asset).hex(), "holders": 1,
        "authority_holder": addr(w, MERCHANT), "burns": [], "burns_truncated": False,
    }
    assert w.h.call(tokens.gettoken, asset.hex()) == data
    del data["burns"], data["burns_truncated"]  # gettoken only
    assert w.h.call(tokens.listtokens) == [data]


@pytest.mark.parametrize(("args", "code"), [
    ([5], E.INVALID_PARAMS),
    ([""], E.INVALID_PARAMS),
    (["GE"], E.INVALID_PARAMS),
    (["GEMS!"], E.INVALID_PARAMS),
    (["GÉMS"], E.INVALID_PARAMS),
    (["g" * 64], E.INVALID_PARAMS),
    (["ZZZ"], E.NOT_FOUND),
    (["ab" * 32], E.NOT_FOUND),
])
def test_gettoken_refuses_bad_refs(world, args, code):
    assert world.h.error(tokens.gettoken, *args).code == code


def test_listrewardable_purchases_and_reviews(world):
    w = world
    merchant = addr(w, MERCHANT)
    purchases = w.h.call(tokens.listrewardable, "GEMS", [merchant], "purchases",
                         w.purchase_height)
    assert purchases == [{"txid": w.purchase.txid.hex(), "height": w.purchase_height,
                          "customer": addr(w, CUSTOMER), "paid": "2", "paid_units": 2 * COIN}]
    everything = w.h.call(tokens.listrewardable, "GEMS", [merchant])
    assert [p["txid"] for p in everything][-1] == w.purchase.txid.hex()
    assert len(everything) == 2  # the funding paid the merchant too (a purchase by the funds)
    reviewed = w.h.call(tokens.listrewardable, "GEMS", [merchant], "reviews")
    assert reviewed == [{"txid": w.review.txid.hex(), "height": 3,
                         "customer": addr(w, CUSTOMER), "paid": "2", "paid_units": 2 * COIN,
                         "rating": 4}]
    assert w.h.call(tokens.listrewardable, "GEMS", [merchant], "reviews", 4) == []


@pytest.mark.parametrize(("args", "code"), [
    (["ZZZ", ["M"]], E.NOT_FOUND),
    (["GEMS", "not a list"], E.INVALID_PARAMS),
    (["GEMS", []], E.INVALID_PARAMS),
    (["GEMS", ["nope"]], E.INVALID_ADDRESS),
    (["GEMS", None, "gifts"], E.INVALID_PARAMS),
])
def test_listrewardable_refuses_bad_params(world, args, code):
    assert world.h.error(tokens.listrewardable, *args).code == code


@pytest.mark.parametrize(("kind", "since"), [("gifts", 0), ("purchases", -1),
                                              ("purchases", True), ("reviews", "3")])
def test_listrewardable_refuses_bad_kind_or_height(world, kind, since):
    merchant = addr(world, MERCHANT)
    error = world.h.error(tokens.listrewardable, "GEMS", [merchant], kind, since)
    assert error.code == E.INVALID_PARAMS


# -- reviews -------------------------------------------------------------------


def test_getreview_with_its_reply(world):
    w = world
    data = w.h.call(reviews.getreview, w.review.txid.hex())
    assert {k: data[k] for k in ("merchant", "reviewer", "purchase", "rating", "text", "height",
                                 "purchase_value", "purchase_value_units", "final")} == {
        "merchant": addr(w, MERCHANT), "reviewer": addr(w, CUSTOMER),
        "purchase": w.purchase.txid.hex(), "rating": 4, "text": "good beans", "height": 3,
        "purchase_value": "2", "purchase_value_units": 2 * COIN, "final": False}
    assert data["confirmations"] == w.h.node.chain.height - 2
    assert data["reply"] == {"txid": w.reply.txid.hex(), "text": "thanks", "height": 4}
    for by, value in (("merchant", addr(w, MERCHANT)), ("reviewer", addr(w, CUSTOMER)),
                      ("purchase", w.purchase.txid.hex())):
        assert w.h.call(reviews.listreviews, by, value) == [data]
    assert w.h.call(reviews.listreviews, "merchant", addr(w, STRANGER)) == []
    assert w.h.call(reviews.listreviews, "purchase", w.review.txid.hex()) == []


def test_getreviewstats(world):
    w = world
    assert w.h.call(reviews.getreviewstats, addr(w, MERCHANT)) == {
        "merchant": addr(w, MERCHANT), "count": 1, "average": 4.0,
        "distribution": {"1": 0, "2": 0, "3": 0, "4": 1, "5": 0}, "reviewers": 1,
        "replied": 1, "verified_value": "2", "verified_value_units": 2 * COIN}
    empty = w.h.call(reviews.getreviewstats, addr(w, STRANGER))
    assert (empty["count"], empty["average"]) == (0, None)


@pytest.mark.parametrize(("method", "args", "code"), [
    (reviews.getreview, ["x"], E.INVALID_PARAMS),
    (reviews.getreview, [None], E.INVALID_PARAMS),
    (reviews.getreview, ["00" * 32], E.NOT_FOUND),
    (reviews.listreviews, ["who", "x"], E.INVALID_PARAMS),
    (reviews.listreviews, ["merchant", "nope"], E.INVALID_ADDRESS),
    (reviews.listreviews, ["purchase", "nope"], E.INVALID_PARAMS),
    (reviews.getreviewstats, [3], E.INVALID_ADDRESS),
])
def test_review_queries_refuse_bad_params(world, method, args, code):
    assert world.h.error(method, *args).code == code


def test_getreview_of_a_tx_that_is_no_review_is_not_found(world):
    w = world
    assert w.h.error(reviews.getreview, w.purchase.txid.hex()).code == E.NOT_FOUND


# -- escrow --------------------------------------------------------------------


def test_getescrow_open_and_released(world):
    w = world
    opened = w.h.call(escrow.getescrow, f"{w.escrow_open.txid.hex()}:1")
    assert opened == {
        "escrow": f"{w.escrow_open.txid.hex()}:1", "txid": w.escrow_open.txid.hex(),
        "index": 1, "asset": "O2O", "asset_id": NATIVE_ASSET.hex(), "amount": "1",
        "units": COIN, "payer": addr(w, CUSTOMER),
        "payees": [{"address": addr(w, PAYEE), "bps": 10_000}], "arbiter": addr(w, STRANGER),
        "timeout": 1_000, "height": 3, "state": "open", "settlement": None,
        "pending_spend": None}
    released = w.h.call(escrow.getescrow, f"{w.escrow_open.txid.hex()}:0")
    assert released["state"] == "released"
    assert released["settlement"] == {"txid": w.release.txid.hex(), "path": "release",
                                      "height": 4}
    assert w.h.call(escrow.listescrows, [addr(w, PAYEE)]) == [released, opened]
    assert w.h.call(escrow.listescrows, [addr(w, STRANGER), addr(w, CUSTOMER)]) == [
        released, opened]
    assert w.h.call(escrow.listescrows, [addr(w, MERCHANT)]) == []


@pytest.mark.parametrize(("method", "args", "code"), [
    (escrow.getescrow, [5], E.INVALID_PARAMS),
    (escrow.getescrow, ["abc"], E.INVALID_PARAMS),
    (escrow.getescrow, ["00" * 32 + ":x"], E.INVALID_PARAMS),
    (escrow.getescrow, ["00" * 32 + ":10001"], E.INVALID_PARAMS),
    (escrow.getescrow, ["zz:0"], E.INVALID_PARAMS),
    (escrow.getescrow, ["00" * 32 + ":0"], E.NOT_FOUND),
    (escrow.listescrows, [[]], E.INVALID_PARAMS),
    (escrow.listescrows, ["x"], E.INVALID_PARAMS),
    (escrow.listescrows, [["nope"]], E.INVALID_ADDRESS),
])
def test_escrow_queries_refuse_bad_params(world, method, args, code):
    assert world.h.error(method, *args).code == code


def test_an_output_that_is_no_escrow_is_not_found(world):
    w = world
    assert w.h.error(escrow.getescrow, f"{w.purchase.txid.hex()}:0").code == E.NOT_FOUND
    assert w.h.error(escrow.getescrow, f"{w.escrow_open.txid.hex()}:9").code == E.NOT_FOUND


# -- traceability --------------------------------------------------------------


def test_gettrace_follows_the_chain_of_custody(world):
    w = world
    asset = item_asset_id(MERCHANT.public_key.hash160(), ITEM)
    data = w.h.call(trace.gettrace, asset.hex())
    assert w.h.call(trace.gettrace, ITEM, addr(w, MERCHANT)) == data
    assert {k: data[k] for k in ("asset", "item", "product", "merchant", "height", "txid",
                                 "data", "custodian", "verified", "break")} == {
        "asset": asset.hex(), "item": ITEM, "product": "coffee",
        "merchant": addr(w, MERCHANT), "height": 3, "txid": w.register.txid.hex(),
        "data": [{"key": "origin", "value": "Kenya"}], "custodian": addr(w, CUSTOMER),
        "verified": True, "break": None}
    registered, shipped = data["timeline"]
    assert (registered["txid"], registered["event"], registered["note"],
            registered["custodian"], registered["from"]) == (
        w.register.txid.hex(), "registered", "coffee", addr(w, MERCHANT), None)
    assert (shipped["txid"], shipped["event"], shipped["location"], shipped["note"],
            shipped["custodian"], shipped["from"], shipped["height"]) == (
        w.event.txid.hex(), "shipped", "Mombasa", "by sea", addr(w, CUSTOMER),
        addr(w, MERCHANT), 4)


@pytest.mark.parametrize(("args", "code"), [
    (["LOT-1"], E.INVALID_PARAMS),
    ([None], E.INVALID_PARAMS),
    (["", "MERCHANT"], E.INVALID_PARAMS),
    (["x" * 65, "MERCHANT"], E.INVALID_PARAMS),
    (["LOT-1", "nope"], E.INVALID_ADDRESS),
    (["LOT-9", "MERCHANT"], E.NOT_FOUND),
    (["00" * 32], E.NOT_FOUND),
])
def test_gettrace_refuses_bad_params(world, args, code):
    args = [addr(world, MERCHANT) if a == "MERCHANT" else a for a in args]
    assert world.h.error(trace.gettrace, *args).code == code


# -- consent -------------------------------------------------------------------


def test_listconsents_by_user_and_grantee_with_status(world):
    w = world
    by_user = w.h.call(consent.listconsents, addr(w, CUSTOMER))
    assert [(g["txid"], g["scope"], g["status"], g["revoked_by"]) for g in by_user] == [
        (w.grant.txid.hex(), "purchase-history", "active", None),
        (w.revoked_grant.txid.hex(), "email", "revoked", w.revoke.txid.hex()),
        (w.expired_grant.txid.hex(), "location", "expired", None),
    ]
    assert w.h.call(consent.listconsents, addr(w, MERCHANT), "grantee") == by_user
    assert w.h.call(consent.listconsents, addr(w, MERCHANT)) == []
    assert by_user[0]["user"] == addr(w, CUSTOMER) and by_user[0]["grantee"] == addr(w,
                                                                                     MERCHANT)


def test_checkconsent_proves_an_active_grant_only(world):
    w = world
    customer, merchant = addr(w, CUSTOMER), addr(w, MERCHANT)
    granted = w.h.call(consent.checkconsent, customer, merchant, "purchase-history")
    assert (granted["granted"], granted["proof"], granted["until"], granted["height"]) == (
        True, w.grant.txid.hex(), 10_000, w.h.node.chain.height + 1)
    revoked = w.h.call(consent.checkconsent, customer, merchant, "email")
    assert (revoked["granted"], revoked["proof"], revoked["reason"]) == (
        False, None, "the latest grant is revoked")
    expired = w.h.call(consent.checkconsent, customer, merchant, "location")
    assert expired["reason"] == "the latest grant is expired"
    none = w.h.call(consent.checkconsent, customer, addr(w, STRANGER), "email")
    assert (none["granted"], none["reason"], none["grant"]) == (False, "no grant", None)


@pytest.mark.parametrize(("method", "args", "code"), [
    (consent.listconsents, ["nope"], E.INVALID_ADDRESS),
    (consent.listconsents, ["CUSTOMER", "admin"], E.INVALID_PARAMS),
    (consent.checkconsent, ["CUSTOMER", "MERCHANT", ""], E.INVALID_PARAMS),
    (consent.checkconsent, ["CUSTOMER", "MERCHANT", 5], E.INVALID_PARAMS),
    (consent.checkconsent, ["nope", "MERCHANT", "email"], E.INVALID_ADDRESS),
    (consent.checkconsent, ["CUSTOMER", None, "email"], E.INVALID_ADDRESS),
])
def test_consent_queries_refuse_bad_params(world, method, args, code):
    names = {"CUSTOMER": addr(world, CUSTOMER), "MERCHANT": addr(world, MERCHANT)}
    args = [names.get(a, a) if isinstance(a, str) else a for a in args]
    assert world.h.error(method, *args).code == code

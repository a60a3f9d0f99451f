"""JSON renderers: every payload family and lock type, found by tag, and the
generic views of txs, outputs and coins built on them."""

from __future__ import annotations

from typing import Any

import pytest

from o2ocli.chainspec import ChainSpec, load_spec
from o2ocli.core.locks import Escrow, Multisig, PayToAddress
from o2ocli.core.payloads import (
    NO_PAYLOAD,
    REWARD_PURCHASES,
    REWARD_REVIEWS,
    Coinbase,
    ConsentGrant,
    ConsentGrantProfile,
    ConsentRevoke,
    GenesisAlloc,
    GovProposal,
    GovVote,
    KeySig,
    ProfileCommit,
    Review,
    ReviewReply,
    TokenBurn,
    TokenCommit,
    TokenFreeze,
    TokenIssue,
    TokenMint,
    TokenReward,
    TraceEvent,
    TraceRegister,
    token_asset_id,
)
from o2ocli.core.tx import NATIVE_ASSET, Coin, Outpoint, Tx, TxIn, TxOut
from o2ocli.node.render import (
    LOCK_VIEWS,
    PAYLOAD_VIEWS,
    coin_json,
    lock_json,
    output_json,
    payload_json,
    tx_json,
)
from o2ocli.node.render.registry import burned_by, lock_view, payload_view
from o2ocli.testing.chaingen import deterministic_key

SPEC: ChainSpec = load_spec("devnet")
KEY = deterministic_key(b"render", 0)
PUB = KEY.public_key.to_bytes()
PKH = KEY.public_key.hash160()
OTHER = bytes(range(20))
THIRD = bytes(range(1, 21))
ARBITER = bytes(range(2, 22))
ASSET = token_asset_id("GEMS")
TXID = bytes(range(32))
SIG = bytes(64)


def addr(pkh: bytes) -> str:
    return SPEC.address(pkh)


PAYLOADS: list[tuple[Any, dict[str, Any]]] = [
    (NO_PAYLOAD, {"type": "none"}),
    (Coinbase(7), {"type": "coinbase", "height": 7}),
    (GenesisAlloc(b"hello \xff"), {"type": "genesis", "note": "hello \ufffd"}),
    (TokenCommit(TXID), {"type": "token-commit", "commitment": TXID.hex()}),
    (TokenIssue(b"GEMS", b"Gems", 2, True, bytes(32)),
     {"type": "token-issue", "symbol": "GEMS", "name": "Gems", "decimals": 2,
      "mintable": True, "asset": ASSET.hex(), "salt": bytes(32).hex()}),
    (TokenMint(ASSET, 500), {"type": "token-mint", "asset": ASSET.hex(), "units": 500}),
    (TokenBurn(ASSET, 3), {"type": "token-burn", "asset": ASSET.hex(), "units": 3}),
    (TokenFreeze(ASSET), {"type": "token-freeze", "asset": ASSET.hex()}),
    (TokenReward(ASSET, REWARD_PURCHASES, (TXID,), ()),
     {"type": "token-reward", "asset": ASSET.hex(), "for": "purchases", "refs": [TXID.hex()]}),
    (TokenReward(ASSET, REWARD_REVIEWS, (TXID, bytes(32)), ()),
     {"type": "token-reward", "asset": ASSET.hex(), "for": "reviews",
      "refs": [TXID.hex(), bytes(32).hex()]}),
    (Review(OTHER, TXID, 4, b"fine", PUB, SIG),
     {"type": "review", "merchant": addr(OTHER), "purchase": TXID.hex(), "rating": 4,
      "text": "fine", "reviewer": addr(PKH)}),
    (ReviewReply(TXID, b"thanks", PUB, SIG),
     {"type": "review-reply", "review": TXID.hex(), "text": "thanks", "merchant": addr(PKH)}),
    (TraceRegister(OTHER, b"lot-1", b"coffee", ((b"origin", b"Kenya"),), PUB, SIG),
     {"type": "trace-register", "merchant": addr(OTHER), "item": "lot-1", "product": "coffee",
      "asset": TraceRegister(OTHER, b"lot-1", b"coffee", (), PUB, SIG).asset.hex(),
      "data": {"origin": "Kenya"}}),
    (TraceEvent(ASSET, 2, b"Mombasa", b"by sea", TXID),
     {"type": "trace-event", "asset": ASSET.hex(), "event": "shipped", "location": "Mombasa",
      "note": "by sea", "document": TXID.hex()}),
    (TraceEvent(ASSET, 6, b"", b"", None),
     {"type": "trace-event", "asset": ASSET.hex(), "event": "note", "location": "",
      "note": "", "document": None}),
    (ConsentGrant(OTHER, b"email", 99, PUB, SIG),
     {"type": "consent-grant", "user": addr(PKH), "grantee": addr(OTHER), "scope": "email",
      "until": 99}),
    (ConsentRevoke(TXID, PUB, SIG),
     {"type": "consent-revoke", "grant": TXID.hex(), "user": addr(PKH)}),
    (GovProposal(b"Sundays?", b"Open on Sundays", (b"yes", b"no"), 1, NATIVE_ASSET, OTHER, 10,
                 100_000_000),
     {"type": "gov-proposal", "title": "Sundays?", "text": "Open on Sundays",
      "options": ["yes", "no"], "weight": "customers", "asset": NATIVE_ASSET.hex(),
      "merchant": addr(OTHER), "voting_blocks": 10, "deposit": "1"}),
    (GovVote(TXID, 2, (TXID + bytes([3, 0, 0, 0]),), None, (KeySig(PUB, SIG),)),
     {"type": "gov-vote", "proposal": TXID.hex(), "option": 2,
      "outpoints": [f"{TXID.hex()}:3"], "purchase": None, "voter": addr(PKH),
      "keys": [addr(PKH)]}),
    (ConsentGrantProfile(OTHER, b"phone", 500, TXID, PUB, SIG),
     {"type": "consent-grant", "user": addr(PKH), "grantee": addr(OTHER), "scope": "phone",
      "until": 500, "profile": TXID.hex()}),
    (ProfileCommit(b"\x07" * 32, 3, PUB, SIG),
     {"type": "profile-commit", "user": addr(PKH), "root": "07" * 32, "leaves": 3}),
]


@pytest.mark.parametrize(("payload", "expected"), PAYLOADS,
                         ids=[f"{type(p).__name__}-{i}" for i, (p, _) in enumerate(PAYLOADS)])
def test_every_payload_family_renders_by_its_tag(payload, expected):
    assert payload_json(SPEC, payload) == expected


def test_every_payload_type_of_the_codec_has_a_renderer():
    from o2ocli.core.payloads import PAYLOAD_TYPES

    assert set(PAYLOAD_TYPES) <= set(PAYLOAD_VIEWS)
    assert {type(p).TAG for p, _ in PAYLOADS} == set(PAYLOAD_TYPES)


LOCKS = [
    (PayToAddress(PKH), {"type": "address", "address": addr(PKH)}),
    (Multisig(2, (OTHER, PKH)), {"type": "multisig", "m": 2,
                                 "addresses": [addr(OTHER), addr(PKH)]}),
    (Escrow(PKH, ((OTHER, 10_000),), None, 50),
     {"type": "escrow", "payer": addr(PKH), "payees": [{"address": addr(OTHER), "bps": 10_000}],
      "arbiter": None, "timeout": 50}),
    (Escrow(PKH, ((OTHER, 6_000), (THIRD, 4_000)), ARBITER, 9),
     {"type": "escrow", "payer": addr(PKH),
      "payees": [{"address": addr(OTHER), "bps": 6_000}, {"address": addr(THIRD), "bps": 4_000}],
      "arbiter": addr(ARBITER), "timeout": 9}),
]


@pytest.mark.parametrize(("lock", "expected"), LOCKS)
def test_every_lock_type_renders_by_its_tag(lock, expected):
    assert lock_json(SPEC, lock) == expected


def test_every_lock_type_of_the_codec_has_a_renderer():
    from o2ocli.core.locks import LOCK_TYPES

    assert set(LOCK_TYPES) <= set(LOCK_VIEWS)


class _Plugin:
    """A stand-in payload/lock type of a test-only family."""

    TAG = 0xEE


def test_a_new_family_registers_its_renderer_and_an_unknown_type_falls_back():
    assert payload_json(SPEC, _Plugin()) == {"type": "_Plugin"}
    assert lock_json(SPEC, _Plugin()) == {"type": "_Plugin"}
    assert burned_by(SPEC, _Plugin()) == 0
    try:
        @payload_view(_Plugin, burned=lambda spec, p: 5)
        def plugin_json(spec: ChainSpec, payload: _Plugin) -> dict[str, Any]:
            return {"type": "plugin"}

        @lock_view(_Plugin)
        def plugin_lock_json(spec: ChainSpec, lock: _Plugin) -> dict[str, Any]:
            return {"type": "plugin-lock"}

        assert payload_json(SPEC, _Plugin()) == {"type": "plugin"}
        assert burned_by(SPEC, _Plugin()) == 5
        assert lock_json(SPEC, _Plugin()) == {"type": "plugin-lock"}
        with pytest.raises(ValueError, match="0xee already has a renderer"):
            payload_view(_Plugin)(plugin_json)
        with pytest.raises(ValueError, match="0xee already has a renderer"):
            lock_view(_Plugin)(plugin_lock_json)
    finally:
        PAYLOAD_VIEWS.pop(_Plugin.TAG, None)
        LOCK_VIEWS.pop(_Plugin.TAG, None)


def tokens(asset: bytes) -> tuple[str, int] | None:
    return ("GEMS", 2) if asset == ASSET else None


def test_outputs_show_the_asset_symbol_amount_and_single_address():
    out = output_json(SPEC, 1, TxOut(ASSET, 1234, PayToAddress(PKH)), tokens)
    assert out == {"index": 1, "asset": "GEMS", "amount": "12.34", "asset_id": ASSET.hex(),
                   "units": 1234, "lock": {"type": "address", "address": addr(PKH)},
                   "address": addr(PKH)}
    unknown = bytes([9]) * 32
    out = output_json(SPEC, 0, TxOut(unknown, 77, Multisig(1, (PKH,))), tokens)
    assert (out["asset"], out["amount"]) == (unknown.hex(), "77")
    assert "address" not in out
    native = coin_json(SPEC, TXID, 0, Coin(TxOut(NATIVE_ASSET, 150_000_000, PayToAddress(PKH)),
                                           5, True))
    assert (native["asset"], native["amount"], native["height"], native["coinbase"],
            native["txid"]) == ("O2O", "1.5", 5, True, TXID.hex())


def test_a_token_issue_burns_the_chain_fee_in_tx_json():
    funding = Coin(TxOut(NATIVE_ASSET, SPEC.token_issue_fee + 5_000, PayToAddress(PKH)), 3,
                   False)
    issue = TokenIssue(b"GEMS", b"Gems", 2, False, bytes(32))
    tx = Tx((TxIn(Outpoint(TXID, 0)),),
            (TxOut(ASSET, 100, PayToAddress(PKH)),), payload=issue)
    data = tx_json(SPEC, tx, [funding], tokens)
    assert data["payload"]["type"] == "token-issue"
    assert data["burned_units"] == SPEC.token_issue_fee
    assert data["fee_units"] == 5_000
    assert data["inputs"][0]["address"] == addr(PKH)
    assert data["buyers"] == [addr(PKH)]
    plain = Tx((TxIn(Outpoint(TXID, 0)),),
               (TxOut(NATIVE_ASSET, SPEC.token_issue_fee, PayToAddress(OTHER)),))
    data = tx_json(SPEC, plain, [funding], tokens)
    assert data["fee_units"] == 5_000 and "burned" not in data
    assert "fee" not in tx_json(SPEC, plain)

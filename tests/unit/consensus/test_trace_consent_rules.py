"""Traceability (:class:`~o2ocli.core.payloads.TraceRegister`,
:class:`~o2ocli.core.payloads.TraceEvent`) and consent
(:class:`~o2ocli.core.payloads.ConsentGrant`,
:class:`~o2ocli.core.payloads.ConsentRevoke`) rules of :mod:`o2ocli.consensus.o2o`,
as applied by the tx and block rules.

Each rule gets its valid case and one test per way to break it; every failure is
asserted by its stable ``reason``.  The chain is a small in-memory
:class:`FakeState` (plain dicts), the UTXO view is the ``kit``'s dict, and every
signature (witnesses, registrations, grants, revocations) is real.

Roles: ``keys[0]`` funds, ``keys[1]`` is the merchant, ``keys[2]`` the customer
(the consenting user, the item's next custodian), ``keys[3]`` another merchant,
``keys[4]`` a stranger.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from o2o_helpers import FakeState, decoded, effect_of, typed

from o2ocli.consensus.block import apply_block
from o2ocli.consensus.errors import BlockInvalid, TxInvalid
from o2ocli.consensus.o2o import (
    NO_EFFECT,
    ConsentRecord,
    ItemRecord,
    O2OBlockView,
    O2OEffect,
    check_o2o_payload,
    o2o_claims,
)
from o2ocli.consensus.tx import (
    check_transaction,
    check_tx_contextual,
    resolve_inputs,
    serial_verifier,
    validate_transaction,
)
from o2ocli.core.block import BlockHeader
from o2ocli.core.encoding import Reader, Writer
from o2ocli.core.payloads import (
    TRACE_EVENTS,
    ConsentGrant,
    ConsentRevoke,
    TraceEvent,
    TraceRegister,
    consent_sig_digest,
    decode_payload,
    encode_payload,
    item_asset_id,
    item_sig_digest,
    revoke_sig_digest,
)
from o2ocli.core.tx import Outpoint
from o2ocli.crypto.hashes import sha256

CHAIN_ID = "o2o-test"
HEIGHT = 50
"""Height of the block the tested transactions would be mined in."""
ITEM_ID = b"LOT-2024/001"
PRODUCT = b"Pu-erh tea, 357 g"
DATA = ((b"origin", b"Yunnan"), (b"harvest", b"2024-04"))
SCOPE = b"purchase-history"
UNTIL = HEIGHT + 100

FUNDER, MERCHANT, CUSTOMER, OTHER_MERCHANT, STRANGER = 0, 1, 2, 3, 4


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


def wire(prevouts):
    """Outpoints in wire form (txid ‖ index as u32 little-endian), as the item digest binds."""
    return [op.txid + op.index.to_bytes(4, "little") for op in prevouts]


def contextual(kit, tx, state, height=HEIGHT):
    """Stage 2 of ``tx`` against the kit's view and ``state``: (fee, checks, effect)."""
    return check_tx_contextual(tx, resolve_inputs(tx, kit.view), height, kit.params, state)


def accept(kit, tx, state, height=HEIGHT):
    """Both stages plus signature verification pass; returns (fee, checks, effect)."""
    check_transaction(tx, kit.params)
    fee, checks, effect = contextual(kit, tx, state, height)
    assert serial_verifier(checks) is None
    assert validate_transaction(tx, kit.view, height, kit.params, state=state) == fee
    return fee, checks, effect


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
    """Every rule passes but a payload signature does not verify (the failing
    check comes after the witnesses')."""
    check_transaction(tx, kit.params)
    _, checks, _ = contextual(kit, tx, state, height)
    failed = serial_verifier(checks)
    assert failed is not None
    assert failed >= len(tx.inputs)
    with pytest.raises(TxInvalid) as e:
        validate_transaction(tx, kit.view, height, kit.params, state=state)
    assert e.value.reason == "bad-txns-signature"


def bind_grant(kit, payload, prevouts):
    """Re-sign a consent grant over the tx's inputs (the consensus digest commits
    to them); a signature not valid for the unbound digest (a deliberate
    forgery in a test) is left as it is."""
    from o2ocli.crypto.backends import verify

    if not isinstance(payload, ConsentGrant):
        return payload
    for chain_id in (CHAIN_ID, "another-chain"):
        if verify(payload.pubkey, payload.signature, consent_sig_digest(payload, chain_id)):
            key = next(k for k in kit.keys if k.public_key.to_bytes() == payload.pubkey)
            digest = consent_sig_digest(payload, chain_id, wire(prevouts))
            return replace(payload, signature=key.sign(digest))
    return payload


def plain_tx(kit, payload, payer=FUNDER):
    """A signed 1-in/1-out native spend of a fresh coin of ``payer`` carrying ``payload``."""
    op = kit.fund(1_000, kit.p2a(payer))
    payload = bind_grant(kit, payload, [op])
    return kit.spend([op], [kit.out(900, kit.p2a(payer))], [[kit.keys[payer]]], payload=payload)


def round_trip(payload):
    w = Writer()
    encode_payload(payload, w)
    r = Reader(w.getvalue())
    decoded = decode_payload(r)
    r.finish("payload")
    return decoded


# -- traceability -------------------------------------------------------------


def signed_register(kit, prevouts, *, merchant=MERCHANT, signer=None, item_id=ITEM_ID,
                    product=PRODUCT, data=DATA, chain_id=CHAIN_ID):
    """A registration of ``item_id`` in ``merchant``'s namespace, signed by
    ``signer`` (default: the merchant) over its fields and ``prevouts``."""
    key = kit.keys[merchant if signer is None else signer]
    unsigned = TraceRegister(h160(kit, merchant), item_id, product, data,
                             key.public_key.to_bytes(), bytes(64))
    digest = item_sig_digest(unsigned, chain_id, wire(prevouts))
    return replace(unsigned, signature=key.sign(digest))


def register_tx(kit, *, items=(1,), holder=CUSTOMER, sign_over=None, funder=MERCHANT,
                **payload_args):
    """The merchant registers an item (funded by ``funder``, fee 100); ``items``
    lists the amounts of the item outputs, each to ``holder``.  The payload is
    signed over ``sign_over`` (default: the tx's own input)."""
    op = kit.fund(1_000, kit.p2a(funder))
    payload = signed_register(kit, [op] if sign_over is None else sign_over, **payload_args)
    outs = [kit.out(a, kit.p2a(holder), payload.asset) for a in items]
    outs.append(kit.out(900, kit.p2a(funder)))
    return kit.spend([op], outs, [[kit.keys[funder]]], payload=payload)


def known_item(kit, state, item_id=ITEM_ID, merchant=MERCHANT):
    """Record a registration in ``state``; returns the item's asset id."""
    asset = item_asset_id(h160(kit, merchant), item_id)
    state.items[asset] = ItemRecord(h160(kit, merchant), item_id.decode(), PRODUCT.decode(), 10,
                                    sha256(b"trace-rules/register" + item_id))
    return asset


def event_tx(kit, asset, *, event=2, location=b"Kunming", note=b"", document=None,
             holder=CUSTOMER, to=STRANGER, spend_item=True, item_outs=(1,)):
    """``holder`` hands the item (a fresh coin of ``asset``) to ``to`` with a
    trace event; a native coin of ``holder`` pays a fee of 100."""
    inputs = [kit.fund(1_000, kit.p2a(holder))]
    if spend_item:
        inputs.append(kit.fund(1, kit.p2a(holder), asset))
    outs = [kit.out(900, kit.p2a(holder))]
    outs += [kit.out(a, kit.p2a(to), asset) for a in item_outs]
    payload = TraceEvent(asset, event, location, note, document)
    return kit.spend(inputs, outs, [[kit.keys[holder]]] * len(inputs), payload=payload)


# -- consent --------------------------------------------------------------------


def signed_grant(kit, *, user=CUSTOMER, grantee=MERCHANT, scope=SCOPE, until=UNTIL,
                 chain_id=CHAIN_ID):
    key = kit.keys[user]
    unsigned = ConsentGrant(h160(kit, grantee), scope, until, key.public_key.to_bytes(),
                            bytes(64))
    return replace(unsigned, signature=key.sign(consent_sig_digest(unsigned, chain_id)))


def signed_revoke(kit, grant, *, signer=CUSTOMER, chain_id=CHAIN_ID):
    key = kit.keys[signer]
    unsigned = ConsentRevoke(grant, key.public_key.to_bytes(), bytes(64))
    return replace(unsigned, signature=key.sign(revoke_sig_digest(unsigned, chain_id)))


def known_grant(kit, state, *, user=CUSTOMER, grantee=MERCHANT):
    """Record a consent grant in ``state``; returns its txid."""
    txid = sha256(b"trace-rules/grant" + bytes([user, grantee]))
    state.consents[txid] = ConsentRecord(h160(kit, user), h160(kit, grantee), SCOPE.decode(),
                                         UNTIL, 10)
    return txid


# ---------------------------------------------------------------------------
# Item registration: context-free rules
# ---------------------------------------------------------------------------


def test_item_asset_id_depends_on_the_merchant_and_the_id(kit):
    asset = item_asset_id(h160(kit, MERCHANT), ITEM_ID)
    assert asset == item_asset_id(h160(kit, MERCHANT), ITEM_ID.decode())
    assert asset != item_asset_id(h160(kit, OTHER_MERCHANT), ITEM_ID)
    assert asset != item_asset_id(h160(kit, MERCHANT), ITEM_ID + b"x")
    assert signed_register(kit, [kit.fund()]).asset == asset


def test_trace_payloads_round_trip(kit):
    register = signed_register(kit, [kit.fund()])
    event = TraceEvent(register.asset, 3, b"Kunming", b"cold chain", sha256(b"invoice"))
    for payload in (register, event, replace(event, document=None), signed_grant(kit),
                    signed_revoke(kit, sha256(b"g"))):
        assert round_trip(payload) == payload


@pytest.mark.parametrize(
    "item_id", [b"A", b"x" * 64, b"ABCxyz0189._:/-", b"2024/batch:7.b_c-d"]
)
def test_valid_item_ids(kit, state, item_id):
    tx = register_tx(kit, item_id=item_id)
    check_transaction(tx, kit.params)


@pytest.mark.parametrize(
    "item_id",
    [b"", b"x" * 65, b"lot 1", b"lot#1", b"lot+1", "lot-\u00e9".encode(), b"lot\n1", b"lot\x00"],
    ids=["empty", "65-chars", "space", "hash", "plus", "non-ascii", "newline", "nul"],
)
def test_bad_item_ids_are_refused(kit, item_id):
    malformed(kit, register_tx(kit, item_id=item_id), "bad-trace-item-id")


@pytest.mark.parametrize(
    "product", [b"P", b"p" * 256, "\u00e9".encode() * 128, "\u666e\u6d31\u8336".encode()]
)
def test_valid_products(kit, product):
    check_transaction(register_tx(kit, product=product), kit.params)


@pytest.mark.parametrize(
    "product, reason",
    [
        (b"", "bad-trace-product-length"),
        (b"p" * 257, "bad-trace-product-length"),
        ("\u00e9".encode() * 128 + b"x", "bad-trace-product-length"),
        (b"tea\xff", "bad-trace-product-utf8"),
        (b"tea\nleaves", "bad-trace-product-control"),
        ("tea\u202eseel".encode(), "bad-trace-product-control"),
    ],
    ids=["empty", "257-bytes", "257-bytes-multibyte", "bad-utf8", "newline", "bidi"],
)
def test_bad_products_are_refused(kit, product, reason):
    malformed(kit, register_tx(kit, product=product), reason)


@pytest.mark.parametrize(
    "data",
    [
        (),
        ((b"origin", b""),),
        ((b"k" * 32, b"v" * 256),),
        ((b"a.b_c-9", b"x"), (b"z", b"y")),
        tuple((f"k{i}".encode(), b"v") for i in range(32)),
    ],
    ids=["none", "empty-value", "longest", "charset", "32-entries"],
)
def test_valid_trace_data(kit, data):
    check_transaction(register_tx(kit, data=data), kit.params)


def test_a_data_key_twice_is_refused(kit):
    data = ((b"origin", b"Yunnan"), (b"origin", b"Fujian"))
    malformed(kit, register_tx(kit, data=data), "bad-trace-data")


@pytest.mark.parametrize(
    "key", [b"", b"Origin", b"or igin", b"k" * 33, b"origin:", b"orig\xc3\xadn"],
    ids=["empty", "uppercase", "space", "33-chars", "colon", "non-ascii"],
)
def test_bad_data_keys_are_refused(kit, key):
    malformed(kit, register_tx(kit, data=((key, b"v"),)), "bad-trace-data")


@pytest.mark.parametrize(
    "value, reason",
    [
        (b"v" * 257, "bad-trace-data-length"),
        (b"\xc3", "bad-trace-data-utf8"),
        (b"a\tb", "bad-trace-data-control"),
    ],
    ids=["257-bytes", "bad-utf8", "tab"],
)
def test_bad_data_values_are_refused(kit, value, reason):
    malformed(kit, register_tx(kit, data=((b"origin", value),)), reason)


# ---------------------------------------------------------------------------
# Item registration: contextual rules
# ---------------------------------------------------------------------------


def test_valid_registration(kit, state):
    tx = register_tx(kit)
    payload = tx.payload
    fee, checks, effect = accept(kit, tx, state)
    assert fee == 100
    asset = item_asset_id(h160(kit, MERCHANT), ITEM_ID)
    assert effect.deltas == {asset: 1}
    assert decoded(effect).items == {asset: ItemRecord(h160(kit, MERCHANT), ITEM_ID.decode(),
                                              PRODUCT.decode(), HEIGHT, tx.txid)}
    assert effect.burned == 0
    assert len(checks) == 2  # the witness, then the merchant's payload signature
    digest = item_sig_digest(payload, CHAIN_ID, wire([tx.inputs[0].prevout]))
    assert checks[-1] == (pub(kit, MERCHANT), payload.signature, digest)


def test_registration_funded_by_someone_else_is_valid(kit, state):
    tx = register_tx(kit, funder=FUNDER, holder=MERCHANT)
    _, checks, effect = accept(kit, tx, state)
    assert len(checks) == 2
    assert decoded(effect).items[tx.payload.asset].merchant == h160(kit, MERCHANT)


def test_registration_over_several_inputs_binds_all_of_them(kit, state):
    ops = [kit.fund(600, kit.p2a(MERCHANT)), kit.fund(500, kit.p2a(MERCHANT))]
    payload = signed_register(kit, ops)
    outs = [kit.out(1, kit.p2a(MERCHANT), payload.asset), kit.out(1_000, kit.p2a(MERCHANT))]
    keys = [[kit.keys[MERCHANT]]] * 2
    assert accept(kit, kit.spend(ops, outs, keys, payload=payload), state)[0] == 100
    # Signed over the same inputs in another order: another digest.
    swapped = signed_register(kit, ops[::-1])
    bad_signature(kit, kit.spend(ops, outs, keys, payload=swapped), state)


def test_registration_signed_by_another_key_is_refused(kit, state):
    tx = register_tx(kit, signer=OTHER_MERCHANT)
    refuse(kit, tx, state, "bad-trace-not-merchant")


def test_registration_signed_over_other_inputs_fails_verification(kit, state):
    tx = register_tx(kit, sign_over=[kit.fund(1_000, kit.p2a(MERCHANT))])
    bad_signature(kit, tx, state)


def test_registration_signed_for_another_chain_fails_verification(kit, state):
    bad_signature(kit, register_tx(kit, chain_id="another-chain"), state)


def test_a_registration_copied_into_another_tx_fails_verification(kit, state):
    pending = register_tx(kit)
    accept(kit, pending, state)
    # A stranger puts the merchant's signed registration into a tx of its own.
    op = kit.fund(1_000, kit.p2a(STRANGER))
    outs = [kit.out(1, kit.p2a(STRANGER), pending.payload.asset),
            kit.out(900, kit.p2a(STRANGER))]
    copy = kit.spend([op], outs, [[kit.keys[STRANGER]]], payload=pending.payload)
    bad_signature(kit, copy, state)


def test_tampered_registration_fails_verification(kit, state):
    tx = register_tx(kit)
    payload = replace(tx.payload, product=b"Oolong tea")
    op = tx.inputs[0].prevout
    assert payload.asset == tx.payload.asset  # the item id is unchanged
    tampered = kit.spend([op], tx.outputs, [[kit.keys[MERCHANT]]], payload=payload)
    bad_signature(kit, tampered, state)


def test_registering_a_registered_item_is_refused(kit, state):
    known_item(kit, state)
    refuse(kit, register_tx(kit), state, "bad-trace-duplicate")


def test_same_item_id_of_another_merchant_is_not_a_duplicate(kit, state):
    known_item(kit, state, merchant=OTHER_MERCHANT)
    accept(kit, register_tx(kit), state)


def test_registration_after_a_registration_is_applied_is_refused(kit, state):
    first = register_tx(kit)
    state.apply(accept(kit, first, state)[2])
    refuse(kit, register_tx(kit, product=b"Another lot"), state, "bad-trace-duplicate")


@pytest.mark.parametrize("items", [(2,), (1, 1), ()], ids=["amount-2", "two-outputs", "none"])
def test_registration_must_create_one_item_output_of_1(kit, state, items):
    refuse(kit, register_tx(kit, items=items), state, "bad-trace-item-output")


def test_not_merchant_is_checked_before_duplicate_and_outputs(kit, state):
    known_item(kit, state)
    tx = register_tx(kit, signer=OTHER_MERCHANT, items=(2,))
    refuse(kit, tx, state, "bad-trace-not-merchant")


def test_registration_creating_another_asset_is_unbalanced(kit, state):
    op = kit.fund(1_000, kit.p2a(MERCHANT))
    payload = signed_register(kit, [op])
    other = item_asset_id(h160(kit, MERCHANT), b"OTHER")
    outs = [kit.out(1, kit.p2a(MERCHANT), payload.asset), kit.out(1, kit.p2a(MERCHANT), other),
            kit.out(900, kit.p2a(MERCHANT))]
    tx = kit.spend([op], outs, [[kit.keys[MERCHANT]]], payload=payload)
    refuse(kit, tx, state, "bad-txns-in-belowout")


def test_registration_claims_its_item(kit):
    tx = register_tx(kit)
    assert o2o_claims(tx) == [("trace-item", item_asset_id(h160(kit, MERCHANT), ITEM_ID))]


# ---------------------------------------------------------------------------
# Trace events
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("event", range(len(TRACE_EVENTS)))
def test_valid_event_moves_the_item(kit, state, event):
    asset = known_item(kit, state)
    tx = event_tx(kit, asset, event=event, document=sha256(b"certificate"))
    fee, checks, effect = accept(kit, tx, state)
    assert fee == 100
    assert len(checks) == 2  # the two witnesses, no payload signature
    assert effect == O2OEffect()
    assert [o.lock for o in tx.outputs if o.asset == asset] == [kit.p2a(STRANGER)]


def test_event_keeping_the_item_is_valid(kit, state):
    asset = known_item(kit, state)
    tx = event_tx(kit, asset, event=1, location=b"", note=b"roasted", to=CUSTOMER)
    accept(kit, tx, state)


def test_event_of_an_unknown_item_is_refused(kit, state):
    asset = item_asset_id(h160(kit, MERCHANT), ITEM_ID)
    refuse(kit, event_tx(kit, asset), state, "bad-trace-unknown-item")


def test_event_of_an_item_of_another_merchant_is_unknown(kit, state):
    known_item(kit, state, merchant=OTHER_MERCHANT)
    asset = item_asset_id(h160(kit, MERCHANT), ITEM_ID)
    refuse(kit, event_tx(kit, asset), state, "bad-trace-unknown-item")


@pytest.mark.parametrize("event", [len(TRACE_EVENTS), 255])
def test_unknown_event_codes_are_refused(kit, state, event):
    asset = known_item(kit, state)
    assert event >= 7
    malformed(kit, event_tx(kit, asset, event=event), "bad-trace-event")


@pytest.mark.parametrize(
    "field, value, reason",
    [
        ("location", b"l" * 257, "bad-trace-location-length"),
        ("location", b"\xe4\xb8", "bad-trace-location-utf8"),
        ("location", b"Kun\rming", "bad-trace-location-control"),
        ("note", b"n" * 257, "bad-trace-note-length"),
        ("note", b"\x80", "bad-trace-note-utf8"),
        ("note", "a\u2028b".encode(), "bad-trace-note-control"),
    ],
)
def test_bad_event_texts_are_refused(kit, state, field, value, reason):
    asset = known_item(kit, state)
    malformed(kit, event_tx(kit, asset, **{field: value}), reason)


def test_event_texts_up_to_256_bytes_are_valid(kit, state):
    asset = known_item(kit, state)
    accept(kit, event_tx(kit, asset, location=b"l" * 256, note="\u00e9".encode() * 128), state)


def test_event_without_spending_the_item_is_refused(kit, state):
    asset = known_item(kit, state)
    refuse(kit, event_tx(kit, asset, spend_item=False, item_outs=()), state,
           "bad-trace-not-custodian")
    refuse(kit, event_tx(kit, asset, spend_item=False), state, "bad-trace-not-custodian")


def test_event_spent_by_a_non_custodian_key_is_refused(kit, state):
    asset = known_item(kit, state)
    item = kit.fund(1, kit.p2a(CUSTOMER), asset)
    fee_op = kit.fund(1_000, kit.p2a(STRANGER))
    tx = kit.spend([fee_op, item], [kit.out(900, kit.p2a(STRANGER)),
                                    kit.out(1, kit.p2a(STRANGER), asset)],
                   [[kit.keys[STRANGER]]] * 2, payload=TraceEvent(asset, 2, b"", b"", None))
    refuse(kit, tx, state, "bad-txns-wrong-key")


def test_event_destroying_the_item_is_unbalanced(kit, state):
    asset = known_item(kit, state)
    refuse(kit, event_tx(kit, asset, item_outs=()), state, "bad-txns-asset-unbalanced")


def test_event_doubling_the_item_is_refused(kit, state):
    asset = known_item(kit, state)
    refuse(kit, event_tx(kit, asset, item_outs=(2,)), state, "bad-txns-in-belowout")
    refuse(kit, event_tx(kit, asset, item_outs=(1, 1)), state, "bad-txns-in-belowout")


def test_plain_move_of_an_item_is_valid(kit, state):
    asset = known_item(kit, state)
    item = kit.fund(1, kit.p2a(CUSTOMER), asset)
    fee_op = kit.fund(1_000, kit.p2a(CUSTOMER))
    tx = kit.spend([item, fee_op], [kit.out(1, kit.p2a(STRANGER), asset),
                                    kit.out(900, kit.p2a(CUSTOMER))],
                   [[kit.keys[CUSTOMER]]] * 2)
    fee, _, effect = accept(kit, tx, state)
    assert fee == 100
    assert effect is NO_EFFECT


def test_plain_tx_destroying_an_item_is_unbalanced(kit, state):
    asset = known_item(kit, state)
    item = kit.fund(1, kit.p2a(CUSTOMER), asset)
    fee_op = kit.fund(1_000, kit.p2a(CUSTOMER))
    tx = kit.spend([item, fee_op], [kit.out(900, kit.p2a(CUSTOMER))], [[kit.keys[CUSTOMER]]] * 2)
    refuse(kit, tx, state, "bad-txns-asset-unbalanced")


def test_event_claims_nothing(kit, state):
    asset = known_item(kit, state)
    assert o2o_claims(event_tx(kit, asset)) == []


# ---------------------------------------------------------------------------
# Consent grants
# ---------------------------------------------------------------------------


def test_valid_grant(kit, state):
    payload = signed_grant(kit)
    tx = plain_tx(kit, payload, CUSTOMER)
    fee, checks, effect = accept(kit, tx, state)
    assert fee == 100
    assert decoded(effect).consents == {tx.txid: ConsentRecord(
        h160(kit, CUSTOMER), h160(kit, MERCHANT), SCOPE.decode(), UNTIL, HEIGHT)}
    assert effect.deltas == {} and decoded(effect).items == {} and decoded(effect).revocations == {}
    assert len(checks) == 2
    bound = consent_sig_digest(tx.payload, CHAIN_ID, wire([t.prevout for t in tx.inputs]))
    assert checks[-1] == (pub(kit, CUSTOMER), tx.payload.signature, bound)


@pytest.mark.parametrize("scope", [b"a", b"x" * 32, b"purchase.history_v2-0", b"0"])
def test_valid_scopes(kit, scope):
    check_transaction(plain_tx(kit, signed_grant(kit, scope=scope)), kit.params)


@pytest.mark.parametrize(
    "scope",
    [b"", b"Purchase-history", b"purchase history", b"x" * 33, b"purchase/history",
     "h\u00e9".encode()],
    ids=["empty", "uppercase", "space", "33-chars", "slash", "non-ascii"],
)
def test_bad_scopes_are_refused(kit, scope):
    malformed(kit, plain_tx(kit, signed_grant(kit, scope=scope)), "bad-consent-scope")


def test_grant_to_oneself_is_refused(kit, state):
    tx = plain_tx(kit, signed_grant(kit, grantee=CUSTOMER), CUSTOMER)
    refuse(kit, tx, state, "bad-consent-self")


def test_grant_ending_before_the_block_is_refused(kit, state):
    tx = plain_tx(kit, signed_grant(kit, until=HEIGHT - 1), CUSTOMER)
    refuse(kit, tx, state, "bad-consent-expired")
    refuse(kit, tx, state, "bad-consent-expired", height=UNTIL)


def test_grant_ending_at_the_block_height_is_valid(kit, state):
    tx = plain_tx(kit, signed_grant(kit, until=HEIGHT), CUSTOMER)
    assert decoded(accept(kit, tx, state)[2]).consents[tx.txid].until == HEIGHT


def test_grant_with_a_tampered_scope_fails_verification(kit, state):
    payload = replace(signed_grant(kit), scope=b"everything")
    bad_signature(kit, plain_tx(kit, payload, CUSTOMER), state)


def test_grant_with_a_tampered_grantee_fails_verification(kit, state):
    payload = replace(signed_grant(kit), grantee=h160(kit, STRANGER))
    bad_signature(kit, plain_tx(kit, payload, CUSTOMER), state)


def test_grant_signed_by_another_key_fails_verification(kit, state):
    payload = replace(signed_grant(kit), signature=signed_grant(kit, user=STRANGER).signature)
    bad_signature(kit, plain_tx(kit, payload, CUSTOMER), state)


def test_grant_signed_for_another_chain_fails_verification(kit, state):
    payload = signed_grant(kit, chain_id="another-chain")
    bad_signature(kit, plain_tx(kit, payload, CUSTOMER), state)


# ---------------------------------------------------------------------------
# Consent revocations
# ---------------------------------------------------------------------------


def test_valid_revoke(kit, state):
    grant = known_grant(kit, state)
    payload = signed_revoke(kit, grant)
    tx = plain_tx(kit, payload, CUSTOMER)
    fee, checks, effect = accept(kit, tx, state)
    assert fee == 100
    assert decoded(effect).revocations == {grant: tx.txid}
    assert decoded(effect).consents == {}
    assert checks[-1] == (pub(kit, CUSTOMER), payload.signature,
                          revoke_sig_digest(payload, CHAIN_ID))


def test_revoke_of_an_expired_grant_is_valid(kit, state):
    grant = known_grant(kit, state)
    accept(kit, plain_tx(kit, signed_revoke(kit, grant), CUSTOMER), state, height=UNTIL + 1)


def test_revoke_of_an_unknown_grant_is_refused(kit, state):
    tx = plain_tx(kit, signed_revoke(kit, sha256(b"no such grant")), CUSTOMER)
    refuse(kit, tx, state, "bad-consent-unknown")


@pytest.mark.parametrize("signer", [MERCHANT, STRANGER])
def test_revoke_by_another_key_is_refused(kit, state, signer):
    grant = known_grant(kit, state)
    tx = plain_tx(kit, signed_revoke(kit, grant, signer=signer), signer)
    refuse(kit, tx, state, "bad-consent-not-user")


def test_second_revoke_is_refused(kit, state):
    grant = known_grant(kit, state)
    first = plain_tx(kit, signed_revoke(kit, grant), CUSTOMER)
    state.apply(accept(kit, first, state)[2])
    assert state.revocations == {grant: first.txid}
    second = plain_tx(kit, signed_revoke(kit, grant), FUNDER)
    refuse(kit, second, state, "bad-consent-revoked")


def test_revoke_with_a_signature_over_another_grant_fails_verification(kit, state):
    grant = known_grant(kit, state)
    other = signed_revoke(kit, sha256(b"another grant"))
    payload = replace(signed_revoke(kit, grant), signature=other.signature)
    bad_signature(kit, plain_tx(kit, payload, CUSTOMER), state)


def test_revoke_signed_for_another_chain_fails_verification(kit, state):
    grant = known_grant(kit, state)
    payload = signed_revoke(kit, grant, chain_id="another-chain")
    bad_signature(kit, plain_tx(kit, payload, CUSTOMER), state)


def test_revoke_claims_its_grant(kit):
    grant = sha256(b"grant")
    assert o2o_claims(plain_tx(kit, signed_revoke(kit, grant))) == [("consent-revoked", grant)]


# ---------------------------------------------------------------------------
# O2OBlockView and apply_block: a block's own changes are visible to its later txs
# ---------------------------------------------------------------------------


PARENT = BlockHeader(HEIGHT - 1, sha256(b"trace-rules/parent"), bytes(32), 1_700_000_000, 2)


def apply(kit, state, txs):
    return apply_block(kit.block(PARENT, txs), kit.view, kit.params, serial_verifier, state)


def refused_block(kit, state, txs, reason, index):
    with pytest.raises(BlockInvalid) as e:
        apply(kit, state, txs)
    assert e.value.reason == reason
    assert f"tx {index} " in e.value.message


def test_block_view_overlays_items_consents_and_revocations(kit, state):
    base_item = known_item(kit, state)
    base_grant = known_grant(kit, state)
    state.revocations[base_grant] = sha256(b"r0")
    view = O2OBlockView(state)
    assert typed(view).item(base_item) == state.items[base_item]
    assert typed(view).consent(base_grant) == state.consents[base_grant]
    assert typed(view).revoked_by(base_grant) == sha256(b"r0")
    new_item = item_asset_id(h160(kit, MERCHANT), b"NEW")
    record = ItemRecord(h160(kit, MERCHANT), "NEW", "p", HEIGHT, sha256(b"i"))
    consent = ConsentRecord(h160(kit, CUSTOMER), h160(kit, MERCHANT), "s", UNTIL, HEIGHT)
    view.apply(effect_of(items={new_item: record}, consents={sha256(b"g"): consent},
                         revocations={sha256(b"g"): sha256(b"r")}))
    assert typed(view).item(new_item) == record
    assert typed(view).consent(sha256(b"g")) == consent
    assert typed(view).revoked_by(sha256(b"g")) == sha256(b"r")
    # The base is untouched; unknown keys fall through to it.
    assert state.item(new_item) is None and state.consent(sha256(b"g")) is None
    assert typed(view).item(base_item) == state.items[base_item]
    assert decoded(view.changes).items == {new_item: record}


def test_two_registrations_of_one_item_in_one_block_are_refused(kit, state):
    first = register_tx(kit)
    second = register_tx(kit, product=b"Same lot, again")
    effects = apply(kit, state, [first])
    assert list(decoded(effects.o2o).items) == [first.payload.asset]
    assert decoded(effects.o2o).items[first.payload.asset].txid == first.txid
    refused_block(kit, state, [first, second], "bad-trace-duplicate", 1)
    assert state.items == {}  # apply_block changes nothing itself


def test_register_then_event_in_one_block_is_valid(kit, state):
    register = register_tx(kit, holder=CUSTOMER)
    asset = register.payload.asset
    fee_op = kit.fund(1_000, kit.p2a(CUSTOMER))
    event = kit.spend([Outpoint(register.txid, 0), fee_op],
                      [kit.out(1, kit.p2a(STRANGER), asset), kit.out(900, kit.p2a(CUSTOMER))],
                      [[kit.keys[CUSTOMER]]] * 2, payload=TraceEvent(asset, 2, b"", b"", None))
    effects = apply(kit, state, [register, event])
    assert effects.fees == 200
    assert list(decoded(effects.o2o).items) == [asset]
    assert (Outpoint(event.txid, 0), event.outputs[0]) in [
        (op, coin.output) for op, coin in effects.created]
    # Without the registration before it, the event's item is unknown.
    refused_block(kit, state, [event], "bad-txns-inputs-missingorspent", 0)


def test_block_with_a_forged_registration_fails_its_signature_batch(kit, state):
    good = register_tx(kit, item_id=b"GOOD")
    forged = register_tx(kit, sign_over=[kit.fund()])
    refused_block(kit, state, [good, forged], "bad-txns-signature", 1)


def test_grant_then_revoke_in_one_block_is_valid(kit, state):
    grant = plain_tx(kit, signed_grant(kit), CUSTOMER)
    revoke = plain_tx(kit, signed_revoke(kit, grant.txid), CUSTOMER)
    effects = apply(kit, state, [grant, revoke])
    assert list(decoded(effects.o2o).consents) == [grant.txid]
    assert decoded(effects.o2o).revocations == {grant.txid: revoke.txid}


def test_revoke_before_its_grant_in_one_block_is_refused(kit, state):
    grant = plain_tx(kit, signed_grant(kit), CUSTOMER)
    revoke = plain_tx(kit, signed_revoke(kit, grant.txid), CUSTOMER)
    refused_block(kit, state, [revoke, grant], "bad-consent-unknown", 0)


def test_two_revokes_of_one_grant_in_one_block_are_refused(kit, state):
    grant = known_grant(kit, state)
    first = plain_tx(kit, signed_revoke(kit, grant), CUSTOMER)
    second = plain_tx(kit, signed_revoke(kit, grant), FUNDER)
    assert decoded(apply(kit, state, [first]).o2o).revocations == {grant: first.txid}
    refused_block(kit, state, [first, second], "bad-consent-revoked", 1)


def test_revoke_by_the_grantee_in_the_grant_block_is_refused(kit, state):
    grant = plain_tx(kit, signed_grant(kit), CUSTOMER)
    revoke = plain_tx(kit, signed_revoke(kit, grant.txid, signer=MERCHANT), MERCHANT)
    refused_block(kit, state, [grant, revoke], "bad-consent-not-user", 1)


def test_grant_replayed_in_another_tx_fails_verification(kit, state):
    """A grantee copying a (later revoked) grant into its own tx cannot revive
    it: the user's signature covers the inputs of the tx that carried it."""
    original = plain_tx(kit, signed_grant(kit), CUSTOMER)
    accept(kit, original, state)
    op = kit.fund(1_000, kit.p2a(MERCHANT))
    replay = kit.spend([op], [kit.out(900, kit.p2a(MERCHANT))], [[kit.keys[MERCHANT]]],
                       payload=original.payload)
    bad_signature(kit, replay, state)

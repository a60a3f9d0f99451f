"""Profile rules (:class:`~o2ocli.core.payloads.ProfileCommit`,
:class:`~o2ocli.core.payloads.ConsentGrantProfile`) of :mod:`o2ocli.consensus.profile`,
as applied by the tx rules.

Each rule gets its valid case and one test per way to break it, asserted by its
stable ``reason``; the state is an :class:`O2OBlockView` over an empty chain that
accumulates the accepted effects, every signature is real.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from o2ocli.consensus import profile
from o2ocli.consensus.consent import ConsentRecord, read_consent
from o2ocli.consensus.errors import TxInvalid
from o2ocli.consensus.o2o import STATE_DEPENDENT_REASONS, check_o2o_payload
from o2ocli.consensus.profile import (
    MAX_PROFILE_LEAVES,
    ProfileRecord,
    current_commitment,
    read_commitment,
)
from o2ocli.consensus.state import EMPTY_STATE, O2OBlockView
from o2ocli.consensus.tx import (
    check_transaction,
    check_tx_contextual,
    resolve_inputs,
    serial_verifier,
    validate_transaction,
)
from o2ocli.core.payloads import (
    ConsentGrantProfile,
    ProfileCommit,
    consent_profile_sig_digest,
    profile_sig_digest,
)
from o2ocli.crypto.hashes import sha256

CHAIN_ID = "o2o-test"
HEIGHT = 50
FUNDER, USER, MERCHANT, OTHER_USER = 0, 2, 1, 3
ROOT = sha256(b"profile-rules/root")


def pub(kit, i):
    return kit.keys[i].public_key.to_bytes()


def h160(kit, i):
    return kit.keys[i].public_key.hash160()


def signed_tx(kit, unsigned, digest_of, *, signer=USER, chain_id=CHAIN_ID, payer=USER):
    """A 1-in/1-out spend of a fresh coin of ``payer`` carrying ``unsigned``
    signed by ``signer`` over the tx's input (as the wallet does)."""
    op = kit.fund(1_000, kit.p2a(payer))
    digest = digest_of(unsigned, chain_id, [op.txid + op.index.to_bytes(4, "little")])
    payload = replace(unsigned, signature=kit.keys[signer].sign(digest))
    return kit.spend([op], [kit.out(900, kit.p2a(payer))], [[kit.keys[payer]]], payload=payload)


def commit_tx(kit, *, root=ROOT, leaves=3, user=USER, **kw):
    return signed_tx(kit, ProfileCommit(root, leaves, pub(kit, user), bytes(64)),
                     profile_sig_digest, **kw)


def grant_tx(kit, commitment, *, user=USER, grantee=MERCHANT, scope=b"phone",
             until=HEIGHT + 100, **kw):
    unsigned = ConsentGrantProfile(h160(kit, grantee), scope, until, commitment,
                                   pub(kit, user), bytes(64))
    return signed_tx(kit, unsigned, consent_profile_sig_digest, payer=user, **kw)


def accept(kit, tx, state, height=HEIGHT):
    """Both stages and every signature pass; the effect is applied to ``state``."""
    check_transaction(tx, kit.params)
    fee, checks, effect = check_tx_contextual(tx, resolve_inputs(tx, kit.view), height,
                                              kit.params, state)
    assert serial_verifier(checks) is None
    state.apply(effect)
    return checks, effect


def refuse(kit, tx, state, reason, height=HEIGHT):
    check_transaction(tx, kit.params)
    with pytest.raises(TxInvalid) as e:
        check_tx_contextual(tx, resolve_inputs(tx, kit.view), height, kit.params, state)
    assert e.value.reason == reason


def bad_signature(kit, tx, state):
    check_transaction(tx, kit.params)
    with pytest.raises(TxInvalid) as e:
        validate_transaction(tx, kit.view, HEIGHT, kit.params, state=state)
    assert e.value.reason == "bad-txns-signature"


@pytest.fixture
def state():
    return O2OBlockView(EMPTY_STATE)


# -- commitments ----------------------------------------------------------------


def test_a_commitment_becomes_the_users_current_one(kit, state):
    tx = commit_tx(kit)
    checks, effect = accept(kit, tx, state)
    user = h160(kit, USER)
    assert read_commitment(state, tx.txid) == ProfileRecord(user, pub(kit, USER), ROOT, 3, HEIGHT)
    assert current_commitment(state, user) == tx.txid
    assert (profile.PROFILE_HISTORY.name, user + HEIGHT.to_bytes(4, "big") + tx.txid) in \
        effect.writes
    bound = profile_sig_digest(tx.payload, CHAIN_ID, tx.wire_outpoints())
    assert checks[-1] == (pub(kit, USER), tx.payload.signature, bound)


def test_a_newer_commitment_replaces_the_current_one_and_both_stay(kit, state):
    first = commit_tx(kit)
    accept(kit, first, state)
    second = commit_tx(kit, root=sha256(b"newer"), leaves=5)
    accept(kit, second, state, height=HEIGHT + 1)
    assert current_commitment(state, h160(kit, USER)) == second.txid
    assert read_commitment(state, first.txid).root == ROOT
    assert read_commitment(state, second.txid).leaves == 5
    other = commit_tx(kit, user=OTHER_USER, payer=OTHER_USER, signer=OTHER_USER)
    accept(kit, other, state)
    assert current_commitment(state, h160(kit, USER)) == second.txid  # per user


@pytest.mark.parametrize("leaves", [1, MAX_PROFILE_LEAVES])
def test_leaf_counts_at_the_bounds_are_valid(kit, state, leaves):
    accept(kit, commit_tx(kit, leaves=leaves), state)


@pytest.mark.parametrize("leaves", [0, MAX_PROFILE_LEAVES + 1, 2**32 - 1])
def test_leaf_counts_out_of_bounds_are_malformed(kit, leaves):
    tx = commit_tx(kit, leaves=leaves)
    for check in (check_o2o_payload, lambda t: check_transaction(t, kit.params)):
        with pytest.raises(TxInvalid) as e:
            check(tx)
        assert e.value.reason == "bad-profile-leaves"


def test_a_tampered_root_fails_verification(kit, state):
    tx = commit_tx(kit)
    forged = kit.spend([tx.inputs[0].prevout], list(tx.outputs), [[kit.keys[USER]]],
                       payload=replace(tx.payload, root=sha256(b"forged")))
    bad_signature(kit, forged, state)


def test_a_commitment_signed_for_another_chain_fails_verification(kit, state):
    bad_signature(kit, commit_tx(kit, chain_id="another-chain"), state)


def test_a_commitment_signed_by_another_key_fails_verification(kit, state):
    bad_signature(kit, commit_tx(kit, signer=OTHER_USER), state)


def test_a_commitment_replayed_in_another_tx_fails_verification(kit, state):
    """Replaying an old commitment would make its root current again."""
    old = commit_tx(kit)
    op = kit.fund(1_000, kit.p2a(USER))
    replay = kit.spend([op], [kit.out(900, kit.p2a(USER))], [[kit.keys[USER]]],
                       payload=old.payload)
    bad_signature(kit, replay, state)


# -- grants naming a commitment ---------------------------------------------------


def known_commitment(kit, state, user=USER):
    tx = commit_tx(kit, user=user, payer=user, signer=user)
    accept(kit, tx, state)
    return tx.txid


def test_a_grant_naming_the_users_commitment_is_stored_with_it(kit, state):
    commitment = known_commitment(kit, state)
    tx = grant_tx(kit, commitment)
    checks, _ = accept(kit, tx, state)
    assert read_consent(state, tx.txid) == ConsentRecord(
        h160(kit, USER), h160(kit, MERCHANT), "phone", HEIGHT + 100, HEIGHT, commitment)
    bound = consent_profile_sig_digest(tx.payload, CHAIN_ID, tx.wire_outpoints())
    assert checks[-1] == (pub(kit, USER), tx.payload.signature, bound)


def test_a_grant_naming_an_unknown_commitment_is_refused(kit, state):
    refuse(kit, grant_tx(kit, sha256(b"nothing")), state, "bad-consent-profile-unknown")
    assert "bad-consent-profile-unknown" in STATE_DEPENDENT_REASONS


def test_a_grant_naming_another_users_commitment_is_refused(kit, state):
    theirs = known_commitment(kit, state, user=OTHER_USER)
    refuse(kit, grant_tx(kit, theirs), state, "bad-consent-profile-not-user")


def test_a_grant_naming_a_commitment_keeps_the_plain_grant_rules(kit, state):
    commitment = known_commitment(kit, state)
    refuse(kit, grant_tx(kit, commitment, grantee=USER), state, "bad-consent-self")
    refuse(kit, grant_tx(kit, commitment, until=HEIGHT - 1), state, "bad-consent-expired")
    with pytest.raises(TxInvalid) as e:
        check_transaction(grant_tx(kit, commitment, scope=b"Phone Number"), kit.params)
    assert e.value.reason == "bad-consent-scope"
    bad_signature(kit, grant_tx(kit, commitment, signer=OTHER_USER), state)


def test_a_grant_with_another_commitment_swapped_in_fails_verification(kit, state):
    first, second = known_commitment(kit, state), known_commitment(kit, state)
    tx = grant_tx(kit, first)
    forged = kit.spend([tx.inputs[0].prevout], list(tx.outputs), [[kit.keys[USER]]],
                       payload=replace(tx.payload, profile=second))
    bad_signature(kit, forged, state)


def test_consent_records_without_a_commitment_keep_their_stored_bytes(kit):
    plain = ConsentRecord(h160(kit, USER), h160(kit, MERCHANT), "phone", 9, 5)
    named = replace(plain, profile=ROOT)
    assert named.to_bytes() == plain.to_bytes() + ROOT
    assert ConsentRecord.from_bytes(plain.to_bytes()) == plain
    assert ConsentRecord.from_bytes(named.to_bytes()) == named

"""Consensus rules of the consent family: users' data-use grants and revocations.

* A user grants a merchant (``grantee``) use of one data ``scope`` up to a
  height; the grant is signed by the user's key together with the tx's inputs.
  Nobody grants to itself; a grant cannot end before its block.
* Only the user who granted can revoke, once.

State (namespaces, see :mod:`.state`): :data:`CONSENT`, :data:`REVOKED`, and
the indexes :data:`CONSENTS_BY_USER` and :data:`CONSENTS_BY_GRANTEE`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from o2ocli.core.encoding import Reader, Writer
from o2ocli.core.payloads import (
    ConsentGrant,
    ConsentRevoke,
    consent_sig_digest,
    revoke_sig_digest,
)
from o2ocli.core.tx import Coin, Tx
from o2ocli.crypto.hashes import hash160

from .errors import TxInvalid
from .fields import SCOPE_CHARS, check_name
from .params import ConsensusParams
from .state import FamilyRules, Namespace, O2OEffect, O2OState, StateKey

__all__ = [
    "STATE_DEPENDENT_REASONS",
    "MAX_SCOPE",
    "CONSENT",
    "REVOKED",
    "CONSENTS_BY_USER",
    "CONSENTS_BY_GRANTEE",
    "NAMESPACES",
    "ConsentRecord",
    "read_consent",
    "revoked_by",
    "consent_writes",
    "check_scope",
    "check_consent_grant_fields",
    "check_consent_grant",
    "check_consent_revoke",
    "RULES",
]

MAX_SCOPE = 32
"""Most characters of a consent scope (``a-z 0-9 . _ -``)."""

STATE_DEPENDENT_REASONS = frozenset({
    "bad-consent-expired",
    "bad-consent-unknown",
    "bad-consent-revoked",
})
"""Reasons of this family that depend on the chain a node has seen
(see :data:`o2ocli.consensus.o2o.STATE_DEPENDENT_REASONS`)."""

CONSENT = Namespace("consent-grant", "grant txid → ConsentRecord")
CONSENTS_BY_USER = Namespace("consent-by-user", "user pubkey hash ‖ height u32 BE ‖ grant txid "
                             "→ empty", index=True)
CONSENTS_BY_GRANTEE = Namespace("consent-by-grantee", "grantee pubkey hash ‖ height u32 BE ‖ "
                                "grant txid → empty", index=True)
REVOKED = Namespace("consent-revoked", "grant txid → txid of its revocation",
                    claim="consent grant (one revocation per grant)")
NAMESPACES = (CONSENT, CONSENTS_BY_USER, CONSENTS_BY_GRANTEE, REVOKED)


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """A consent grant."""

    user: bytes
    """Pubkey hash of the user who granted."""
    grantee: bytes
    """Pubkey hash of the merchant granted access."""
    scope: str
    """Data scope."""
    until: int
    """Last height the grant holds."""
    height: int
    """Height of the grant."""
    profile: bytes | None = None
    """Txid of the profile commitment the grant names (a
    :class:`~o2ocli.core.payloads.ConsentGrantProfile`), or None."""

    def to_bytes(self) -> bytes:
        """Stored encoding (the profile txid, when there is one, trails)."""
        w = Writer()
        w.raw(self.user)
        w.raw(self.grantee)
        w.var_bytes(self.scope.encode())
        w.u32(self.until)
        w.u32(self.height)
        if self.profile is not None:
            w.raw(self.profile)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ConsentRecord:
        """Inverse of :meth:`to_bytes`."""
        r = Reader(data)
        record = cls(r.raw(20, "user"), r.raw(20, "grantee"), r.var_bytes("scope", 256).decode(),
                     r.u32("until"), r.u32("height"),
                     r.raw(32, "profile") if r.remaining else None)
        r.finish("consent record")
        return record


def read_consent(state: O2OState, txid: bytes) -> ConsentRecord | None:
    """The consent grant ``txid``, or None."""
    data = state.read((CONSENT.name, txid))
    return None if data is None else ConsentRecord.from_bytes(data)


def revoked_by(state: O2OState, grant: bytes) -> bytes | None:
    """Txid of the revocation of ``grant``, or None."""
    return state.read((REVOKED.name, grant))


def consent_writes(txid: bytes, record: ConsentRecord) -> dict[StateKey, bytes | None]:
    """The writes that store grant ``txid`` (with its two index entries)."""
    height = record.height.to_bytes(4, "big")
    return {
        (CONSENT.name, txid): record.to_bytes(),
        (CONSENTS_BY_USER.name, record.user + height + txid): b"",
        (CONSENTS_BY_GRANTEE.name, record.grantee + height + txid): b"",
    }


def check_scope(scope: bytes) -> None:
    """Rule: a consent scope is 1..32 characters of ``a-z 0-9 . _ -``."""
    check_name(scope, "scope", "bad-consent-scope", SCOPE_CHARS, MAX_SCOPE)


def check_consent_grant_fields(tx: Tx) -> None:
    """Rule: a grant has a valid scope (:func:`check_scope`)."""
    check_scope(tx.payload.scope)  # type: ignore[attr-defined]


def check_consent_grant(
    tx: Tx, coins: Sequence[Coin], height: int, params: ConsensusParams, state: O2OState
) -> O2OEffect:
    """Rule: a grant is not to the user itself, ends at or after its block's
    height, and is signed by the user (with the tx's inputs)."""
    payload: ConsentGrant = tx.payload  # type: ignore[assignment]
    user = hash160(payload.pubkey)
    if user == payload.grantee:
        raise TxInvalid("bad-consent-self", "a user cannot grant consent to itself")
    if payload.until < height:
        raise TxInvalid("bad-consent-expired",
                        f"the grant ends at height {payload.until}, before this block ({height})")
    record = ConsentRecord(user, payload.grantee, payload.scope.decode(), payload.until, height)
    outpoints = tx.wire_outpoints()
    digest = consent_sig_digest(payload, params.chain_id, outpoints)
    return O2OEffect(checks=[(payload.pubkey, payload.signature, digest)],
                     writes=consent_writes(tx.txid, record))


def check_consent_revoke(
    tx: Tx, coins: Sequence[Coin], height: int, params: ConsensusParams, state: O2OState
) -> O2OEffect:
    """Rule: a revocation names a grant in the chain, is signed by the user
    who granted, and is the grant's first revocation."""
    payload: ConsentRevoke = tx.payload  # type: ignore[assignment]
    grant = read_consent(state, payload.grant)
    if grant is None:
        raise TxInvalid("bad-consent-unknown", f"no consent grant {payload.grant.hex()[:16]}…")
    if hash160(payload.pubkey) != grant.user:
        raise TxInvalid("bad-consent-not-user", "only the user who granted can revoke")
    earlier = revoked_by(state, payload.grant)
    if earlier is not None:
        raise TxInvalid("bad-consent-revoked",
                        f"the grant was already revoked ({earlier.hex()[:16]}…)")
    check = (payload.pubkey, payload.signature, revoke_sig_digest(payload, params.chain_id))
    return O2OEffect(checks=[check], writes={(REVOKED.name, payload.grant): tx.txid})


def revoke_claims(tx: Tx) -> list[StateKey]:
    """A revocation claims its grant (one revocation per grant)."""
    return [(REVOKED.name, tx.payload.grant)]  # type: ignore[attr-defined]


RULES = {
    ConsentGrant.TAG: FamilyRules(check_consent_grant_fields, check_consent_grant),
    ConsentRevoke.TAG: FamilyRules(contextual=check_consent_revoke, claims=revoke_claims),
}
"""Payload tag → rules, registered by :mod:`.o2o`."""

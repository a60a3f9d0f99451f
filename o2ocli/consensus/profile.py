"""Consensus rules of the profile family: commitments to salted attributes.

* A user commits to its profile attributes by the root of their tree
  (:mod:`o2ocli.core.profiletree`) and their number (1 to
  :data:`MAX_PROFILE_LEAVES`), signed by the user's key with the tx's inputs.
  The newest commitment of a user is its *current* one; every commitment
  stays readable by txid, and the user's history is indexed.
* A consent grant may name the profile commitment it covers
  (:class:`~o2ocli.core.payloads.ConsentGrantProfile`): the same rules as a
  plain grant (:func:`o2ocli.consensus.consent.check_consent_grant`), and the
  commitment is in the chain and is the granting user's.

State (namespaces, see :mod:`.state`): :data:`PROFILE_COMMIT`,
:data:`PROFILE_CURRENT`, and the index :data:`PROFILE_HISTORY`; a grant that
names a commitment is a consent grant like any other (stored with the
commitment's txid).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from o2ocli.core.encoding import Reader, Writer
from o2ocli.core.payloads import (
    ConsentGrantProfile,
    ProfileCommit,
    consent_profile_sig_digest,
    profile_sig_digest,
)
from o2ocli.core.tx import Coin, Tx
from o2ocli.crypto.hashes import hash160

from .consent import ConsentRecord, check_scope, consent_writes
from .errors import TxInvalid
from .params import ConsensusParams
from .state import FamilyRules, Namespace, O2OEffect, O2OState, StateKey

__all__ = [
    "MAX_PROFILE_LEAVES",
    "STATE_DEPENDENT_REASONS",
    "PROFILE_COMMIT",
    "PROFILE_CURRENT",
    "PROFILE_HISTORY",
    "NAMESPACES",
    "ProfileRecord",
    "read_commitment",
    "current_commitment",
    "check_profile_fields",
    "check_profile_commit",
    "check_consent_profile_fields",
    "check_consent_profile",
    "RULES",
]

MAX_PROFILE_LEAVES = 256
"""Most attributes under one profile commitment."""

STATE_DEPENDENT_REASONS = frozenset({"bad-consent-profile-unknown"})
"""Reasons of this family that depend on the chain a node has seen."""

PROFILE_COMMIT = Namespace("profile-commit", "commitment txid → ProfileRecord")
PROFILE_CURRENT = Namespace("profile-current", "user pubkey hash → txid of the user's "
                            "newest commitment")
PROFILE_HISTORY = Namespace("profile-history", "user pubkey hash ‖ height u32 BE ‖ "
                            "commitment txid → empty", index=True)
NAMESPACES = (PROFILE_COMMIT, PROFILE_CURRENT, PROFILE_HISTORY)


@dataclass(frozen=True, slots=True)
class ProfileRecord:
    """A profile commitment as the chain keeps it."""

    user: bytes
    """Pubkey hash of the user."""
    pubkey: bytes
    """The user's compressed public key (it signs the user's disclosures)."""
    root: bytes
    """Root of the attribute tree."""
    leaves: int
    """Number of attributes."""
    height: int
    """Height of the commitment."""

    def to_bytes(self) -> bytes:
        """Stored encoding."""
        w = Writer()
        w.raw(self.user)
        w.raw(self.pubkey)
        w.raw(self.root)
        w.u32(self.leaves)
        w.u32(self.height)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ProfileRecord:
        """Inverse of :meth:`to_bytes`."""
        r = Reader(data)
        record = cls(r.raw(20, "user"), r.raw(33, "pubkey"), r.raw(32, "root"),
                     r.u32("leaves"), r.u32("height"))
        r.finish("profile record")
        return record


def read_commitment(state: O2OState, txid: bytes) -> ProfileRecord | None:
    """The profile commitment ``txid``, or None."""
    data = state.read((PROFILE_COMMIT.name, txid))
    return None if data is None else ProfileRecord.from_bytes(data)


def current_commitment(state: O2OState, user: bytes) -> bytes | None:
    """Txid of ``user``'s newest profile commitment, or None."""
    return state.read((PROFILE_CURRENT.name, user))


def check_profile_fields(tx: Tx) -> None:
    """Rule: a profile commitment covers 1 to :data:`MAX_PROFILE_LEAVES` attributes."""
    leaves = tx.payload.leaves  # type: ignore[attr-defined]
    if not 1 <= leaves <= MAX_PROFILE_LEAVES:
        raise TxInvalid("bad-profile-leaves",
                        f"a profile commits to 1 to {MAX_PROFILE_LEAVES} attributes, not {leaves}")


def check_profile_commit(
    tx: Tx, coins: Sequence[Coin], height: int, params: ConsensusParams, state: O2OState
) -> O2OEffect:
    """Rule: a commitment is signed by the user (with the tx's inputs); it
    becomes the user's current one."""
    payload: ProfileCommit = tx.payload  # type: ignore[assignment]
    user = hash160(payload.pubkey)
    record = ProfileRecord(user, payload.pubkey, payload.root, payload.leaves, height)
    digest = profile_sig_digest(payload, params.chain_id, tx.wire_outpoints())
    writes: dict[StateKey, bytes | None] = {
        (PROFILE_COMMIT.name, tx.txid): record.to_bytes(),
        (PROFILE_CURRENT.name, user): tx.txid,
        (PROFILE_HISTORY.name, user + height.to_bytes(4, "big") + tx.txid): b"",
    }
    return O2OEffect(checks=[(payload.pubkey, payload.signature, digest)], writes=writes)


def check_consent_profile_fields(tx: Tx) -> None:
    """Rule: a grant naming a profile has a valid scope
    (:func:`~.consent.check_scope`)."""
    check_scope(tx.payload.scope)  # type: ignore[attr-defined]


def check_consent_profile(
    tx: Tx, coins: Sequence[Coin], height: int, params: ConsensusParams, state: O2OState
) -> O2OEffect:
    """Rule: a grant naming a profile commitment is not to the user itself,
    ends at or after its block's height, names a commitment in the chain that
    the granting user made, and is signed by the user (with the tx's inputs)."""
    payload: ConsentGrantProfile = tx.payload  # type: ignore[assignment]
    user = hash160(payload.pubkey)
    if user == payload.grantee:
        raise TxInvalid("bad-consent-self", "a user cannot grant consent to itself")
    if payload.until < height:
        raise TxInvalid("bad-consent-expired",
                        f"the grant ends at height {payload.until}, before this block ({height})")
    commitment = read_commitment(state, payload.profile)
    if commitment is None:
        raise TxInvalid("bad-consent-profile-unknown",
                        f"no profile commitment {payload.profile.hex()[:16]}…")
    if commitment.user != user:
        raise TxInvalid("bad-consent-profile-not-user",
                        "the named profile commitment is not the granting user's")
    record = ConsentRecord(user, payload.grantee, payload.scope.decode(), payload.until, height,
                           payload.profile)
    digest = consent_profile_sig_digest(payload, params.chain_id, tx.wire_outpoints())
    return O2OEffect(checks=[(payload.pubkey, payload.signature, digest)],
                     writes=consent_writes(tx.txid, record))


RULES = {
    ProfileCommit.TAG: FamilyRules(check_profile_fields, check_profile_commit),
    ConsentGrantProfile.TAG: FamilyRules(check_consent_profile_fields, check_consent_profile),
}
"""Payload tag → rules, registered by :mod:`.o2o`."""

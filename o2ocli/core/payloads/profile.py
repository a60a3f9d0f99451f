"""Profile commitments: a user commits to salted attributes by a Merkle root (tag 0x60).

Nothing readable goes on chain: the root of the user's attribute tree
(:mod:`o2ocli.core.profiletree`) and its number of leaves.  The attributes
themselves are disclosed off chain, to one recipient at a time, with the
proofs that lead them to this root (see ``docs/protocol.rst``, "Profile
commitments and disclosures").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from o2ocli.crypto.hashes import sha256d

from ..encoding import Writer, domain_preimage
from .base import PayloadType, bound_body, register
from .spec import U32, Fixed, Signature, wire

__all__ = [
    "ProfileCommit",
    "PROFILE_SIG_TAG",
    "DISCLOSURE_SIG_TAG",
    "profile_sig_digest",
    "disclosure_sig_digest",
]

PROFILE_SIG_TAG = b"o2o/profile-commit"
DISCLOSURE_SIG_TAG = b"o2o/profile-disclosure"


@register(0x60)
@dataclass(frozen=True, slots=True)
class ProfileCommit(PayloadType):
    """A user's commitment to its profile attributes (replaces the previous one)."""

    root: bytes = wire(Fixed(32, "profile root"))
    """Root of the attribute tree."""
    leaves: int = wire(U32("profile leaves"))
    """Number of attributes (leaves) under the root."""
    pubkey: bytes = wire(Fixed(33, "profile pubkey"))
    """The user's compressed public key (the user is its pubkey hash)."""
    signature: bytes = wire(Signature("profile signature"))
    """Signature over :func:`profile_sig_digest`."""


def profile_sig_digest(
    commit: ProfileCommit, chain_id: str, outpoints: Sequence[bytes] = ()
) -> bytes:
    """The digest a user signs to commit: the fields and the carrying tx's
    inputs (a commitment cannot be replayed to make an old root current again)."""
    return sha256d(domain_preimage(PROFILE_SIG_TAG, chain_id, bound_body(commit, outpoints)))


def disclosure_sig_digest(
    chain_id: str, recipient: bytes, commitment: bytes,
    attributes: Sequence[tuple[bytes, bytes, bytes]],
) -> bytes:
    """The digest the committing key signs to bind a disclosure to its recipient:
    ``version 1 ‖ recipient pubkey hash ‖ commitment txid ‖ count ‖ (var_bytes
    key ‖ leaf hash ‖ grant txid) per disclosed attribute`` (in file order)."""
    w = Writer()
    w.u8(1)
    w.raw(recipient)
    w.raw(commitment)
    w.varint(len(attributes))
    for key, leaf, grant in attributes:
        w.var_bytes(key)
        w.raw(leaf)
        w.raw(grant)
    return sha256d(domain_preimage(DISCLOSURE_SIG_TAG, chain_id, w.getvalue()))

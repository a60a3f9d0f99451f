"""Consent: a customer grants a merchant a data scope, and revokes it (tags 0x40, 0x41)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from o2ocli.crypto.hashes import sha256d

from ..encoding import domain_preimage
from .base import PayloadType, bound_body, register
from .spec import U32, Bytes, Fixed, Signature, wire

__all__ = [
    "ConsentGrant",
    "ConsentRevoke",
    "MAX_SCOPE_FIELD",
    "CONSENT_SIG_TAG",
    "REVOKE_SIG_TAG",
    "consent_sig_digest",
    "revoke_sig_digest",
    "ConsentGrantProfile",
    "CONSENT_PROFILE_SIG_TAG",
    "consent_profile_sig_digest",
]

MAX_SCOPE_FIELD = 128
"""Decoder cap on a scope name (the consensus rule is stricter)."""
CONSENT_SIG_TAG = b"o2o/consent"
REVOKE_SIG_TAG = b"o2o/consent-revoke"
CONSENT_PROFILE_SIG_TAG = b"o2o/consent-profile"


@register(0x40)
@dataclass(frozen=True, slots=True)
class ConsentGrant(PayloadType):
    """A customer lets ``grantee`` use a named data scope until a height."""

    grantee: bytes = wire(Fixed(20, "consent grantee"))
    """Pubkey hash of the merchant granted access."""
    scope: bytes = wire(Bytes(MAX_SCOPE_FIELD, "consent scope"))
    """Data scope name (e.g. ``purchase-history``; checked by consensus)."""
    until: int = wire(U32("consent until"))
    """The grant holds up to and including this height."""
    pubkey: bytes = wire(Fixed(33, "consent pubkey"))
    """The user's compressed public key."""
    signature: bytes = wire(Signature("consent signature"))
    """Signature over :func:`consent_sig_digest`."""


@register(0x41)
@dataclass(frozen=True, slots=True)
class ConsentRevoke(PayloadType):
    """The user withdraws a grant."""

    grant: bytes = wire(Fixed(32, "revoke grant"))
    """Txid of the grant."""
    pubkey: bytes = wire(Fixed(33, "revoke pubkey"))
    """The user's compressed public key."""
    signature: bytes = wire(Signature("revoke signature"))
    """Signature over :func:`revoke_sig_digest`."""


def consent_sig_digest(
    grant: ConsentGrant, chain_id: str, outpoints: Sequence[bytes] = ()
) -> bytes:
    """The digest a user signs to grant consent: the fields and the wire-form
    outpoints of the carrying tx's inputs, so a grant cannot be replayed in
    another tx (which would revive it after the user revoked it)."""
    return sha256d(domain_preimage(CONSENT_SIG_TAG, chain_id, bound_body(grant, outpoints)))


def revoke_sig_digest(revoke: ConsentRevoke, chain_id: str) -> bytes:
    """The digest a user signs to revoke a grant."""
    return sha256d(domain_preimage(REVOKE_SIG_TAG, chain_id, revoke.signed_body()))


@register(0x42)
@dataclass(frozen=True, slots=True)
class ConsentGrantProfile(PayloadType):
    """A grant (as :class:`ConsentGrant`) that also names the profile
    commitment it covers: the grantee may verify disclosed attributes of that
    commitment only.  A new type, so :class:`ConsentGrant`'s bytes stay."""

    grantee: bytes = wire(Fixed(20, "consent grantee"))
    """Pubkey hash of the merchant granted access."""
    scope: bytes = wire(Bytes(MAX_SCOPE_FIELD, "consent scope"))
    """Data scope name (also the profile attribute key it covers)."""
    until: int = wire(U32("consent until"))
    """The grant holds up to and including this height."""
    profile: bytes = wire(Fixed(32, "consent profile"))
    """Txid of the user's profile commitment the grant covers."""
    pubkey: bytes = wire(Fixed(33, "consent pubkey"))
    """The user's compressed public key."""
    signature: bytes = wire(Signature("consent signature"))
    """Signature over :func:`consent_profile_sig_digest`."""


def consent_profile_sig_digest(
    grant: ConsentGrantProfile, chain_id: str, outpoints: Sequence[bytes] = ()
) -> bytes:
    """The digest a user signs for a :class:`ConsentGrantProfile` (bound to the
    carrying tx's inputs, like :func:`consent_sig_digest`, under its own tag)."""
    return sha256d(domain_preimage(CONSENT_PROFILE_SIG_TAG, chain_id,
                                   bound_body(grant, outpoints)))

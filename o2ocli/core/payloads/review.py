"""Reviews and merchant replies (tags 0x20, 0x21)."""

from __future__ import annotations

from dataclasses import dataclass

from o2ocli.crypto.hashes import sha256d

from ..encoding import domain_preimage
from .base import PayloadType, register
from .spec import U8, Bytes, Fixed, Signature, wire

__all__ = [
    "Review",
    "ReviewReply",
    "MAX_TEXT_FIELD",
    "REVIEW_SIG_TAG",
    "REPLY_SIG_TAG",
    "review_sig_digest",
    "reply_sig_digest",
]

MAX_TEXT_FIELD = 4096
"""Decoder cap on a review or reply text (the consensus rule allows 1..1000 bytes)."""
REVIEW_SIG_TAG = b"o2o/review"
REPLY_SIG_TAG = b"o2o/reply"


@register(0x20)
@dataclass(frozen=True, slots=True)
class Review(PayloadType):
    """A customer's review of a merchant, backed by a purchase.

    ``signature`` signs :func:`review_sig_digest` with ``pubkey``, the key of an
    address that funded the purchase.
    """

    merchant: bytes = wire(Fixed(20, "review merchant"))
    """Pubkey hash of the merchant's address the purchase paid."""
    purchase: bytes = wire(Fixed(32, "review purchase"))
    """Txid of the purchase."""
    rating: int = wire(U8("review rating"))
    """1..5 stars (checked by consensus)."""
    text: bytes = wire(Bytes(MAX_TEXT_FIELD, "review text"))
    """UTF-8 text (checked by consensus)."""
    pubkey: bytes = wire(Fixed(33, "reviewer pubkey"))
    """The reviewer's compressed public key."""
    signature: bytes = wire(Signature("review signature"))
    """64-byte ``r‖s`` signature over :func:`review_sig_digest`."""


@register(0x21)
@dataclass(frozen=True, slots=True)
class ReviewReply(PayloadType):
    """The merchant's one reply to a review, signed by the merchant address's key."""

    review: bytes = wire(Fixed(32, "reply review txid"))
    """Txid of the review answered."""
    text: bytes = wire(Bytes(MAX_TEXT_FIELD, "reply text"))
    """UTF-8 text (checked by consensus)."""
    pubkey: bytes = wire(Fixed(33, "reply pubkey"))
    """The merchant's compressed public key."""
    signature: bytes = wire(Signature("reply signature"))
    """64-byte signature over :func:`reply_sig_digest`."""


def review_sig_digest(review: Review, chain_id: str) -> bytes:
    """The digest a reviewer signs: bound to the review fields and the chain."""
    return sha256d(domain_preimage(REVIEW_SIG_TAG, chain_id, review.signed_body()))


def reply_sig_digest(reply: ReviewReply, chain_id: str) -> bytes:
    """The digest a merchant signs for a reply."""
    return sha256d(domain_preimage(REPLY_SIG_TAG, chain_id, reply.signed_body()))

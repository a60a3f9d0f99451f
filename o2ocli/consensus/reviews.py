"""Consensus rules of the review family: reviews of purchases and merchants' replies.

* A review names a purchase in the main chain, at most ``review_window``
  blocks old, that paid the merchant address at least ``min_purchase``.
* Its key must be a buyer's (:func:`check_review_buyer`): own money that
  paid the purchase (for an escrow spend, the escrow's payer; an escrow
  refund has no buyer), must not be the merchant's, and must sign the review.
* One review per purchase; one reply per review, signed by the merchant.

State (namespaces, see :mod:`.state`): :data:`REVIEW_OF_PURCHASE`,
:data:`REVIEW`, :data:`REPLY`, and the indexes :data:`REVIEWS_BY_MERCHANT`
and :data:`REVIEWS_BY_REVIEWER`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from o2ocli.core.encoding import Reader, Writer
from o2ocli.core.locks import Lock
from o2ocli.core.payloads import Review, ReviewReply, reply_sig_digest, review_sig_digest
from o2ocli.core.tx import Coin, Tx
from o2ocli.crypto.hashes import hash160

from .errors import TxInvalid
from .fields import TextField, check_text
from .params import ConsensusParams
from .purchases import paid_to, purchase_buyers, refunds_escrow, spent_locks
from .state import FamilyRules, Namespace, O2OEffect, O2OState, StateKey

__all__ = [
    "STATE_DEPENDENT_REASONS",
    "MAX_REVIEW_TEXT",
    "REVIEW_TEXT",
    "REPLY_TEXT",
    "REVIEW_OF_PURCHASE",
    "REVIEW",
    "REPLY",
    "REVIEWS_BY_MERCHANT",
    "REVIEWS_BY_REVIEWER",
    "NAMESPACES",
    "ReviewRecord",
    "read_review",
    "review_of_purchase",
    "reply_of",
    "review_writes",
    "check_review_fields",
    "check_reply_fields",
    "check_review_buyer",
    "check_review",
    "check_reply",
    "RULES",
]

MAX_REVIEW_TEXT = 1000
"""Most bytes of a review or reply text (UTF-8)."""
REVIEW_TEXT = TextField("review text", MAX_REVIEW_TEXT, True,
                        "bad-review-text-length", "bad-review-text-utf8", "bad-review-text-control")
REPLY_TEXT = TextField("reply text", MAX_REVIEW_TEXT, False,
                       "bad-reply-text-length", "bad-reply-text-utf8", "bad-reply-text-control")

STATE_DEPENDENT_REASONS = frozenset({
    "bad-review-no-purchase",
    "bad-review-window",
    "bad-review-duplicate",
    "bad-reply-no-review",
    "bad-reply-duplicate",
})
"""Reasons of this family that depend on the chain a node has seen
(see :data:`o2ocli.consensus.o2o.STATE_DEPENDENT_REASONS`)."""

REVIEW_OF_PURCHASE = Namespace("review-of-purchase", "purchase txid → txid of its review",
                               claim="purchase (one review per purchase)")
REVIEW = Namespace("review", "review txid → ReviewRecord")
REVIEWS_BY_MERCHANT = Namespace("review-by-merchant", "merchant pubkey hash ‖ height u32 BE ‖ "
                                "review txid → empty", index=True)
REVIEWS_BY_REVIEWER = Namespace("review-by-reviewer", "reviewer pubkey hash ‖ height u32 BE ‖ "
                                "review txid → empty", index=True)
REPLY = Namespace("review-reply", "review txid → txid of the merchant's reply",
                  claim="review (one reply per review)")
NAMESPACES = (REVIEW_OF_PURCHASE, REVIEW, REVIEWS_BY_MERCHANT, REVIEWS_BY_REVIEWER, REPLY)


@dataclass(frozen=True, slots=True)
class ReviewRecord:
    """What the chainstate keeps about an accepted review."""

    merchant: bytes
    """Pubkey hash of the reviewed merchant address."""
    reviewer: bytes
    """Pubkey hash of the reviewer's key."""
    purchase: bytes
    """Txid of the purchase behind the review."""
    rating: int
    """1..5."""
    value: int
    """Native coin the purchase paid the merchant address (base units)."""
    height: int
    """Height of the block holding the review."""

    def to_bytes(self) -> bytes:
        """Stored encoding."""
        w = Writer()
        w.raw(self.merchant)
        w.raw(self.reviewer)
        w.raw(self.purchase)
        w.u8(self.rating)
        w.u64(self.value)
        w.u32(self.height)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ReviewRecord:
        """Inverse of :meth:`to_bytes`."""
        r = Reader(data)
        record = cls(
            r.raw(20, "merchant"),
            r.raw(20, "reviewer"),
            r.raw(32, "purchase"),
            r.u8("rating"),
            r.u64("value"),
            r.u32("height"),
        )
        r.finish("review record")
        return record


# --------------------------------------------------------------------------
# Keys and reads
# --------------------------------------------------------------------------


def read_review(state: O2OState, txid: bytes) -> ReviewRecord | None:
    """The record of review ``txid``, or None."""
    data = state.read((REVIEW.name, txid))
    return None if data is None else ReviewRecord.from_bytes(data)


def review_of_purchase(state: O2OState, purchase: bytes) -> bytes | None:
    """Txid of the review of ``purchase``, or None."""
    return state.read((REVIEW_OF_PURCHASE.name, purchase))


def reply_of(state: O2OState, review: bytes) -> bytes | None:
    """Txid of the reply to ``review``, or None."""
    return state.read((REPLY.name, review))


def review_writes(txid: bytes, record: ReviewRecord) -> dict[StateKey, bytes | None]:
    """The writes that store review ``txid`` (with its two index entries)."""
    height = record.height.to_bytes(4, "big")
    return {
        (REVIEW_OF_PURCHASE.name, record.purchase): txid,
        (REVIEW.name, txid): record.to_bytes(),
        (REVIEWS_BY_MERCHANT.name, record.merchant + height + txid): b"",
        (REVIEWS_BY_REVIEWER.name, record.reviewer + height + txid): b"",
    }


# --------------------------------------------------------------------------
# Context-free rules
# --------------------------------------------------------------------------


def check_review_fields(tx: Tx) -> None:
    """Rule: a review's rating is 1..5 and its text (may be empty) is valid
    text of at most 1000 bytes (:data:`REVIEW_TEXT`)."""
    payload: Review = tx.payload  # type: ignore[assignment]
    if not 1 <= payload.rating <= 5:
        raise TxInvalid("bad-review-rating", f"rating must be 1..5, got {payload.rating}")
    check_text(payload.text, REVIEW_TEXT)


def check_reply_fields(tx: Tx) -> None:
    """Rule: a reply's text is valid text of 1..1000 bytes (:data:`REPLY_TEXT`)."""
    payload: ReviewReply = tx.payload  # type: ignore[assignment]
    check_text(payload.text, REPLY_TEXT)


# --------------------------------------------------------------------------
# Contextual rules
# --------------------------------------------------------------------------


def check_review_buyer(
    reviewer: bytes, merchant: bytes, purchase: Tx, spent: Sequence[Lock | None]
) -> None:
    """Rule: the reviewer (a pubkey hash) is a buyer of the purchase other than
    the reviewed ``merchant`` address: an owner of the money that paid it
    (:func:`~o2ocli.consensus.purchases.purchase_buyers`).  ``spent`` holds the
    locks of the coins the purchase spent.

    A refund of an escrow is no purchase (``bad-review-refund``): it pays the
    escrow's payer its own money back, so the payee who signed it cannot review
    the payer, and no one else can either.  Anyone else who is not a buyer is
    refused as ``bad-review-not-buyer``: the arbiter of an escrow, a payee, a
    key that only co-signed, the merchant's own inputs (its change).  When
    several customers' coins paid the merchant together, each is a buyer (the
    first review uses up the purchase's one review).
    """
    if refunds_escrow(purchase, spent):
        raise TxInvalid("bad-review-refund",
                        "the purchase is an escrow refund (the payer's money back): "
                        "nobody can review it")
    if reviewer == merchant or reviewer not in purchase_buyers(purchase, spent):
        raise TxInvalid(
            "bad-review-not-buyer",
            "the reviewer's key did not fund the purchase (a buyer owns money that paid it; "
            "for an escrow, only its payer does)",
        )


def check_review(
    tx: Tx, coins: Sequence[Coin], height: int, params: ConsensusParams, state: O2OState
) -> O2OEffect:
    """Rule: a review names a main-chain purchase at most ``review_window``
    blocks old that paid the merchant at least ``min_purchase``, is not the
    merchant's own, is the purchase's first review, and is signed by a buyer
    (:func:`check_review_buyer`)."""
    payload: Review = tx.payload  # type: ignore[assignment]
    found = state.main_tx(payload.purchase)
    if found is None:
        raise TxInvalid(
            "bad-review-no-purchase", f"purchase {payload.purchase.hex()[:16]}… is not in the chain"
        )
    purchase, purchase_height = found
    if height - purchase_height > params.review_window:
        raise TxInvalid(
            "bad-review-window",
            f"the purchase is {height - purchase_height} blocks old, the window is "
            f"{params.review_window}",
        )
    value = paid_to(purchase, payload.merchant)
    if value == 0:
        raise TxInvalid("bad-review-wrong-merchant", "the purchase did not pay this merchant")
    if value < params.min_purchase:
        raise TxInvalid(
            "bad-review-purchase-too-small",
            f"the purchase paid {value}, the minimum for a review is {params.min_purchase}",
        )
    reviewer = hash160(payload.pubkey)
    if reviewer == payload.merchant:
        raise TxInvalid("bad-review-self", "a merchant cannot review itself")
    earlier = review_of_purchase(state, payload.purchase)
    if earlier is not None:
        raise TxInvalid(
            "bad-review-duplicate", f"the purchase was already reviewed ({earlier.hex()[:16]}…)"
        )
    # Last: the only rule that reads more of the chain (the coins the purchase spent).
    check_review_buyer(reviewer, payload.merchant, purchase, spent_locks(purchase, state))
    record = ReviewRecord(
        payload.merchant, reviewer, payload.purchase, payload.rating, value, height
    )
    check = (payload.pubkey, payload.signature, review_sig_digest(payload, params.chain_id))
    return O2OEffect(checks=[check], writes=review_writes(tx.txid, record))


def check_reply(
    tx: Tx, coins: Sequence[Coin], height: int, params: ConsensusParams, state: O2OState
) -> O2OEffect:
    """Rule: a reply answers a review in the chain, is signed by the reviewed
    merchant, and is the review's first reply."""
    payload: ReviewReply = tx.payload  # type: ignore[assignment]
    review = read_review(state, payload.review)
    if review is None:
        raise TxInvalid(
            "bad-reply-no-review", f"review {payload.review.hex()[:16]}… is not in the chain"
        )
    if hash160(payload.pubkey) != review.merchant:
        raise TxInvalid("bad-reply-not-merchant", "only the reviewed merchant can reply")
    earlier = reply_of(state, payload.review)
    if earlier is not None:
        raise TxInvalid(
            "bad-reply-duplicate", f"the review already has a reply ({earlier.hex()[:16]}…)"
        )
    check = (payload.pubkey, payload.signature, reply_sig_digest(payload, params.chain_id))
    return O2OEffect(checks=[check], writes={(REPLY.name, payload.review): tx.txid})


# --------------------------------------------------------------------------
# Claims and registration
# --------------------------------------------------------------------------


def review_claims(tx: Tx) -> list[StateKey]:
    """A review claims its purchase (one review per purchase)."""
    return [(REVIEW_OF_PURCHASE.name, tx.payload.purchase)]  # type: ignore[attr-defined]


def reply_claims(tx: Tx) -> list[StateKey]:
    """A reply claims its review (one reply per review)."""
    return [(REPLY.name, tx.payload.review)]  # type: ignore[attr-defined]


RULES = {
    Review.TAG: FamilyRules(check_review_fields, check_review, review_claims),
    ReviewReply.TAG: FamilyRules(check_reply_fields, check_reply, reply_claims),
}
"""Payload tag → rules, registered by :mod:`.o2o`."""

"""Renderers of the review payloads (review, merchant's reply)."""

from __future__ import annotations

from typing import Any

from o2ocli.chainspec import ChainSpec
from o2ocli.core.payloads import Review, ReviewReply
from o2ocli.crypto.hashes import hash160

from .registry import payload_view, text


@payload_view(Review)
def review_json(spec: ChainSpec, payload: Review) -> dict[str, Any]:
    return {"type": "review", "merchant": spec.address(payload.merchant),
            "purchase": payload.purchase.hex(), "rating": payload.rating,
            "text": text(payload.text), "reviewer": spec.address(hash160(payload.pubkey))}


@payload_view(ReviewReply)
def reply_json(spec: ChainSpec, payload: ReviewReply) -> dict[str, Any]:
    return {"type": "review-reply", "review": payload.review.hex(),
            "text": text(payload.text), "merchant": spec.address(hash160(payload.pubkey))}

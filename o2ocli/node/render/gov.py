"""Renderers of the governance payloads (proposal, vote)."""

from __future__ import annotations

from typing import Any

from o2ocli.chainspec import ChainSpec
from o2ocli.consensus.gov import wire_outpoint
from o2ocli.core.payloads import WEIGHT_TOKENS, GovProposal, GovVote
from o2ocli.crypto.hashes import hash160

from .registry import payload_view, text


@payload_view(GovProposal)
def proposal_json(spec: ChainSpec, payload: GovProposal) -> dict[str, Any]:
    return {"type": "gov-proposal", "title": text(payload.title), "text": text(payload.text),
            "options": [text(o) for o in payload.options],
            "weight": "tokens" if payload.weight == WEIGHT_TOKENS else "customers",
            "asset": payload.asset.hex(),
            "merchant": None if payload.merchant is None else spec.address(payload.merchant),
            "voting_blocks": payload.voting_blocks, "deposit": spec.format(payload.deposit)}


@payload_view(GovVote)
def vote_json(spec: ChainSpec, payload: GovVote) -> dict[str, Any]:
    return {"type": "gov-vote", "proposal": payload.proposal.hex(), "option": payload.option,
            "outpoints": [str(wire_outpoint(op)) for op in payload.outpoints],
            "purchase": None if payload.purchase is None else payload.purchase.hex(),
            "voter": spec.address(hash160(payload.keys[0].pubkey)) if payload.keys else None,
            "keys": [spec.address(hash160(pair.pubkey)) for pair in payload.keys]}

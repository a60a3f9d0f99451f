"""Renderers of the token payloads (commit, issue, mint, burn, freeze, reward)."""

from __future__ import annotations

from typing import Any

from o2ocli.chainspec import ChainSpec
from o2ocli.core.payloads import (
    REWARD_REVIEWS,
    TokenBurn,
    TokenCommit,
    TokenFreeze,
    TokenIssue,
    TokenMint,
    TokenReward,
)

from .registry import payload_view, text


@payload_view(TokenCommit)
def commit_json(spec: ChainSpec, payload: TokenCommit) -> dict[str, Any]:
    return {"type": "token-commit", "commitment": payload.commitment.hex()}


def _issue_fee(spec: ChainSpec, payload: TokenIssue) -> int:
    return spec.token_issue_fee


@payload_view(TokenIssue, burned=_issue_fee)
def issue_json(spec: ChainSpec, payload: TokenIssue) -> dict[str, Any]:
    return {"type": "token-issue", "symbol": text(payload.symbol), "name": text(payload.name),
            "decimals": payload.decimals, "mintable": payload.mintable,
            "asset": payload.asset.hex(), "salt": payload.salt.hex()}


@payload_view(TokenMint)
def mint_json(spec: ChainSpec, payload: TokenMint) -> dict[str, Any]:
    return {"type": "token-mint", "asset": payload.asset.hex(), "units": payload.amount}


@payload_view(TokenBurn)
def burn_json(spec: ChainSpec, payload: TokenBurn) -> dict[str, Any]:
    return {"type": "token-burn", "asset": payload.asset.hex(), "units": payload.amount}


@payload_view(TokenFreeze)
def freeze_json(spec: ChainSpec, payload: TokenFreeze) -> dict[str, Any]:
    return {"type": "token-freeze", "asset": payload.asset.hex()}


@payload_view(TokenReward)
def reward_json(spec: ChainSpec, payload: TokenReward) -> dict[str, Any]:
    return {"type": "token-reward", "asset": payload.asset.hex(),
            "for": "reviews" if payload.kind == REWARD_REVIEWS else "purchases",
            "refs": [r.hex() for r in payload.refs]}

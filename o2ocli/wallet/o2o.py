"""Wallet side of the O2O features: issuing and managing loyalty tokens,
paying rewards, writing reviews and replies.

One name for the wallet's O2O entry points, which live in
:mod:`.payloadtx` (building, signing and sending a payload transaction; field
checks; token look-ups), :mod:`.tokens` (issue, mint, burn, freeze, rewards)
and :mod:`.reviews` (reviews and replies).
"""

from __future__ import annotations

from .errors import O2OError
from .payloadtx import asset_names, build, check_field, check_text, get_token, send
from .reviews import reply, write_review
from .tokens import (
    RewardLine,
    burn,
    check_symbol,
    commit_confirmations,
    finish_issue,
    freeze,
    mint,
    parse_rate,
    pending_issue,
    plan_rewards,
    reward,
    start_issue,
)

__all__ = [
    "O2OError",
    "check_symbol",
    "check_text",
    "check_field",
    "commit_confirmations",
    "get_token",
    "asset_names",
    "build",
    "send",
    "pending_issue",
    "start_issue",
    "finish_issue",
    "mint",
    "burn",
    "freeze",
    "RewardLine",
    "parse_rate",
    "plan_rewards",
    "reward",
    "write_review",
    "reply",
]

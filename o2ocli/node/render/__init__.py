"""JSON views of blocks, transactions, coins, payloads and locks (what RPC
returns).

The generic views live in :mod:`.core`; each payload family and lock type
renders itself, registered by tag in :mod:`.registry` from its own module
(one import line below per family).
"""

from __future__ import annotations

from . import base, consent, escrow, gov, profile, reviews, tokens, trace  # noqa: F401  (register)
from .core import (
    TokenLookup,
    amount_json,
    asset_json,
    block_json,
    coin_json,
    header_json,
    output_json,
    tx_json,
    vote_json,
)
from .registry import LOCK_VIEWS, PAYLOAD_VIEWS, lock_json, payload_json

__all__ = [
    "TokenLookup",
    "PAYLOAD_VIEWS",
    "LOCK_VIEWS",
    "asset_json",
    "amount_json",
    "lock_json",
    "output_json",
    "payload_json",
    "tx_json",
    "header_json",
    "block_json",
    "vote_json",
    "coin_json",
]

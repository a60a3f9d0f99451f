"""How the wallet commands name assets and counterparties: symbols for tokens,
``item:ID`` for traced items (never the 64-hex asset id when a name is known),
and the wallet's labels beside addresses."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["asset_labels", "ITEM_PREFIX"]

ITEM_PREFIX = "item:"
"""Traced items show as ``item:<item id>``."""


def asset_labels(client: Any, spec: Any, assets: Iterable[bytes]) -> dict[bytes, tuple[str, int]]:
    """Asset id → (display name, decimals): the native coin, the chain's tokens
    (and their authorities), and traced items as ``item:ID``.  The token list is
    fetched only when ``assets`` holds a non-native asset, and items only for
    assets that are not tokens."""
    wanted = {a for a in assets if a != bytes(32)}
    names: dict[bytes, tuple[str, int]] = {}
    if wanted:
        from o2ocli.wallet.payloadtx import asset_names

        names = asset_names(client)
        unknown = sorted(a for a in wanted if a not in names)
        if unknown:
            answers = client.batch([("gettrace", [a.hex()]) for a in unknown])
            for asset, answer in zip(unknown, answers, strict=True):
                if isinstance(answer, dict) and answer.get("item"):
                    names[asset] = (ITEM_PREFIX + answer["item"], 0)
    names[bytes(32)] = (spec.native_symbol, spec.native_decimals)
    return names

"""Address labels: a wallet's own names for addresses (``wallet label ADDR TEXT``).

Kept in the wallet database as one note, ``labels``: address → text.  Labels
are private to the wallet (never on chain) and shown beside the address in
history, tables and the confirmation summary.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_LABEL", "labels", "set_label", "describe"]

MAX_LABEL = 64
"""Longest label, in characters."""

_NOTE = "labels"


def labels(wallet: Any) -> dict[str, str]:
    """Address → label."""
    return dict(wallet.get_note(_NOTE) or {})


def set_label(wallet: Any, address: str, text: str) -> None:
    """Label ``address`` with ``text`` (empty text removes the label)."""
    text = " ".join(text.split())
    if len(text) > MAX_LABEL:
        raise ValueError(f"a label is at most {MAX_LABEL} characters")
    current = labels(wallet)
    if text:
        current[address] = text
    else:
        current.pop(address, None)
    wallet.put_note(_NOTE, current)


def describe(address: str, known: dict[str, str]) -> str:
    """``address (label)``, or the address alone."""
    label = known.get(address)
    return f"{address} ({label})" if label else address

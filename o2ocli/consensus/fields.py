"""Rules shared by the O2O families for the text and identifier fields of payloads.

Each family names its own alphabets and limits; the wallet and the node call
these rules (and the alphabets defined here) instead of copying them, so what
a wallet refuses is what consensus refuses.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from .errors import TxInvalid

__all__ = [
    "SYMBOL_CHARS",
    "ITEM_ID_CHARS",
    "SCOPE_CHARS",
    "TextField",
    "check_text",
    "check_name",
]

SYMBOL_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
"""The alphabet of a token symbol (upper case: symbols are case-insensitive)."""
ITEM_ID_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:/-")
"""The alphabet of an item id (traceability)."""
SCOPE_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789._-")
"""The alphabet of a consent scope or a trace data key."""

_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                           "\u2066\u2067\u2068\u2069")


@dataclass(frozen=True, slots=True)
class TextField:
    """A text field of a payload: its limits and the literal reasons its rule raises."""

    what: str
    """Its name, for people (``"token name"``)."""
    max_len: int
    """Most bytes (UTF-8)."""
    allow_empty: bool
    """True if it may be empty."""
    bad_length: str
    """Reason when it is too long (or empty when it may not be)."""
    bad_utf8: str
    """Reason when it is not UTF-8."""
    bad_control: str
    """Reason when it holds a control character."""


def check_text(text: bytes, spec: TextField, what: str | None = None) -> None:
    """Rule: a text field is valid UTF-8 of at most ``spec.max_len`` bytes with no
    control characters: Unicode category Cc (which includes newlines), line and
    paragraph separators, and bidirectional formatting marks (which could make
    a text display differently from what was signed).  ``what`` overrides the
    field's name in the message."""
    what = what or spec.what
    if len(text) > spec.max_len:
        raise TxInvalid(spec.bad_length, f"{what} is {len(text)} bytes, limit {spec.max_len}")
    if not text and not spec.allow_empty:
        raise TxInvalid(spec.bad_length, f"{what} is empty")
    try:
        decoded = text.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise TxInvalid(spec.bad_utf8, f"{what} is not valid UTF-8") from None
    for ch in decoded:
        if unicodedata.category(ch) in _FORBIDDEN_CATEGORIES or ch in _BIDI_CONTROLS:
            raise TxInvalid(spec.bad_control, f"{what} contains a control character")


def check_name(value: bytes, what: str, reason: str, allowed: frozenset[int], limit: int) -> None:
    """Rule: an identifier is 1..``limit`` characters from ``allowed``."""
    if not 1 <= len(value) <= limit or not set(value) <= allowed:
        raise TxInvalid(reason, f"{what} must be 1-{limit} characters of "
                                f"{bytes(sorted(allowed)).decode()}")

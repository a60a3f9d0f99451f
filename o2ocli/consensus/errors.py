"""Validation failures.

Every rejection carries a stable machine ``reason`` (``bad-txns-…``,
``bad-blk-…``, ``bad-cb-…`` in the style of Bitcoin Core) for scripts, RPC error
data and peer scoring, and a human ``message`` for people.
"""

from __future__ import annotations

__all__ = ["ValidationError", "TxInvalid", "BlockInvalid"]


class ValidationError(Exception):
    """A consensus rule was broken."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        """Stable machine-readable reason, e.g. ``bad-txns-duplicate-input``."""
        self.message = message
        """One readable sentence for people."""


class TxInvalid(ValidationError):
    """A transaction breaks a rule (on its own or against the UTXO view)."""


class BlockInvalid(ValidationError):
    """A block breaks a rule (structure, or one of its transactions)."""

    def __init__(self, reason: str, message: str, txid: bytes | None = None) -> None:
        super().__init__(reason, message)
        self.txid = txid
        """The offending transaction's txid, when one transaction broke the rule."""

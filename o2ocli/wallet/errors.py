"""Wallet errors cheap to import (the CLI maps them to one-line messages)."""

from __future__ import annotations

__all__ = ["O2OError"]


class O2OError(ValueError):
    """A token, review, escrow, trace or consent operation cannot be done (the
    message says why)."""

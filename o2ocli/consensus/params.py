"""Consensus parameters: the numbers a chain spec fixes for everyone."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ConsensusParams", "MAX_AMOUNT"]

MAX_AMOUNT = 2**63 - 1
"""Largest amount of one asset in one output, and in any per-asset sum (base units)."""


@dataclass(frozen=True, slots=True)
class ConsensusParams:
    """Chain-wide limits passed into every rule (never read from a global)."""

    chain_id: str
    """Network name committed to by every sighash and seal hash."""
    max_block_size: int = 4_000_000
    """Largest encoded block, in bytes."""
    max_tx_size: int = 100_000
    """Largest encoded transaction, in bytes."""
    max_block_txs: int = 20_000
    """Most transactions in one block (fee claim included)."""
    max_tx_inputs: int = 2_000
    """Most inputs in one transaction."""
    max_tx_outputs: int = 2_000
    """Most outputs in one transaction."""
    token_issue_fee: int = 0
    """Native coin (base units) a token issue must burn."""
    review_window: int = 100_000
    """A review may cite a purchase at most this many blocks older than itself."""
    min_purchase: int = 1
    """Least native coin (base units) a purchase must pay a merchant to back a review."""
    gov_deposit: int = 0
    """Least native coin (base units) a governance proposal must burn."""

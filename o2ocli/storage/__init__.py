"""LevelDB storage: the key schema, atomic write batches, the chainstate."""

from .chainstate import ChainState, ChainStateError, IndexEntry, UtxoStats
from .db import Database, DatabaseError, DatabaseLocked

__all__ = [
    "ChainState",
    "ChainStateError",
    "Database",
    "DatabaseError",
    "DatabaseLocked",
    "IndexEntry",
    "UtxoStats",
]

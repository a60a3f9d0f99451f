"""The block index: what the chainstate knows about each stored block.

Block index entry encoding (key ``i`` ‖ block hash, :mod:`.schema`)::

    header (full encoding) ‖ total_difficulty:varint ‖ status:u8

``status``: 0 = stored (structure valid, not yet connected), 1 = connected at
least once (fully valid), 2 = invalid (the block or an ancestor broke a rule).
"""

from __future__ import annotations

from dataclasses import dataclass

from o2ocli.core.block import Block, BlockHeader
from o2ocli.core.encoding import Reader, Writer

__all__ = [
    "ChainStateError",
    "SchemaMismatch",
    "IndexEntry",
    "TipChange",
    "NO_CHANGE",
    "STATUS_STORED",
    "STATUS_VALID",
    "STATUS_INVALID",
    "default_prefer",
]

STATUS_STORED, STATUS_VALID, STATUS_INVALID = 0, 1, 2


class ChainStateError(Exception):
    """The chainstate cannot do what was asked (unknown parent, wrong chain, …)."""


class SchemaMismatch(ChainStateError):
    """The database was written in another key layout (``m schema``): a
    ``node reindex`` rebuilds it in this one."""


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """What the node knows about one stored block."""

    header: BlockHeader
    """The block's header."""
    total_difficulty: int
    """Sum of difficulties from genesis to this block, inclusive."""
    status: int
    """One of STATUS_STORED, STATUS_VALID, STATUS_INVALID."""

    @property
    def hash(self) -> bytes:
        """The block hash."""
        return self.header.hash

    @property
    def height(self) -> int:
        """The block height."""
        return self.header.height

    def to_bytes(self) -> bytes:
        """Stored encoding."""
        w = Writer()
        self.header.encode(w)
        w.varint(self.total_difficulty)
        w.u8(self.status)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> IndexEntry:
        """Inverse of :meth:`to_bytes`."""
        r = Reader(data)
        header = BlockHeader.decode(r)
        td = r.varint("total difficulty")
        status = r.u8("status")
        r.finish("index entry")
        return cls(header, td, status)

    def with_status(self, status: int) -> IndexEntry:
        """A copy with another status."""
        return IndexEntry(self.header, self.total_difficulty, status)


@dataclass(frozen=True, slots=True)
class TipChange:
    """How the main chain moved: blocks disconnected (old tip first), then
    blocks connected (oldest first).  Falsy when the tip did not move."""

    disconnected: tuple[Block, ...] = ()
    connected: tuple[Block, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.disconnected or self.connected)


NO_CHANGE = TipChange()


def default_prefer(candidate: IndexEntry, current: IndexEntry) -> bool:
    """Fork choice used until the PoA rules supply theirs: strictly more total
    difficulty wins; on a tie the current tip stays."""
    return candidate.total_difficulty > current.total_difficulty

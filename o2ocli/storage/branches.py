"""How the chainstate picks its branch (mixed into
:class:`~o2ocli.storage.chainstate.ChainState`): the best stored candidate,
the finality guard, and marking a branch invalid."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from . import schema as k
from .blockindex import STATUS_INVALID, IndexEntry

__all__ = ["BranchChoice"]


class BranchChoice:
    """Branch selection over the block index (needs ``db``, ``_tip``,
    ``prefer``, ``finalized_height``/``finalized_hash``, ``get_index``,
    ``_require_index`` and ``is_main_chain`` from the chainstate)."""

    if TYPE_CHECKING:
        from .db import Database

        db: Database
        _tip: IndexEntry
        prefer: Callable[[IndexEntry, IndexEntry], bool]
        finalized_height: int
        finalized_hash: bytes | None

        def get_index(self, block_hash: bytes) -> IndexEntry | None: ...
        def _require_index(self, block_hash: bytes) -> IndexEntry: ...
        def is_main_chain(self, entry: IndexEntry) -> bool: ...

    def _best_candidate(self) -> IndexEntry:
        best_hash = self.db.get(k.META_BEST)
        best = self.get_index(best_hash) if best_hash else None
        if best is None or best.status == STATUS_INVALID:
            return self._tip
        return best

    def _keeps_finalized(self, fork: IndexEntry, best: IndexEntry,
                         branch: list[IndexEntry]) -> bool:
        """Rule: a branch is adopted only if it keeps the finalized block.

        It forks at or above the finalized height; or, when the tip lies below
        the finalized block (after a crash, the UTXO cache's last flush may be
        older than blocks finalized since), it extends the tip along the
        finalized block: through it, or towards it if it ends below it."""
        final = self.finalized_height
        if fork.height >= final:
            return True
        if fork.hash != self._tip.hash or self.finalized_hash is None:
            return False
        if best.height >= final:
            return any(e.hash == self.finalized_hash for e in branch)
        entry = self.get_index(self.finalized_hash)
        if entry is None:
            return False
        while entry.height > best.height:
            entry = self._require_index(entry.header.prev_hash)
        return entry.hash == best.hash

    def _mark_invalid(self, entries: list[IndexEntry]) -> None:
        """Mark ``entries`` invalid and point the best-block marker at the best
        stored block that is still valid (the old tip, usually)."""
        with self.db.write_batch() as batch:
            for entry in entries:
                batch.put(k.index_key(entry.hash), entry.with_status(STATUS_INVALID).to_bytes())
        best = self._best_valid_leaf()
        with self.db.write_batch() as batch:
            batch.put(k.META_BEST, best.hash)

    def _best_valid_leaf(self) -> IndexEntry:
        """The most preferred stored block with no invalid block at or below it
        (a scan of the block index: only run after something was found invalid)."""
        best = self._tip
        verdict: dict[bytes, bool] = {}

        def valid(entry: IndexEntry) -> bool:
            path = []
            ok = True
            while True:
                known = verdict.get(entry.hash)
                if known is not None:
                    ok = known
                    break
                if entry.status == STATUS_INVALID:
                    ok = False
                    break
                path.append(entry.hash)
                if self.is_main_chain(entry) or entry.height == 0:
                    break
                parent = self.get_index(entry.header.prev_hash)
                if parent is None:
                    ok = False
                    break
                entry = parent
            for h in path:
                verdict[h] = ok
            return ok

        for _, value in self.db.iterate(k.INDEX):
            entry = IndexEntry.from_bytes(value)
            if valid(entry) and self.prefer(entry, best):
                best = entry
        return best

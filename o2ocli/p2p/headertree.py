"""The shape of the validated headers still waiting for their blocks
(:class:`~o2ocli.p2p.sync.BlockSync`'s pending set): which of them form one
chain (:class:`Branches`), and the block locator asking peers for what follows.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

from o2ocli.core.block import BlockHeader

from .interface import ChainView

__all__ = ["Branches", "block_locator"]


class Branches:
    """Pending headers grouped into branches: a header that extends the last
    header of a branch joins it, any other starts a new one, remembering the
    branch it forked from and the height of its fork point."""

    def __init__(self) -> None:
        self.of: dict[bytes, int] = {}
        """pending hash → branch number."""
        self.forks: dict[int, tuple[int | None, int]] = {}
        """branch → (branch it forked from or None, height of its fork point)."""
        self.tip: dict[int, bytes] = {}
        """branch → its last header."""
        self._ids = itertools.count()

    def add(self, header: BlockHeader) -> None:
        """Place a newly pending ``header``."""
        parent = header.prev_hash
        branch = self.of.get(parent)
        if branch is None or self.tip.get(branch) != parent:
            fork_height = header.height - 1
            branch, forked_from = next(self._ids), branch
            self.forks[branch] = (forked_from, fork_height)
        self.of[header.hash] = branch
        self.tip[branch] = header.hash

    def descends(self, tip: bytes, block_hash: bytes, height_of: Callable[[bytes], int]) -> bool:
        """True if pending ``block_hash`` is ``tip`` or one of its ancestors
        (``height_of`` gives a pending header's height)."""
        b, b_tip = self.of.get(block_hash), self.of.get(tip)
        if b is None or b_tip is None:
            return False
        height = height_of(block_hash)
        top = height_of(tip)
        while b_tip != b:
            forked_from, fork_height = self.forks[b_tip]
            if forked_from is None or height > fork_height:
                return False
            b_tip, top = forked_from, fork_height
        return height <= top

    def forget(self, block_hash: bytes) -> None:
        """``block_hash`` is no longer pending."""
        branch = self.of.pop(block_hash, None)
        if branch is not None and self.tip.get(branch) == block_hash:
            # Nothing left on it; a header extending it starts a new root branch.
            del self.tip[branch]

    def clear(self) -> None:
        """Nothing is pending any more."""
        self.of.clear()
        self.forks.clear()
        self.tip.clear()


def block_locator(pending: Mapping[bytes, tuple[BlockHeader, Any, int]], chain: ChainView,
                  start: bytes | None = None) -> tuple[bytes, ...]:
    """Block locator: recent hashes densely, older ones exponentially sparser
    (from pending ``start`` down, if given, then the chain from its tip)."""
    hashes: list[bytes] = []
    if start is not None and start in pending:
        header = pending[start][0]
        while header.hash in pending and len(hashes) < 10:
            hashes.append(header.hash)
            parent = pending.get(header.prev_hash)
            if parent is None:
                break
            header = parent[0]
    state = chain.state
    height = chain.height
    step = 1
    while height > 0 and len(hashes) < 63:
        block_hash = state.get_block_hash(height)
        if block_hash is not None:
            hashes.append(block_hash)
        if len(hashes) >= 10:
            step *= 2
        height -= step
    hashes.append(chain.genesis.hash)
    return tuple(dict.fromkeys(hashes))

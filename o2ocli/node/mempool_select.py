"""The mempool's choices by fee rate over its transaction graph: which txs the
size cap evicts for a newcomer, and which txs fill the next block.

Both work on the pool's own structures (:class:`~o2ocli.node.mempool.Mempool`
passes them in): ``entries`` (txid → entry, pool order), ``order`` (txid →
insertion sequence number), the ``parents``/``children`` links between mempool
txs, and the lazily pruned eviction heap of ``(fee_rate, -sequence, txid)``.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

from .mempool_types import MempoolEntry

__all__ = ["plan_eviction", "select_for_block"]


class _Full(Exception):
    """Internal: the newcomer would be evicted by the size cap."""


def plan_eviction(
    heap: list[tuple[int, int, bytes]],
    order: dict[bytes, int],
    entries: dict[bytes, MempoolEntry],
    descendants: Callable[[bytes], set[bytes]],
    new_key: tuple[int, int],
    parents: set[bytes],
    need: int,
) -> set[bytes] | None:
    """The txids to evict so that ``need`` more bytes fit: the lowest fee rate
    first (newest first on a tie), each with its descendants.

    ``new_key`` is the newcomer's ``(fee_rate, -sequence)`` and ``parents`` its
    mempool parents.  Returns None if the newcomer would be among the evicted
    (its key is lower than the next candidate's, or a candidate's group holds
    one of its parents); the heap is then as it was.  Otherwise the chosen
    items are popped from the heap (stale items are dropped either way).
    """
    popped: list[tuple[int, int, bytes]] = []
    planned: set[bytes] = set()
    freed = 0
    try:
        while freed < need:
            while heap and order.get(heap[0][2]) != -heap[0][1]:
                heapq.heappop(heap)  # stale
            if not heap or new_key < heap[0][:2]:
                raise _Full
            item = heapq.heappop(heap)
            popped.append(item)
            if item[2] in planned:
                continue
            group = descendants(item[2]) - planned
            group.add(item[2])
            if not group.isdisjoint(parents):
                raise _Full
            planned |= group
            freed += sum(entries[t].size for t in group)
    except _Full:
        for item in popped:
            heapq.heappush(heap, item)
        return None
    return planned


def select_for_block(
    entries: dict[bytes, MempoolEntry],
    order: dict[bytes, int],
    parents: dict[bytes, set[bytes]],
    children: dict[bytes, set[bytes]],
    max_bytes: int,
    max_txs: int,
) -> list[MempoolEntry]:
    """Txs for the next block, in a valid block order (see
    :meth:`~o2ocli.node.mempool.Mempool.block_template`)."""
    waiting = {txid: len(ps) for txid, ps in parents.items() if ps}
    ready = [(-e.fee_rate, order[t], t) for t, e in entries.items() if t not in waiting]
    heapq.heapify(ready)
    chosen: list[MempoolEntry] = []
    room = max_bytes
    while ready and len(chosen) < max_txs:
        _, _, txid = heapq.heappop(ready)
        entry = entries[txid]
        if entry.size > room:
            continue
        chosen.append(entry)
        room -= entry.size
        for child in children.get(txid, ()):
            waiting[child] -= 1
            if not waiting[child]:
                heapq.heappush(ready, (-entries[child].fee_rate, order[child], child))
    return chosen

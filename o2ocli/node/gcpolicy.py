"""The node's garbage-collector policy.

Connecting a block of 2,000 payments allocates a few hundred thousand
short-lived objects (coins, outpoints, keys of cache entries), almost none of
them in reference cycles: reference counting frees them.  With CPython's
default thresholds (700, 10, 10) the cyclic collector still runs a young
collection every 700 allocations and, every so often, a full one over every
object the process holds (the mempool, the block index, decoded blocks
waiting to connect), which cost 25-30 % of block connect time in
``benchmarks/connect.py``.

:func:`tune_gc` moves what start-up created into the permanent generation
(:func:`gc.freeze`: never scanned again) and raises the young threshold to
:data:`GEN0_THRESHOLD` allocations, the approach large Python services take.
Cyclic garbage still gets collected, only in larger batches.

The young threshold counts tracked objects allocated and not yet freed since
the last collection.  A block that arrives over P2P (or is read back by a
reindex) is decoded into about 15 such objects a payment, and connecting it
keeps the coins it creates alive for a while (a ``Coin``, ``TxOut`` and lock
each): about 60,000 for a block of 2,000 payments.  At a threshold of 50,000
nearly every block of that size set off a young collection that scanned the
block it was connecting and found nothing (``benchmarks/scale.py``: 316
collections in 333 blocks, 5.2 s of 75 s, none collecting an object).  At
:data:`GEN0_THRESHOLD` a collection comes only when objects really pile up
(1 in the same run); the price is that cyclic garbage waits for at most that
many allocations (tens of MB at worst).
"""

from __future__ import annotations

import gc

__all__ = ["GEN0_THRESHOLD", "tune_gc"]

GEN0_THRESHOLD = 200_000
"""Net allocations between young collections (CPython's default is 700): above
what connecting one block of a few thousand payments holds alive at once."""
GEN1_THRESHOLD = 20
GEN2_THRESHOLD = 20


def tune_gc() -> None:
    """Freeze the objects alive now and raise the collector's thresholds
    (call once, when start-up is done)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)

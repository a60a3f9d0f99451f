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
"""

from __future__ import annotations

import gc

__all__ = ["GEN0_THRESHOLD", "tune_gc"]

GEN0_THRESHOLD = 50_000
"""Net allocations between young collections (CPython's default is 700)."""
GEN1_THRESHOLD = 20
GEN2_THRESHOLD = 20


def tune_gc() -> None:
    """Freeze the objects alive now and raise the collector's thresholds
    (call once, when start-up is done)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)

"""``estimatefee``: a fee rate per priority, from the mempool queue and the
fullness of recent blocks.

What an estimate means here (see docs/payments.rst, "Fees"): validators seal a
block every ``consensus.period`` seconds and fill it highest fee rate first, up
to ``limits.max_block_size``.  A transaction is in the next block when the
mempool ahead of it (paying a higher rate) is smaller than one block.  So:

* a priority is a target number of blocks (:data:`TARGET_BLOCKS`): ``high`` =
  the next block, ``normal`` = within 3, ``low`` = within 6;
* the rate for a target of *t* blocks is the least rate that puts a new
  transaction inside the first *t* blocks' worth of the queue, never below the
  relay minimum.  While the mempool is smaller than that (the usual case on a
  chain with a 1-second period) every priority is the relay minimum: paying
  more buys nothing;
* when recent blocks were nearly full (:data:`FULL`), new transactions keep
  arriving as fast as blocks take them, so ``normal`` and ``high`` pay at least
  the median and the 90th percentile of the mempool's rates.

It is not a promise: a validator may be offline (its turn is then skipped after
the PoA timeout), and a burst of better-paying transactions can arrive after the
estimate.  Rates are base units per byte (three decimals at most: the node
counts fees per 1000 bytes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .context import NodeContext
from .params import int_arg
from .table import MethodTable

__all__ = ["TABLE", "TARGET_BLOCKS", "FULL", "estimate_rates", "estimatefee", "rate_text"]

TABLE = MethodTable()

TARGET_BLOCKS = {"low": 6, "normal": 3, "high": 1}
"""Priority → the number of blocks it aims to be confirmed within."""

FULL = 0.9
"""Recent blocks this full (share of ``max_block_size``) mean demand meets capacity."""

RECENT_BLOCKS = 20
"""How many recent blocks the fullness is measured over (by default)."""


def _percentile(sorted_rates: Sequence[int], share: float) -> int:
    if not sorted_rates:
        return 0
    return sorted_rates[min(len(sorted_rates) - 1, int(share * len(sorted_rates)))]


def estimate_rates(
    queue: Sequence[tuple[int, int]],
    fullness: float,
    block_capacity: int,
    min_rate: int,
) -> dict[str, int]:
    """Priority → fee rate (base units per 1000 bytes).

    ``queue`` is the mempool as (fee rate per 1000 bytes, size) pairs;
    ``fullness`` the mean share of ``block_capacity`` recent blocks used."""
    ordered = sorted(queue, key=lambda e: -e[0])
    rates = sorted(r for r, _ in ordered)
    result = {}
    for priority, blocks in TARGET_BLOCKS.items():
        room = blocks * block_capacity
        used = 0
        rate = min_rate
        for entry_rate, size in ordered:
            used += size
            if used > room:  # this entry misses the target: outbid it by one unit
                rate = max(rate, entry_rate + 1)
                break
        if fullness >= FULL and priority != "low":
            share = 0.9 if priority == "high" else 0.5
            rate = max(rate, _percentile(rates, share))
        result[priority] = rate
    return result


def rate_text(rate_per_kb: int) -> str:
    """A rate per 1000 bytes as base units per byte (``"1"``, ``"1.5"``)."""
    whole, frac = divmod(rate_per_kb, 1000)
    return f"{whole}.{frac:03d}".rstrip("0").rstrip(".") if frac else str(whole)


@TABLE.method("estimatefee")
def estimatefee(node: NodeContext, blocks: Any = RECENT_BLOCKS) -> dict[str, Any]:
    """Fee rates (base units per byte) for the priorities low, normal and high,
    from the mempool queue and the fullness of the last ``blocks`` blocks."""
    count = int_arg(blocks, "blocks", 1, 1000)
    spec = node.spec
    state = node.chain.state
    sizes = []
    for entry in node.chain.iter_main_chain_down():
        if len(sizes) >= count or entry.height == 0:
            break
        block = state.get_block(entry.hash)
        if block is not None:
            sizes.append(block.size)
    fullness = sum(sizes) / (len(sizes) * spec.max_block_size) if sizes else 0.0
    entries = node.mempool.entries()
    queue = [(e.fee_rate, e.size) for e in entries]
    rates = estimate_rates(queue, fullness, spec.max_block_size, spec.min_relay_fee)
    return {
        "unit": "base units per byte",
        "min_fee_rate": rate_text(spec.min_relay_fee),
        "period": spec.period,
        "blocks_considered": len(sizes),
        "block_fullness": round(fullness, 4),
        "mempool_txs": len(entries),
        "mempool_bytes": sum(size for _, size in queue),
        "max_block_size": spec.max_block_size,
        "estimates": {
            priority: {
                "fee_rate": rate_text(rate),
                "target_blocks": TARGET_BLOCKS[priority],
                "target_seconds": TARGET_BLOCKS[priority] * max(spec.period, 1),
            }
            for priority, rate in rates.items()
        },
    }

"""Initial sync as an operator reads it: headers vs blocks, verification
progress, and an ETA from the recent connect rate (``node status``, the log)."""

from __future__ import annotations

from collections import deque
from typing import Any

__all__ = ["SyncTracker", "format_eta"]

WINDOW_SECONDS = 60.0
"""How far back the connect rate is measured."""


class SyncTracker:
    """Samples of (time, block height); the rate over the last minute gives the ETA."""

    def __init__(self, window: float = WINDOW_SECONDS) -> None:
        self.window = window
        self.samples: deque[tuple[float, int]] = deque()

    def sample(self, now: float, height: int) -> None:
        """Record the block height at ``now`` (monotonic seconds)."""
        samples = self.samples
        if samples and height < samples[-1][1]:
            samples.clear()  # a reorg or reindex: the old rate means nothing
        samples.append((now, height))
        while now - samples[0][0] > self.window:  # the newest sample always stays
            samples.popleft()

    def rate(self) -> float | None:
        """Blocks per second over the window (None before two samples a second apart)."""
        if len(self.samples) < 2:
            return None
        (t0, h0), (t1, h1) = self.samples[0], self.samples[-1]
        if t1 - t0 < 1.0:
            return None
        return (h1 - h0) / (t1 - t0)

    def report(self, height: int, headers: int, syncing: bool) -> dict[str, Any]:
        """``header_height``, ``block_height``, ``verification_progress`` (0..1) and
        ``sync_eta_seconds`` (None when not syncing or no rate is known yet)."""
        headers = max(headers, height)
        progress = height / headers if headers else 1.0
        eta: float | None = None
        rate = self.rate()
        if syncing and rate is not None and rate > 0:
            eta = round((headers - height) / rate, 1)
        return {
            "header_height": headers,
            "block_height": height,
            "verification_progress": round(progress, 6),
            "sync_eta_seconds": eta,
        }


def format_eta(seconds: float | None) -> str:
    """``1h02m``, ``3m05s``, ``42s``; ``unknown`` when None."""
    if seconds is None:
        return "unknown"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"

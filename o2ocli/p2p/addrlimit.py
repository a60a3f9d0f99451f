"""Per-peer rate limit on ``addr`` processing (a token bucket, as in Bitcoin Core)."""

from __future__ import annotations

__all__ = ["ADDR_BURST", "ADDR_RATE", "AddrRateLimiter"]

ADDR_RATE = 0.1
"""``addr`` entries per second a peer may feed us (Bitcoin Core's rate)."""
ADDR_BURST = 1000.0
"""The token bucket's capacity (one full ``addr`` message)."""


class AddrRateLimiter:
    """A token bucket: each processed ``addr`` entry costs one token; tokens
    come back at ``rate`` per second up to ``burst``.  Entries beyond the
    tokens are dropped silently (and counted)."""

    __slots__ = ("tokens", "rate", "burst", "updated", "processed", "dropped")

    def __init__(self, now: float, *, tokens: float = 1.0, rate: float = ADDR_RATE,
                 burst: float = ADDR_BURST) -> None:
        self.tokens = tokens
        self.rate = rate
        self.burst = burst
        self.updated = now
        self.processed = 0
        self.dropped = 0

    def grant(self, tokens: float) -> None:
        """Allow ``tokens`` more (we asked the peer for addresses)."""
        self.tokens = min(self.burst, self.tokens + tokens)

    def take(self, count: int, now: float) -> int:
        """How many of ``count`` entries may be processed now."""
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
        allowed = min(count, int(self.tokens))
        self.tokens -= allowed
        self.processed += allowed
        self.dropped += count - allowed
        return allowed

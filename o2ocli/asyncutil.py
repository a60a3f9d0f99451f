"""Small asyncio helpers shared by the node runtime and the P2P layer."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks``, wait for each to finish (ignoring how), and empty the list."""
    for task in tasks:
        task.cancel()
    for task in list(tasks):
        try:
            await task
        except (asyncio.CancelledError, Exception):  # noqa: PERF203 - shutting down anyway
            pass
    tasks.clear()

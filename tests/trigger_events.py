"""A trigger run in the background, its events awaited one by one.

Tests wait for what they expect (with a generous limit) instead of a fixed window, so a
loaded CI worker makes them slower, not failed; a fixed quiet time after the last expected
event shows that nothing more fires.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

LIMIT_SECONDS = 60.0


class FiredEvents:
    def __init__(self, trigger: Any) -> None:
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task = asyncio.create_task(self._collect(trigger.run()))

    async def _collect(self, run: AsyncIterator[Any]) -> None:
        async for event in run:
            self.events.put_nowait(event.payload)

    async def until(self, ready: Any, limit: float = LIMIT_SECONDS) -> None:
        """Until `ready()` holds (say, a listing trigger stored its baseline)."""
        async with asyncio.timeout(limit):
            while not ready():
                if self.task.done():
                    self.task.result()  # the trigger's own error, not a timeout
                await asyncio.sleep(0.02)

    async def baseline(self, state: Path, limit: float = LIMIT_SECONDS) -> None:
        """Until a listing trigger has stored its first look, the one later looks compare to."""
        await self.until(state.exists, limit)

    async def next(self, limit: float = LIMIT_SECONDS) -> dict[str, Any]:
        return await asyncio.wait_for(self.events.get(), limit)

    async def stop_after(self, quiet: float) -> list[dict[str, Any]]:
        """The events that still arrive within `quiet` seconds; then the trigger stops."""
        await asyncio.sleep(quiet)
        self.task.cancel()
        return [self.events.get_nowait() for _ in range(self.events.qsize())]


async def fired_within(trigger: Any, quiet: float) -> list[dict[str, Any]]:
    """Every event `trigger` fires within `quiet` seconds (for checks that expect none)."""
    return await FiredEvents(trigger).stop_after(quiet)

"""A clock the test moves by hand, and a bounded wait for something the event loop will do."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

START = 1_700_000_000.0


class ManualClock:
    def __init__(self, now: float = START) -> None:
        self._now = now
        self._sleepers: list[tuple[float | None, asyncio.Event]] = []

    def now(self) -> float:
        return self._now

    async def wait(self, wakeup: asyncio.Event, seconds: float | None) -> None:
        if seconds is not None and seconds <= 0:
            await asyncio.sleep(0)
            return
        entry = (None if seconds is None else self._now + seconds, wakeup)
        self._sleepers.append(entry)
        try:
            await wakeup.wait()
        finally:
            self._sleepers.remove(entry)

    def advance(self, seconds: float) -> None:
        self._now += seconds
        for until, wakeup in list(self._sleepers):
            if until is not None and until <= self._now:
                wakeup.set()


async def until(condition: Callable[[], bool], what: str, limit: float = 10.0) -> None:
    """Lets the loop run until ``condition`` holds; the limit only turns a hang into a failure."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + limit
    while not condition():
        if loop.time() > give_up:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.005)


async def settle() -> None:
    """A few loop turns, for asserting that something did *not* happen."""
    for _ in range(20):
        await asyncio.sleep(0)

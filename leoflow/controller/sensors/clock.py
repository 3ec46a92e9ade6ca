"""Time as the sensor engine sees it: wall-clock now, and one way to sleep until woken.

Sensor deadlines are persisted as wall-clock epoch seconds (loop time does not survive a restart),
so the engine reads ``time.time()``. It sleeps through :meth:`Clock.wait`, which returns after
``seconds`` or as soon as ``wakeup`` is set (an earlier timer was scheduled); tests drive a
manual clock through the same two calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...

    async def wait(self, wakeup: asyncio.Event, seconds: float | None) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def wait(self, wakeup: asyncio.Event, seconds: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await wakeup.wait()

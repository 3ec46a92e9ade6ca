"""Client-side pacing of API calls: one token bucket per verb, and pauses the server asks for.

Separate buckets keep a burst of pod creates from starving deletes and status patches (reference/
failures.md, entry 23). The bucket hands out reservations (tokens may go negative), so concurrent
callers queue in arrival order without polling. ``Retry-After`` from a 429/503 pauses the whole
verb, not just the request that got it: the server is saying it is overloaded, and every other
request of that verb would get the same answer (Airflow's ``create_pods_after``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True)
class Rate:
    qps: float
    burst: int

    def __post_init__(self) -> None:
        if self.qps <= 0 or self.burst < 1:
            raise ValueError(
                f"rate limit needs qps > 0 and burst >= 1, got qps={self.qps} burst={self.burst}"
            )


class TokenBucket:
    def __init__(self, rate: Rate, clock: Clock) -> None:
        self._rate = rate
        self._clock = clock
        self._tokens = float(rate.burst)
        self._updated = clock.now()
        self._paused_until = 0.0

    def reserve(self) -> float:
        """Takes a token now and returns how long the caller must wait before using it."""
        now = self._clock.now()
        self._tokens = min(self._rate.burst, self._tokens + (now - self._updated) * self._rate.qps)
        self._updated = now
        self._tokens -= 1
        wait = -self._tokens / self._rate.qps if self._tokens < 0 else 0.0
        return max(wait, self._paused_until - now)

    async def acquire(self) -> float:
        wait = self.reserve()
        if wait > 0:
            await self._clock.sleep(wait)
        return wait

    def pause_for(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self._clock.now() + seconds)

"""The reconcile queue: which DAGRuns need a look, each exactly once at a time.

Events (a pod watch event, an agent's ``Finished``, a timer) only *add a key*; workers take keys
and run the same level-triggered reconcile whatever the cause. As in client-go's workqueue:

- a key added many times before a worker takes it is reconciled once (dedup);
- a key is never reconciled by two workers at once; added while in flight, it is queued again
  when the worker calls :meth:`WorkQueue.done`, so no event is lost;
- delayed adds (retry backoff, grace deadlines, cron) share one timer task and one heap, not one
  sleeping task per key, and an earlier deadline for the same key wins.

Keys leave the queue in FIFO order of their (first) arrival, so a burst on one run cannot starve
the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections import OrderedDict
from collections.abc import Callable


class WorkQueue:
    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock or (lambda: asyncio.get_running_loop().time())
        self._ready: OrderedDict[str, None] = OrderedDict()
        self._processing: set[str] = set()
        self._dirty: set[str] = set()
        self._delayed: list[tuple[float, int, str]] = []
        self._due: dict[str, float] = {}
        self._sequence = itertools.count()
        self._wakeup = asyncio.Event()
        self._timer_changed = asyncio.Event()
        self._timer_task: asyncio.Task[None] | None = None
        self._closed = False

    def __len__(self) -> int:
        return len(self._ready)

    def add(self, key: str) -> None:
        """Queues ``key`` now (or marks it to be queued again when its current reconcile ends)."""
        if self._closed:
            return
        self._due.pop(key, None)
        if key in self._processing:
            self._dirty.add(key)
            return
        if key not in self._ready:
            self._ready[key] = None
            self._wakeup.set()

    def add_at(self, key: str, when: float) -> None:
        """Queues ``key`` at loop time ``when``; an earlier pending deadline for it is kept."""
        if self._closed:
            return
        if when <= self._clock():
            self.add(key)
            return
        current = self._due.get(key)
        if current is not None and current <= when:
            return
        self._due[key] = when
        heapq.heappush(self._delayed, (when, next(self._sequence), key))
        self._timer_changed.set()
        if self._timer_task is None:
            self._timer_task = asyncio.get_running_loop().create_task(self._run_timer())

    def add_after(self, key: str, delay: float) -> None:
        self.add_at(key, self._clock() + delay)

    async def get(self) -> str | None:
        """The next key to reconcile, or None once the queue is closed and drained."""
        while not self._ready:
            if self._closed:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()
        key, _ = self._ready.popitem(last=False)
        self._processing.add(key)
        return key

    def done(self, key: str) -> None:
        """Marks ``key``'s reconcile finished; requeues it if it was added meanwhile."""
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def pending_at(self, key: str) -> float | None:
        """The loop time a delayed add for ``key`` fires, if any (for tests and metrics)."""
        return self._due.get(key)

    def close(self) -> None:
        self._closed = True
        self._wakeup.set()
        if self._timer_task is not None:
            self._timer_task.cancel()

    async def _run_timer(self) -> None:
        while not self._closed:
            self._fire_due()
            self._timer_changed.clear()
            if not self._delayed:
                await self._timer_changed.wait()
                continue
            timeout = max(0.0, self._delayed[0][0] - self._clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._timer_changed.wait(), timeout)

    def _fire_due(self) -> None:
        now = self._clock()
        while self._delayed and self._delayed[0][0] <= now:
            when, _, key = heapq.heappop(self._delayed)
            # Stale heap entries (superseded by an earlier deadline or an immediate add) are skipped.
            if self._due.get(key) == when:
                del self._due[key]
                self.add(key)

"""One timer structure for every waiting sensor: a binary heap with lazy cancellation.

A sleeping asyncio task per sensor costs a few kilobytes and a wake-up each; 100,000 of them
drown the loop. Here a timer is a heap entry ``(when, sequence, item)`` and the item carries the
sequence number of its one live entry (``timer_token``). Cancelling or rescheduling only changes
that token; the stale entry is skipped when it reaches the top, and the heap is rebuilt when stale
entries outnumber live ones, so sensors that finish early (watch-based ones wait on their timeout
for hours) cannot grow it without bound. Equal deadlines fire in the order they were scheduled.

Pure: the owner supplies ``now``; nothing here sleeps.
"""

from __future__ import annotations

import heapq
from typing import Generic, Protocol, TypeVar


class Timed(Protocol):
    timer_token: int
    """Sequence number of the item's live heap entry; 0 when it has no timer."""


T = TypeVar("T", bound=Timed)


class TimerHeap(Generic[T]):
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, T]] = []
        self._sequence = 0
        self._live = 0

    def __len__(self) -> int:
        """Live timers (stale entries not counted)."""
        return self._live

    @property
    def entries(self) -> int:
        """Heap entries including stale ones (what the memory holds)."""
        return len(self._heap)

    def schedule(self, item: T, when: float) -> None:
        """Sets ``item``'s one timer to ``when``, replacing any earlier one."""
        if item.timer_token:
            self._live -= 1
        self._sequence += 1
        item.timer_token = self._sequence
        heapq.heappush(self._heap, (when, self._sequence, item))
        self._live += 1
        self._compact_if_mostly_stale()

    def cancel(self, item: T) -> None:
        if item.timer_token:
            item.timer_token = 0
            self._live -= 1
            self._compact_if_mostly_stale()

    def next_due(self) -> float | None:
        """The earliest live deadline, or None when nothing is scheduled."""
        heap = self._heap
        while heap and heap[0][2].timer_token != heap[0][1]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float, limit: int) -> list[tuple[T, float]]:
        """Up to ``limit`` items whose deadline is at or before ``now``, earliest first, with it."""
        heap = self._heap
        due: list[tuple[T, float]] = []
        while heap and len(due) < limit and heap[0][0] <= now:
            when, token, item = heapq.heappop(heap)
            if item.timer_token == token:
                item.timer_token = 0
                self._live -= 1
                due.append((item, when))
        return due

    def _compact_if_mostly_stale(self) -> None:
        if len(self._heap) > 1024 and len(self._heap) > 2 * self._live:
            self._heap = [entry for entry in self._heap if entry[2].timer_token == entry[1]]
            heapq.heapify(self._heap)

from __future__ import annotations

import random
from dataclasses import dataclass

from leoflow.controller.sensors.timers import TimerHeap


@dataclass(eq=False, slots=True)
class Alarm:
    name: str
    timer_token: int = 0


def names(due: list[tuple[Alarm, float]]) -> list[str]:
    return [alarm.name for alarm, _ in due]


def test_timers_fire_in_deadline_order_and_only_when_due() -> None:
    heap: TimerHeap[Alarm] = TimerHeap()
    for name, when in [("c", 30.0), ("a", 10.0), ("b", 20.0)]:
        heap.schedule(Alarm(name), when)
    assert heap.pop_due(5.0, 100) == []
    assert names(heap.pop_due(20.0, 100)) == ["a", "b"]
    assert heap.next_due() == 30.0
    assert names(heap.pop_due(99.0, 100)) == ["c"]
    assert heap.next_due() is None
    assert len(heap) == 0


def test_equal_deadlines_fire_in_scheduling_order() -> None:
    heap: TimerHeap[Alarm] = TimerHeap()
    for name in "abcdef":
        heap.schedule(Alarm(name), 1.0)
    assert names(heap.pop_due(1.0, 100)) == list("abcdef")


def test_due_time_is_reported_for_lateness() -> None:
    heap: TimerHeap[Alarm] = TimerHeap()
    heap.schedule(Alarm("a"), 10.0)
    [(_, when)] = heap.pop_due(12.5, 10)
    assert 12.5 - when == 2.5


def test_cancelled_timer_never_fires() -> None:
    heap: TimerHeap[Alarm] = TimerHeap()
    keep, drop = Alarm("keep"), Alarm("drop")
    heap.schedule(drop, 1.0)
    heap.schedule(keep, 2.0)
    heap.cancel(drop)
    heap.cancel(drop)
    assert len(heap) == 1
    assert heap.next_due() == 2.0
    assert names(heap.pop_due(10.0, 10)) == ["keep"]


def test_rescheduling_replaces_the_earlier_timer() -> None:
    heap: TimerHeap[Alarm] = TimerHeap()
    alarm = Alarm("a")
    heap.schedule(alarm, 1.0)
    heap.schedule(alarm, 5.0)
    assert len(heap) == 1
    assert heap.pop_due(4.0, 10) == []
    assert heap.pop_due(5.0, 10) == [(alarm, 5.0)]


def test_pop_limit_leaves_the_rest_for_the_next_turn() -> None:
    heap: TimerHeap[Alarm] = TimerHeap()
    for i in range(10):
        heap.schedule(Alarm(str(i)), float(i))
    assert names(heap.pop_due(100.0, 4)) == ["0", "1", "2", "3"]
    assert len(heap.pop_due(100.0, 100)) == 6


def test_many_timers_come_out_sorted_and_cancellations_are_compacted_away() -> None:
    rng = random.Random(7)
    heap: TimerHeap[Alarm] = TimerHeap()
    alarms = [Alarm(str(i)) for i in range(20_000)]
    deadlines = {alarm.name: rng.uniform(0, 1000) for alarm in alarms}
    for alarm in alarms:
        heap.schedule(alarm, deadlines[alarm.name])
    cancelled = set(rng.sample(range(20_000), 15_000))
    for i in cancelled:
        heap.cancel(alarms[i])
    assert len(heap) == 5_000
    assert heap.entries < 20_000, "stale entries were compacted"
    due = heap.pop_due(1000.0, 100_000)
    assert [when for _, when in due] == sorted(deadlines[str(i)] for i in range(20_000) if i not in cancelled)
    assert all(int(alarm.name) not in cancelled for alarm, _ in due)

"""The reconcile queue dedups keys, never runs one key twice at once, and loses no event."""

from __future__ import annotations

import asyncio

from leoflow.controller.workqueue import WorkQueue


async def test_key_added_many_times_is_reconciled_once() -> None:
    queue = WorkQueue()
    for _ in range(5):
        queue.add("ns/run-a")
    queue.add("ns/run-b")
    assert [await queue.get(), await queue.get()] == ["ns/run-a", "ns/run-b"]
    assert len(queue) == 0


async def test_key_added_while_in_flight_is_requeued_after_done_not_handed_out_twice() -> None:
    queue = WorkQueue()
    queue.add("ns/run")
    key = await queue.get()
    queue.add("ns/run")
    assert len(queue) == 0, "a second worker must not get the key while it is being reconciled"
    assert key is not None
    queue.done(key)
    assert await queue.get() == "ns/run", "the event that arrived mid-reconcile is not lost"


async def test_delayed_add_fires_once_due_and_earlier_deadline_wins() -> None:
    queue = WorkQueue()
    loop = asyncio.get_running_loop()
    queue.add_after("ns/run", 30)
    queue.add_after("ns/run", 0.05)
    queue.add_after("ns/run", 60)
    due = queue.pending_at("ns/run")
    assert due is not None and due - loop.time() < 1
    assert await asyncio.wait_for(queue.get(), 2) == "ns/run"
    assert queue.pending_at("ns/run") is None
    queue.close()


async def test_immediate_add_supersedes_a_pending_delayed_add() -> None:
    queue = WorkQueue()
    queue.add_after("ns/run", 0.05)
    queue.add("ns/run")
    assert await queue.get() == "ns/run"
    queue.done("ns/run")
    await asyncio.sleep(0.15)
    assert len(queue) == 0, "the superseded timer must not queue the key a second time"
    queue.close()


async def test_many_delayed_keys_fire_in_deadline_order() -> None:
    queue = WorkQueue()
    for i in reversed(range(20)):
        queue.add_after(f"ns/run-{i}", 0.01 * (i + 1))
    got = [await asyncio.wait_for(queue.get(), 2) for _ in range(20)]
    assert got == [f"ns/run-{i}" for i in range(20)]
    queue.close()


async def test_close_releases_waiting_workers() -> None:
    queue = WorkQueue()
    worker = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.close()
    assert await asyncio.wait_for(worker, 1) is None

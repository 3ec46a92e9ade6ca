"""StartGates: a parked WaitStart returns the moment its gate opens, or when told to look again."""

from __future__ import annotations

import asyncio

from leoflow.controller.startgates import REMEMBER_SECONDS, StartGates


async def test_waiting_agent_is_let_go_when_its_gate_opens() -> None:
    gates = StartGates()
    waiting = asyncio.ensure_future(gates.wait("ns", "pod-a", recheck=30))
    await asyncio.sleep(0)
    assert gates.waiting() == 1
    gates.open("ns", "pod-b")
    await asyncio.sleep(0)
    assert not waiting.done(), "another pod's gate"
    assert gates.open("ns", "pod-a") is True
    assert await asyncio.wait_for(waiting, 1) is True
    assert gates.open("ns", "pod-a") is False, "opened already: the planner's release after the sink's"
    assert gates.waiting() == 0


async def test_agent_arriving_after_its_gate_opened_passes_at_once() -> None:
    gates = StartGates()
    gates.open("ns", "pod-a")
    assert await asyncio.wait_for(gates.wait("ns", "pod-a", recheck=30), 1) is True


async def test_wait_returns_false_after_recheck_for_the_caller_to_read_the_status() -> None:
    gates = StartGates()
    assert await gates.wait("ns", "pod-a", recheck=0.01) is False
    assert gates.waiting() == 0


async def test_opened_gates_are_forgotten_after_a_while() -> None:
    now = [0.0]
    gates = StartGates(clock=lambda: now[0])
    gates.open("ns", "old")
    now[0] = REMEMBER_SECONDS + 1
    gates.open("ns", "new")
    assert await gates.wait("ns", "old", recheck=0.01) is False
    assert await gates.wait("ns", "new", recheck=0.01) is True

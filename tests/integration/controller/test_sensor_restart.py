"""Sensors survive a controller crash: the run status records their progress at a bounded rate,
and a restarted controller resumes each one where it was, not from scratch."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from leoflow.controller.sensors import SensorState
from leoflow.spec.compiler import compile_text
from tests.integration.controller.conftest import Harness, dag_yaml
from tests.unit.sensors.http_target import Target, serve

pytestmark = pytest.mark.cluster

PROGRESS = {"sensor_progress_period": 0.3}


@pytest.fixture
async def failing() -> AsyncIterator[Target]:
    async with serve() as server:
        server.status = 503
        yield server


@pytest.fixture
async def waiting() -> AsyncIterator[Target]:
    async with serve() as server:
        server.status = 404
        yield server


def recorded(obj: dict[str, Any], task: int) -> SensorState | None:
    detail = ((obj.get("status") or {}).get("tasks") or {}).get(str(task)) or {}
    text = detail.get("sensorState")
    return SensorState.decode(text) if text else None


async def test_sensors_resume_their_pokes_backoff_and_timeout_after_a_controller_kill(
    harness: Harness, failing: Target, waiting: Target
) -> None:
    tasks = (
        "  poll:\n"
        f"    sensor: {{http: {{url: '{failing.url}/'}}, pokeInterval: 1s, maxPokeInterval: 4s,"
        " timeout: 10m}\n"
        "  deadline:\n"
        f"    sensor: {{http: {{url: '{waiting.url}/'}}, pokeInterval: 1s, timeout: 6s, softFail: true}}\n"
        "  after-poll: {after: [poll], command: [x]}\n"
    )
    text = dag_yaml("resuming", tasks)
    index = compile_text(text).spec.task_index()
    poll, deadline = index["poll"], index["deadline"]
    await harness.apply_dag(text)
    await harness.start(controller=PROGRESS)
    await harness.create_run("r1", "resuming")

    def both_recorded(obj: dict[str, Any]) -> bool:
        p, d = recorded(obj, poll), recorded(obj, deadline)
        return p is not None and p.errors >= 2 and d is not None and d.attempts >= 2

    await harness.wait_run("r1", both_recorded, within=30)
    await harness.kill()
    at_kill = await harness.run_object("r1")
    poll_before, deadline_before = recorded(at_kill, poll), recorded(at_kill, deadline)
    assert poll_before is not None and deadline_before is not None
    assert poll_before.attempts == poll_before.errors, "every poke of 'poll' failed"
    assert deadline_before.errors == 0, "404 is 'not yet', not an error"

    # Down past the deadline sensor's timeout counted from its original start.
    await asyncio.sleep(max(0.0, deadline_before.started_at + 6.5 - time.time()))
    await harness.start(controller=PROGRESS)

    def poll_moved_on(obj: dict[str, Any]) -> bool:
        state = recorded(obj, poll)
        return state is not None and state.attempts > poll_before.attempts

    resumed = await harness.wait_run("r1", poll_moved_on, within=30)
    poll_after = recorded(resumed, poll)
    assert poll_after is not None
    assert poll_after.started_at == poll_before.started_at, "the same sensor, not a new one"
    assert poll_after.errors == poll_after.attempts > poll_before.errors, "the error backoff continued"
    assert poll_after.next_poke_at - time.time() <= 4, "capped by maxPokeInterval"

    skipped = await harness.wait_run("r1", lambda o: o["status"]["taskStates"][deadline] == "K")
    message = skipped["status"]["tasks"][str(deadline)]["message"]
    assert message == f"sensor timed out after 6s and {deadline_before.attempts} pokes", (
        "timed out on resume, from the original start, with the pokes made before the crash"
    )
    assert recorded(skipped, deadline) is None, "an ended sensor keeps no state"

    failing.status = 200
    done = await harness.wait_phase("r1", "Succeeded", within=30)
    states = done["status"]["taskStates"]
    assert (states[poll], states[deadline], states[index["after-poll"]]) == ("S", "K", "S")

"""Unschedulable is bounded: the real scheduler finds no node, the task shows the scheduler's
message while it waits, and after the configured bound it fails with that message and its pod
(which would wait Pending forever) is deleted."""

from __future__ import annotations

import pytest

from leoflow.controller.podstatus import ClassifySettings
from tests.integration.controller.conftest import Harness, dag_yaml, run_status

pytestmark = pytest.mark.cluster


@pytest.mark.parametrize(
    ("task", "scheduler_says"),
    [
        (
            "{command: [work], nodeSelector: {disktype: nvme-none-has}}",
            "didn't match Pod's node affinity/selector",
        ),
        ("{command: [work], resources: {cpu: '1000'}}", "Insufficient cpu"),
    ],
    ids=["selector-matches-no-node", "larger-than-any-node"],
)
async def test_unschedulable_task_fails_after_the_bound_with_the_scheduler_message(
    harness: Harness, task: str, scheduler_says: str
) -> None:
    await harness.apply_dag(dag_yaml("nowhere", f"  work: {task}\n"))
    await harness.start(classify=ClassifySettings(unschedulable_grace=4.0))
    await harness.create_run("r1", "nowhere")
    waiting = await harness.wait_run(
        "r1", lambda o: "not scheduled: 0/" in (run_status(o).get("message") or "")
    )
    assert run_status(waiting)["phase"] == "Running"
    assert scheduler_says in run_status(waiting)["message"]
    done = await harness.wait_phase("r1", "Failed")
    message = run_status(done)["message"]
    assert message.startswith("task 'work' failed: Unschedulable: not scheduled: 0/"), message
    assert scheduler_says in message
    await harness.wait_until_no_pods("r1")

"""A task's timeout, a run's timeout and a run's cap on tasks in flight, through the real
controller on KWOK (failures.md 22): the controller enforces them, the pod carries
``activeDeadlineSeconds`` as the kubelet's backstop, and nothing outlives them."""

from __future__ import annotations

import asyncio
from typing import Any

from leoflow.controller.cleanup import CleanupPolicy
from leoflow.controller.podspec import PodBuildSettings
from leoflow.controller.runview import MAX_ACTIVE_ANNOTATION, TIMEOUT_ANNOTATION
from tests.integration.controller.conftest import Harness, dag_yaml, run_status

RUNNING_FOREVER = {"kwok.leoflow.io/succeed-after": "10m"}


async def _pods(harness: Harness, run: str, *, count: int) -> list[dict[str, Any]]:
    for _ in range(100):
        pods = await harness.pods(run)
        if len(pods) >= count:
            return pods
        await asyncio.sleep(0.2)
    raise AssertionError(f"{run} never had {count} pod(s): {await harness.pods(run)}")


def _live(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pods still holding a place on a node: not finished and not being deleted."""
    return [
        p
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
        and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    ]


async def test_a_task_over_its_timeout_fails_as_deadline_exceeded_and_its_pod_goes(harness: Harness) -> None:
    await harness.apply_dag(dag_yaml("slow", "  work: {command: [work], timeout: 2s, retries: 0}\n"))
    harness.script.tasks = {"work": RUNNING_FOREVER}
    await harness.start()
    await harness.create_run("r1", "slow")
    [pod] = await _pods(harness, "r1", count=1)
    # The kubelet's backstop, should the controller be down when the timeout passes.
    assert pod["spec"]["activeDeadlineSeconds"] == 2 + PodBuildSettings().deadline_margin_seconds
    done = await harness.wait_phase("r1", "Failed", within=60)
    detail = run_status(done)["tasks"]["0"]
    assert detail["reason"] == "DeadlineExceeded", detail
    assert detail["message"] == "task exceeded its timeout of 2s", detail
    await harness.wait_until_no_pods("r1")


async def test_a_run_over_its_timeout_fails_and_stops_its_tasks(harness: Harness) -> None:
    tasks = "  a: {command: [a]}\n  b: {command: [b]}\n  after: {after: [a, b], command: [after]}\n"
    await harness.apply_dag(dag_yaml("bounded", tasks))
    harness.script.tasks = {"a": RUNNING_FOREVER, "b": RUNNING_FOREVER}
    await harness.create_run("r1", "bounded")
    await harness.kubectl("annotate", "dagrun", "r1", f"{TIMEOUT_ANNOTATION}=3s")
    await harness.start()
    done = await harness.wait_phase("r1", "Failed", within=60)
    status = run_status(done)
    assert status["taskStates"] == "FFC", status
    assert "run exceeded its timeout of 3s" in status["message"], status
    await harness.wait_until_no_pods("r1")


async def test_a_run_never_has_more_tasks_in_flight_than_its_cap(harness: Harness) -> None:
    tasks = "".join(f"  t{i}: {{command: [work]}}\n" for i in range(5))
    await harness.apply_dag(dag_yaml("capped", tasks))
    harness.script.tasks = {f"t{i}": {"kwok.leoflow.io/succeed-after": "1s"} for i in range(5)}
    await harness.create_run("r1", "capped")
    await harness.kubectl("annotate", "dagrun", "r1", f"{MAX_ACTIVE_ANNOTATION}=2")
    await harness.start(cleanup=CleanupPolicy(delete_succeeded=False))
    most = 0
    for _ in range(600):
        if run_status(await harness.run_object("r1")).get("phase") in ("Succeeded", "Failed"):
            break
        live = _live(await harness.pods("r1"))
        assert len(live) <= 2, [p["metadata"]["name"] for p in live]
        most = max(most, len(live))
        await asyncio.sleep(0.1)
    assert run_status(await harness.run_object("r1"))["phase"] == "Succeeded"
    # Five one-second tasks, two at a time: the cap was reached, not merely respected by luck.
    assert most == 2
    assert len(await harness.pods("r1")) == 5

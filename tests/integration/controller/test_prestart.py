"""Prestart through the real controller on KWOK: the downstream pod is created while its upstream
runs, its agent's WaitStart is held until the upstream's Finished arrives, and a failed upstream
cancels it. The agents are played through the run engine's ReportSink."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from leoflow.controller.agentserver import AgentIdentity, AgentReport, StaleAttempt
from leoflow.controller.agentsink import RunReportSink
from leoflow.controller.cleanup import CleanupPolicy
from leoflow.controller.planner import PlanSettings
from leoflow.controller.podspec import WAIT_START_ENV
from tests.integration.controller.conftest import Harness, dag_yaml

pytestmark = [pytest.mark.cluster]

TASKS = "  extract: {command: [extract]}\n  load: {command: [load], after: [extract]}\n"
NEVER_BY_THEMSELVES = {t: {"kwok.leoflow.io/succeed-after": "10m"} for t in ("extract", "load")}


def _identity(pod: dict[str, Any]) -> AgentIdentity:
    meta = pod["metadata"]
    labels = meta["labels"]
    return AgentIdentity(
        namespace=meta["namespace"],
        pod=meta["name"],
        uid=meta["uid"],
        dag=labels["leoflow.io/dag"],
        run=labels["leoflow.io/run"],
        task=labels["leoflow.io/task"],
        attempt=int(labels["leoflow.io/attempt"]),
    )


async def _prepared(harness: Harness) -> tuple[RunReportSink, dict[str, Any], dict[str, Any]]:
    await harness.apply_dag(dag_yaml("ahead", TASKS, defaults="prestart: true"))
    harness.script.tasks = NEVER_BY_THEMSELVES
    controller = await harness.start(
        plan=PlanSettings(prestart=True), cleanup=CleanupPolicy(delete_succeeded=False)
    )
    sink = RunReportSink(controller.reconciler, release_recheck=0.2)
    await harness.create_run("r1", "ahead")
    extract = await _pod_of(harness, "extract")
    # KWOK pods carry no agent, so the run must hear from one before it creates a pod ahead.
    await sink.report(AgentReport(_identity(extract), "started", datetime.now(UTC)))
    await harness.wait_run("r1", lambda o: (o.get("status") or {}).get("taskStates") == "rp")
    return sink, extract, await _pod_of(harness, "load")


async def _pod_of(harness: Harness, task: str) -> dict[str, Any]:
    return await harness.wait_pod(
        "r1", lambda p: p["metadata"]["labels"]["leoflow.io/task"] == task, f"for task {task}", within=30
    )


async def test_pods_without_the_agent_get_no_pod_ahead_of_their_upstreams_end(harness: Harness) -> None:
    # Unset prestart means auto: the compiled DAG asks for it, but nothing here injects the agent.
    await harness.apply_dag(dag_yaml("ahead", TASKS))
    harness.script.tasks = {"extract": {"kwok.leoflow.io/succeed-after": "3s"}}
    await harness.start(plan=PlanSettings(prestart=True), cleanup=CleanupPolicy(delete_succeeded=False))
    await harness.create_run("r1", "ahead")
    await harness.wait_run("r1", lambda o: (o.get("status") or {}).get("taskStates") == "r.")
    await asyncio.sleep(1.0)
    assert [p["metadata"]["labels"]["leoflow.io/task"] for p in await harness.pods("r1")] == ["extract"]
    await harness.wait_phase("r1", "Succeeded", within=30)
    load = await _pod_of(harness, "load")
    assert {"name": WAIT_START_ENV, "value": "true"} not in load["spec"]["containers"][0].get("env", [])


async def test_prepared_pod_starts_on_its_upstreams_finished_without_being_created_then(
    harness: Harness,
) -> None:
    sink, extract, load = await _prepared(harness)
    assert {"name": WAIT_START_ENV, "value": "true"} in load["spec"]["containers"][0]["env"]
    waiting = asyncio.ensure_future(sink.wait_start(_identity(load)))
    await asyncio.sleep(1.0)
    assert not waiting.done(), "held while its upstream runs"
    await sink.report(AgentReport(_identity(extract), "finished", datetime.now(UTC), exit_code=0))
    await asyncio.wait_for(waiting, 10)
    released = await harness.wait_run(
        "r1", lambda o: (o.get("status") or {}).get("taskStates") in ("Sq", "Sr")
    )
    assert released["status"]["tasks"]["1"]["releaseTime"]
    [same] = [p for p in await harness.pods("r1") if p["metadata"]["labels"]["leoflow.io/task"] == "load"]
    assert same["metadata"]["uid"] == load["metadata"]["uid"], "released, not created again"
    await sink.report(AgentReport(_identity(load), "started", datetime.now(UTC)))
    await sink.report(AgentReport(_identity(load), "finished", datetime.now(UTC), exit_code=0))
    await harness.wait_phase("r1", "Succeeded", within=30)


async def test_agent_arriving_after_the_release_starts_at_once(harness: Harness) -> None:
    sink, extract, load = await _prepared(harness)
    await sink.report(AgentReport(_identity(extract), "finished", datetime.now(UTC), exit_code=0))
    await harness.wait_run("r1", lambda o: (o.get("status") or {}).get("taskStates") in ("Sq", "Sr"))
    await asyncio.wait_for(sink.wait_start(_identity(load)), 5)


async def test_upstream_failure_cancels_the_waiting_agent_and_deletes_its_pod(harness: Harness) -> None:
    sink, extract, load = await _prepared(harness)
    waiting = asyncio.ensure_future(sink.wait_start(_identity(load)))
    await sink.report(AgentReport(_identity(extract), "finished", datetime.now(UTC), exit_code=1))
    with pytest.raises(StaleAttempt):
        await asyncio.wait_for(waiting, 10)
    done = await harness.wait_phase("r1", "Failed", within=30)
    assert done["status"]["taskStates"] == "FU"
    remaining = [p for p in await harness.pods("r1") if p["metadata"]["labels"]["leoflow.io/task"] == "load"]
    assert not remaining or remaining[0]["metadata"].get("deletionTimestamp"), remaining


async def test_prepared_pod_is_released_by_the_controller_that_replaced_a_killed_one(
    harness: Harness,
) -> None:
    _, extract, load = await _prepared(harness)
    await harness.kill()
    controller = await harness.start(
        plan=PlanSettings(prestart=True), cleanup=CleanupPolicy(delete_succeeded=False)
    )
    sink = RunReportSink(controller.reconciler, release_recheck=0.2)
    waiting = asyncio.ensure_future(sink.wait_start(_identity(load)))
    await asyncio.sleep(1.0)
    assert not waiting.done(), "the new controller holds it too"
    await sink.report(AgentReport(_identity(extract), "finished", datetime.now(UTC), exit_code=0))
    await asyncio.wait_for(waiting, 10)
    pods = [p for p in await harness.pods("r1") if p["metadata"]["labels"]["leoflow.io/task"] == "load"]
    assert [p["metadata"]["uid"] for p in pods] == [load["metadata"]["uid"]], "adopted, not created again"

"""Agent reports through the runtime's ReportSink: the fast path and the fencing of stale attempts."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from leoflow.controller.agentserver import AgentIdentity, AgentReport, StaleAttempt, UnknownPod
from leoflow.controller.agentsink import RunReportSink
from leoflow.controller.cleanup import CleanupPolicy
from leoflow.controller.podnames import ATTEMPT_ANNOTATION, ATTEMPT_LABEL, AttemptKey, attempt_pod_name
from leoflow.controller.reconcile import RetryLater
from tests.integration.controller.conftest import Harness, dag_yaml, fail

TASKS = (
    "  produce: {command: [produce], outputs: [rows]}\n"
    "  consume: {after: [produce], command: [consume], env: {ROWS: '{{ tasks.produce.outputs.rows }}'}}\n"
)


def _identity(pod: dict[str, Any], uid: str | None = None) -> AgentIdentity:
    meta = pod["metadata"]
    labels = meta["labels"]
    return AgentIdentity(
        namespace=meta["namespace"],
        pod=meta["name"],
        uid=uid or meta["uid"],
        dag=labels["leoflow.io/dag"],
        run=labels["leoflow.io/run"],
        task=labels["leoflow.io/task"],
        attempt=int(labels["leoflow.io/attempt"]),
    )


async def test_finished_report_advances_the_run_with_the_agents_outputs(harness: Harness) -> None:
    await harness.apply_dag(dag_yaml("fast", TASKS))
    # The simulated pods never finish by themselves: only the agent's report can complete them.
    harness.script.tasks = {t: {"kwok.leoflow.io/succeed-after": "10m"} for t in ("produce", "consume")}
    controller = await harness.start(cleanup=CleanupPolicy(delete_succeeded=False))
    sink = RunReportSink(controller.reconciler)
    await harness.create_run("r1", "fast")
    await harness.wait_run("r1", lambda o: (o.get("status") or {}).get("taskStates") == "r.")
    [pod] = await harness.pods("r1")
    identity = _identity(pod)
    await sink.wait_start(identity)
    await sink.report(AgentReport(identity, "started", datetime.now(UTC)))
    await sink.report(
        AgentReport(identity, "finished", datetime.now(UTC), exit_code=0, outputs={"rows": "42"})
    )
    running = await harness.wait_run(
        "r1", lambda o: (o.get("status") or {}).get("taskStates") in ("Sq", "Sr")
    )
    assert running["status"]["tasks"]["0"]["outputs"] == {"rows": "42"}
    consume = next(
        p for p in await harness.pods("r1") if p["metadata"]["labels"]["leoflow.io/task"] == "consume"
    )
    assert {"name": "ROWS", "value": "42"} in consume["spec"]["containers"][0]["env"]
    with pytest.raises(UnknownPod):
        await sink.report(AgentReport(_identity(consume, uid="not-the-uid"), "started", datetime.now(UTC)))


async def test_report_for_a_superseded_attempt_is_refused_as_stale(harness: Harness) -> None:
    await harness.apply_dag(
        dag_yaml("stale", "  flaky: {command: [flaky]}\n", defaults="retries: 1, retryDelay: 0s")
    )
    harness.script.tasks = {"flaky": {1: fail(), 2: {"kwok.leoflow.io/succeed-after": "10m"}}}
    controller = await harness.start()
    sink = RunReportSink(controller.reconciler)
    await harness.create_run("r1", "stale")
    await harness.wait_run(
        "r1", lambda o: ((o.get("status") or {}).get("tasks") or {}).get("0", {}).get("attempt") == 2
    )
    first = next(p for p in await harness.pods("r1") if p["metadata"]["labels"]["leoflow.io/attempt"] == "1")
    with pytest.raises(StaleAttempt):
        await sink.report(AgentReport(_identity(first), "finished", datetime.now(UTC), exit_code=0))
    with pytest.raises(StaleAttempt):
        await sink.wait_start(_identity(first))


async def test_report_for_an_attempt_not_recorded_yet_is_retried_and_its_pod_deleted(
    harness: Harness,
) -> None:
    # Pods are created concurrently with the status write that records them: an agent may report
    # first. Such a report must be retried (UNAVAILABLE), not refused (which ends the task); a pod
    # whose attempt the status never records is deleted.
    await harness.apply_dag(dag_yaml("ahead", "  slow: {command: [slow]}\n"))
    harness.script.tasks = {"slow": {"kwok.leoflow.io/succeed-after": "10m"}}
    controller = await harness.start()
    sink = RunReportSink(controller.reconciler, cache_wait=0.5)
    await harness.create_run("r1", "ahead")
    await harness.wait_run("r1", lambda o: (o.get("status") or {}).get("taskStates") == "r")
    [pod] = await harness.pods("r1")
    # Stopped, the controller cannot delete the pod before the sink has seen it; the sink keeps
    # reading the stopped controller's caches and the API server.
    await harness.kill()
    run_uid = pod["metadata"]["annotations"][ATTEMPT_ANNOTATION].split("/", 1)[0]
    ahead = AttemptKey(run_uid, "slow", None, 2)
    metadata = {
        "name": attempt_pod_name("r1", ahead),
        "labels": {**pod["metadata"]["labels"], ATTEMPT_LABEL: "2"},
        "annotations": {**pod["metadata"]["annotations"], ATTEMPT_ANNOTATION: ahead.annotation()},
    }
    created = json.loads(
        await harness.kubectl(
            "create", "-o", "json", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "Pod",
            "metadata": metadata, "spec": pod["spec"]})
        )
    )  # fmt: skip
    with pytest.raises(RetryLater):
        await sink.report(AgentReport(_identity(created), "started", datetime.now(UTC)))
    await harness.start()
    deadline = time.monotonic() + 30
    while any(
        p["metadata"]["name"] == metadata["name"] and not p["metadata"].get("deletionTimestamp")
        for p in await harness.pods("r1")
    ):
        assert time.monotonic() < deadline, "the pod of the unrecorded attempt was not deleted"
        await asyncio.sleep(0.3)

"""Agent reports through the runtime's ReportSink: the fast path and the fencing of stale attempts."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest

from leoflow.agent.v1 import agent_pb2, agent_pb2_grpc
from leoflow.controller.agentserver import AgentIdentity, AgentReport, AgentServer, StaleAttempt, UnknownPod
from leoflow.controller.agentsink import RunReportSink
from leoflow.controller.cleanup import CleanupPolicy
from leoflow.controller.planner import PlanSettings
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


async def _create_next_attempt(harness: Harness, pod: dict[str, Any]) -> dict[str, Any]:
    """A pod for the attempt after ``pod``'s, which the run status does not record."""
    run = pod["metadata"]["labels"]["leoflow.io/run"]
    task = pod["metadata"]["labels"]["leoflow.io/task"]
    run_uid = pod["metadata"]["annotations"][ATTEMPT_ANNOTATION].split("/", 1)[0]
    ahead = AttemptKey(run_uid, task, None, int(pod["metadata"]["labels"][ATTEMPT_LABEL]) + 1)
    metadata = {
        "name": attempt_pod_name(run, ahead),
        "labels": {**pod["metadata"]["labels"], ATTEMPT_LABEL: str(ahead.attempt)},
        "annotations": {**pod["metadata"]["annotations"], ATTEMPT_ANNOTATION: ahead.annotation()},
    }
    created: dict[str, Any] = json.loads(
        await harness.kubectl(
            "create", "-o", "json", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "Pod",
            "metadata": metadata, "spec": pod["spec"]})
        )
    )  # fmt: skip
    return created


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


async def test_exit_0_after_sigterm_retries_the_task_as_interrupted_instead_of_succeeding(
    harness: Harness,
) -> None:
    # failures.md 20: a task that traps the SIGTERM of an eviction or deletion and exits 0.
    await harness.apply_dag(dag_yaml("trap", TASKS, defaults="retries: 0"))
    harness.script.tasks = {t: {"kwok.leoflow.io/succeed-after": "10m"} for t in ("produce", "consume")}
    controller = await harness.start(plan=PlanSettings(infra_retry_delay_seconds=0.5))
    sink = RunReportSink(controller.reconciler)
    await harness.create_run("r1", "trap")
    await harness.wait_run("r1", lambda o: (o.get("status") or {}).get("taskStates") == "r.")
    [first] = await harness.pods("r1")
    identity = _identity(first)
    await sink.report(AgentReport(identity, "started", datetime.now(UTC)))
    await sink.report(AgentReport(identity, "terminating", datetime.now(UTC), signal=15))
    await sink.report(AgentReport(identity, "finished", datetime.now(UTC), exit_code=0))
    retried = await harness.wait_run(
        "r1", lambda o: ((o.get("status") or {}).get("tasks") or {}).get("0", {}).get("attempt") == 2
    )
    detail = retried["status"]["tasks"]["0"]
    assert (detail["reason"], detail["infraAttempts"], detail["exitCode"]) == ("Interrupted", 1, 0)
    assert retried["status"]["taskStates"][1] == ".", "nothing downstream ran on the interrupted attempt"
    second = next(p for p in await harness.pods("r1") if p["metadata"]["labels"]["leoflow.io/attempt"] == "2")
    await sink.report(AgentReport(_identity(second), "finished", datetime.now(UTC), exit_code=0))
    await harness.wait_run("r1", lambda o: (o.get("status") or {}).get("taskStates", "")[:1] == "S")


async def _run_whose_agent_finished_before_its_pod(harness: Harness, succeed_after: str) -> None:
    """A one-task run that the agent's Finished ended while its pod still runs for ``succeed_after``."""
    await harness.apply_dag(dag_yaml("late", "  only: {command: [only]}\n"))
    harness.script.tasks = {"only": {"kwok.leoflow.io/succeed-after": succeed_after}}
    controller = await harness.start()
    await harness.create_run("r1", "late")
    await harness.wait_run("r1", lambda o: (o.get("status") or {}).get("taskStates") == "r")
    [pod] = await harness.pods("r1")
    await RunReportSink(controller.reconciler).report(
        AgentReport(_identity(pod), "finished", datetime.now(UTC), exit_code=0)
    )
    await harness.wait_phase("r1", "Succeeded", within=10)


async def test_last_tasks_pod_ending_after_its_run_succeeded_is_still_deleted(harness: Harness) -> None:
    # The agent's Finished ends the run before the kubelet says the pod Succeeded: no transition
    # of the run looks at the pod again, yet the cleanup policy deletes succeeded pods.
    await _run_whose_agent_finished_before_its_pod(harness, "4s")
    assert await harness.pods("r1"), "the pod outlives its run for a few seconds"
    await harness.wait_until_no_pods("r1", within=30)


async def test_a_pod_ending_after_its_run_is_deleted_by_a_controller_restarted_in_between(
    harness: Harness,
) -> None:
    # The restarted controller has never read the run's definition: it reads it for the cleanup.
    await _run_whose_agent_finished_before_its_pod(harness, "6s")
    await harness.kill()
    await harness.start()
    assert await harness.pods("r1"), "the pod outlives its run and the first controller"
    await harness.wait_until_no_pods("r1", within=30)


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
    sink = RunReportSink(controller.reconciler, record_wait=0.5)
    await harness.create_run("r1", "ahead")
    await harness.wait_run("r1", lambda o: (o.get("status") or {}).get("taskStates") == "r")
    [pod] = await harness.pods("r1")
    # Stopped, the controller cannot delete the pod before the sink has seen it; the sink keeps
    # reading the stopped controller's caches and the API server.
    await harness.kill()
    created = await _create_next_attempt(harness, pod)
    with pytest.raises(RetryLater):
        await sink.report(AgentReport(_identity(created), "started", datetime.now(UTC)))
    await harness.start()
    deadline = time.monotonic() + 30
    while any(
        p["metadata"]["name"] == created["metadata"]["name"] and not p["metadata"].get("deletionTimestamp")
        for p in await harness.pods("r1")
    ):
        assert time.monotonic() < deadline, "the pod of the unrecorded attempt was not deleted"
        await asyncio.sleep(0.3)


async def test_a_report_that_cannot_be_recorded_is_answered_within_the_agents_call(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    # The agent gives each call --rpc-timeout (2 s). A report first waits for its pod in the cache,
    # then reads it from the API server, then waits for the status to record its attempt: the
    # answer must come within the call. A call that times out instead ends in silence on both sides,
    # and when every retry does, the agent waits out its --finish-timeout (10 s) unheard.
    await harness.apply_dag(dag_yaml("late", "  slow: {command: [slow]}\n"))
    harness.script.tasks = {"slow": {"kwok.leoflow.io/succeed-after": "10m"}}
    controller = await harness.start()
    await harness.create_run("r1", "late")
    await harness.wait_run("r1", lambda o: (o.get("status") or {}).get("taskStates") == "r")
    [pod] = await harness.pods("r1")
    await harness.kill()
    # Created after the controller stopped: its pod cache never holds it, and the status never
    # records its attempt.
    created = await _create_next_attempt(harness, pod)
    identity = _identity(created)
    server = AgentServer(RunReportSink(controller.reconciler), None, tls=None)
    port = await server.start("127.0.0.1", 0)
    caplog.set_level(logging.INFO, logger="leoflow.controller")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = agent_pb2_grpc.AgentServiceStub(channel)  # type: ignore[no-untyped-call]
            request = agent_pb2.FinishedRequest(
                identity=agent_pb2.TaskIdentity(
                    pod_namespace=identity.namespace, pod_name=identity.pod, pod_uid=identity.uid,
                    dag=identity.dag, run=identity.run, task=identity.task, attempt=identity.attempt,
                ),
                exit_code=0,
            )  # fmt: skip
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Finished(request, timeout=2.0)
    finally:
        await server.stop(grace=0)

    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value.details()
    [waiting] = [r for r in caplog.records if r.getMessage() == "report's attempt not recorded yet"]
    assert "records attempt 1 of slow in state 'r', not attempt 2 in flight" in waiting.reason

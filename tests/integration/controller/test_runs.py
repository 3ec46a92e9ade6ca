"""DAGRuns created with kubectl run end to end on KWOK nodes through an in-process controller."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from leoflow.controller.cleanup import RESULT_FINALIZER, CleanupPolicy
from leoflow.controller.podnames import TASK_LABEL
from tests.integration.controller.conftest import SUCCEED, Harness, dag_yaml, fail

CHAIN = (
    "  extract: {command: [extract]}\n"
    "  transform: {after: [extract], command: [transform]}\n"
    "  load: {after: [transform], command: [load]}\n"
)


def _status(obj: dict[str, Any]) -> dict[str, Any]:
    status: dict[str, Any] = obj.get("status") or {}
    return status


def _stamp(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _finished_at(pod: dict[str, Any]) -> datetime:
    state = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    return _stamp(state["finishedAt"])


async def test_kubectl_created_run_runs_one_pod_per_task_in_dependency_order(harness: Harness) -> None:
    await harness.apply_dag(dag_yaml("chain", CHAIN))
    harness.script.tasks = {t: {"kwok.leoflow.io/succeed-after": "1s"} for t in ("extract", "transform")}
    await harness.start(cleanup=CleanupPolicy(delete_succeeded=False))
    await harness.create_run("r1", "chain")
    done = await harness.wait_phase("r1", "Succeeded")
    assert _status(done)["taskStates"] == "SSS"
    assert _status(done)["progress"] == "3/3"
    pods = {p["metadata"]["labels"][TASK_LABEL]: p for p in await harness.pods("r1")}
    assert sorted(pods) == ["extract", "load", "transform"]
    for upstream, downstream in (("extract", "transform"), ("transform", "load")):
        created = _stamp(pods[downstream]["metadata"]["creationTimestamp"])
        assert created >= _finished_at(pods[upstream])
        assert created > _stamp(pods[upstream]["metadata"]["creationTimestamp"])
    assert all(RESULT_FINALIZER not in (p["metadata"].get("finalizers") or []) for p in pods.values())
    reasons = {e["reason"] for e in await harness.events("r1")}
    assert "RunSucceeded" in reasons


async def test_succeeded_pods_are_deleted_under_the_default_policy(harness: Harness) -> None:
    await harness.apply_dag(dag_yaml("chain", CHAIN))
    await harness.start()
    await harness.create_run("r1", "chain")
    await harness.wait_phase("r1", "Succeeded")
    await harness.wait_until_no_pods("r1")


async def test_a_task_ends_when_its_main_container_exits_though_a_sidecar_keeps_the_pod_running(
    harness: Harness,
) -> None:
    # An injected sidecar (istio-proxy, vault-agent) outlives the task (failures.md 19): the phase
    # stays Running, so only the main container's terminated state can say the task ended.
    tasks = "  work: {command: [work]}\n  report: {after: [work], command: [report]}\n"
    await harness.apply_dag(dag_yaml("sidecar", tasks))
    harness.script.tasks = {"work": {"kwok.leoflow.io/main-exits-after": "200ms"}}
    await harness.start(cleanup=CleanupPolicy(delete_succeeded=False))
    await harness.create_run("r1", "sidecar")
    done = await harness.wait_phase("r1", "Succeeded")
    assert _status(done)["taskStates"] == "SS"
    [work] = [p for p in await harness.pods("r1") if p["metadata"]["labels"][TASK_LABEL] == "work"]
    assert work["status"]["phase"] == "Running"


async def test_failing_task_retries_then_fails_the_run_naming_task_and_reason(harness: Harness) -> None:
    tasks = "  extract: {command: [extract]}\n  load: {after: [extract], command: [load]}\n"
    await harness.apply_dag(dag_yaml("retrying", tasks, defaults="retries: 1, retryDelay: 1s"))
    harness.script.tasks = {"extract": fail(reason="Error", exit_code=3)}
    await harness.start(cleanup=CleanupPolicy(delete_succeeded=False))
    await harness.create_run("r1", "retrying")
    done = await harness.wait_phase("r1", "Failed")
    status = _status(done)
    assert status["taskStates"] == "FU"
    assert status["tasks"]["0"]["attempt"] == 2
    assert status["message"].startswith("task 'extract' failed: UserError:")
    assert "exit code 3" in status["message"]
    attempts = sorted(p["metadata"]["labels"]["leoflow.io/attempt"] for p in await harness.pods("r1"))
    assert attempts == ["1", "2"]
    reasons = [e["reason"] for e in await harness.events("r1")]
    assert "TaskRetrying" in reasons and "RunFailed" in reasons


async def test_all_done_task_runs_after_an_upstream_failure(harness: Harness) -> None:
    tasks = (
        "  work: {command: [work]}\n"
        "  cleanup: {after: [work], trigger: all_done, command: [cleanup]}\n"
        "  report: {after: [work], command: [report]}\n"
    )
    await harness.apply_dag(dag_yaml("alldone", tasks))
    harness.script.tasks = {"work": fail()}
    await harness.start()
    await harness.create_run("r1", "alldone")
    done = await harness.wait_phase("r1", "Failed")
    assert _status(done)["taskStates"] == "FSU"


async def test_cancel_deletes_running_pods_and_marks_the_run_cancelled(harness: Harness) -> None:
    tasks = "  slow: {command: [sleep]}\n  after: {after: [slow], command: [next]}\n"
    await harness.apply_dag(dag_yaml("cancel", tasks))
    harness.script.tasks = {"slow": {"kwok.leoflow.io/succeed-after": "10m"}}
    await harness.start()
    await harness.create_run("r1", "cancel")
    await harness.wait_run("r1", lambda o: _status(o).get("taskStates") == "r.")
    await harness.kubectl("annotate", "dagrun", "r1", "leoflow.io/cancel=true")
    done = await harness.wait_phase("r1", "Cancelled")
    assert _status(done)["taskStates"] == "CC"
    await harness.wait_until_no_pods("r1")


async def test_retry_of_a_failed_run_reruns_only_its_failed_tasks(harness: Harness) -> None:
    tasks = (
        "  good: {command: [good]}\n"
        "  flaky: {command: [flaky]}\n"
        "  last: {after: [good, flaky], command: [last]}\n"
    )
    await harness.apply_dag(dag_yaml("retryrun", tasks))
    harness.script.tasks = {"flaky": fail()}
    await harness.start(cleanup=CleanupPolicy(delete_succeeded=False))
    await harness.create_run("r1", "retryrun")
    await harness.wait_phase("r1", "Failed")
    harness.script.tasks = {}
    await harness.kubectl("annotate", "dagrun", "r1", "leoflow.io/retry=1")
    done = await harness.wait_phase("r1", "Succeeded")
    assert _status(done)["taskStates"] == "SSS"
    by_task: dict[str, list[str]] = {}
    for pod in await harness.pods("r1"):
        labels = pod["metadata"]["labels"]
        by_task.setdefault(labels[TASK_LABEL], []).append(labels["leoflow.io/attempt"])
    assert by_task == {"good": ["1"], "flaky": sorted(by_task["flaky"]), "last": ["1"]}
    assert len(by_task["flaky"]) == 2
    assert "RunRetried" in {e["reason"] for e in await harness.events("r1")}


async def test_run_keeps_its_definition_when_the_dag_changes_mid_run(harness: Harness) -> None:
    first = await harness.apply_dag(dag_yaml("evolving", CHAIN))
    harness.script.tasks = {"extract": {"kwok.leoflow.io/succeed-after": "3s"}}
    await harness.start()
    await harness.create_run("r1", "evolving")
    await harness.wait_run("r1", lambda o: _status(o).get("definitionHash") == first)
    second = await harness.apply_dag(dag_yaml("evolving", "  only: {command: [only]}\n"))
    assert second != first
    done = await harness.wait_phase("r1", "Succeeded")
    assert _status(done)["definitionHash"] == first
    assert _status(done)["taskStates"] == "SSS"


async def test_missing_dag_fails_the_run_with_a_clear_message(harness: Harness) -> None:
    await harness.start()
    await harness.create_run("r1", "nowhere")
    done = await harness.wait_phase("r1", "Failed")
    assert _status(done)["message"] == f"DAG 'nowhere' not found in namespace {harness.namespace}"


async def test_pod_deleted_by_someone_else_is_retried_as_infrastructure(harness: Harness) -> None:
    tasks = "  slow: {command: [sleep]}\n"
    await harness.apply_dag(dag_yaml("deleted", tasks))
    harness.script.tasks = {"slow": {1: {"kwok.leoflow.io/succeed-after": "10m"}, 2: SUCCEED}}
    await harness.start()
    await harness.create_run("r1", "deleted")
    await harness.wait_run("r1", lambda o: _status(o).get("taskStates") == "r")
    [pod] = await harness.pods("r1")
    await harness.kubectl("delete", "pod", pod["metadata"]["name"], "--wait=false")
    done = await harness.wait_phase("r1", "Succeeded")
    detail = _status(done)["tasks"]["0"]
    assert detail["attempt"] == 2
    assert detail["infraAttempts"] == 1


async def test_time_sensor_task_waits_then_unblocks_its_downstream(harness: Harness) -> None:
    # The delay counts from the run's logical date, its creation here (to the second).
    tasks = (
        "  wait: {sensor: {time: {delay: 4s}, pokeInterval: 1s}}\n  work: {after: [wait], command: [work]}\n"
    )
    await harness.apply_dag(dag_yaml("sensing", tasks))
    await harness.start()
    await harness.create_run("r1", "sensing")
    waiting = await harness.wait_run("r1", lambda o: _status(o).get("taskStates") == "r.")
    assert _status(waiting)["phase"] == "Running"
    done = await harness.wait_phase("r1", "Succeeded")
    assert _status(done)["taskStates"] == "SS"

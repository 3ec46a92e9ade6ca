"""When a pod's result finalizer may come off, and what the cleanup policy does with the pod."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from leoflow.controller.cleanup import (
    RESULT_FINALIZER,
    CleanupPolicy,
    PolicyError,
    failed_pod_expiry,
    parse_policy,
    result_recorded,
    succeeded_attempt,
    without_result_finalizer,
)
from leoflow.controller.reconcile import in_flight_units, status_body
from leoflow.spec.resources import CompiledFanOut, DagRunStatus, RunPhase, TaskDetail
from tests.unit.controller.dags import dag

DAG = dag({"a": [], "b": ["a"], "c": []}, fan_out={"c": CompiledFanOut(items=["x", "y"])})
INDEX = DAG.task_index()


def pod(task: str, attempt: int, item: int | None = None, **status: Any) -> dict[str, Any]:
    labels = {"leoflow.io/task": task, "leoflow.io/attempt": str(attempt)}
    if item is not None:
        labels["leoflow.io/item"] = str(item)
    return {
        "metadata": {"name": f"{task}-{attempt}", "labels": labels, "finalizers": [RESULT_FINALIZER]},
        "status": status,
    }


def test_the_attempt_in_flight_keeps_its_finalizer() -> None:
    status = DagRunStatus(phase=RunPhase.RUNNING, taskStates="r.r", items={"2": "q."})
    assert not result_recorded(pod("a", 1), INDEX, status)
    assert not result_recorded(pod("c", 1, item=0), INDEX, status)


def test_a_recorded_outcome_releases_the_pod() -> None:
    status = DagRunStatus(phase=RunPhase.RUNNING, taskStates="Sr.", tasks={"1": TaskDetail(attempt=1)})
    assert result_recorded(pod("a", 1), INDEX, status)
    assert result_recorded(pod("c", 1, item=1), INDEX, status)


def test_a_superseded_attempt_is_released_while_the_retry_runs() -> None:
    status = DagRunStatus(phase=RunPhase.RUNNING, taskStates="q..", tasks={"0": TaskDetail(attempt=2)})
    assert result_recorded(pod("a", 1), INDEX, status)
    assert not result_recorded(pod("a", 2), INDEX, status)


def test_every_pod_of_a_finished_run_is_released() -> None:
    status = DagRunStatus(phase=RunPhase.CANCELLED, taskStates="r..")
    assert result_recorded(pod("a", 1), INDEX, status)


def test_only_the_pod_of_a_recorded_success_that_ended_succeeded_is_a_succeeded_attempt() -> None:
    status = DagRunStatus(
        phase=RunPhase.SUCCEEDED, taskStates="SFS", items={"2": "SS"}, tasks={"0": TaskDetail(attempt=2)}
    )
    assert succeeded_attempt(pod("a", 2, phase="Succeeded"), INDEX, status)
    assert succeeded_attempt(pod("c", 1, item=1, phase="Succeeded"), INDEX, status)
    assert not succeeded_attempt(pod("a", 1, phase="Succeeded"), INDEX, status), "a superseded attempt"
    assert not succeeded_attempt(pod("a", 2, phase="Running"), INDEX, status), "not ended yet"
    assert not succeeded_attempt(pod("b", 1, phase="Succeeded"), INDEX, status), "its task failed"


def test_policies_parse_and_bad_ones_say_what_is_accepted() -> None:
    assert parse_policy("delete-succeeded") == CleanupPolicy(delete_succeeded=True, failed_ttl=None)
    assert parse_policy("keep-all") == CleanupPolicy(delete_succeeded=False)
    assert parse_policy("keep-failed-ttl=2h") == CleanupPolicy(delete_succeeded=True, failed_ttl=7200.0)
    with pytest.raises(PolicyError, match="keep-failed-ttl=DURATION"):
        parse_policy("keep-some")
    with pytest.raises(PolicyError, match="keep-failed-ttl=soon"):
        parse_policy("keep-failed-ttl=soon")


def test_failed_pods_expire_a_ttl_after_they_finished() -> None:
    finished = datetime(2026, 3, 1, 12, tzinfo=UTC)
    failed = pod(
        "a",
        1,
        phase="Failed",
        containerStatuses=[
            {"name": "main", "state": {"terminated": {"exitCode": 1, "finishedAt": "2026-03-01T12:00:00Z"}}}
        ],
    )
    assert failed_pod_expiry(failed, CleanupPolicy(failed_ttl=60)) == finished + timedelta(seconds=60)
    assert failed_pod_expiry(failed, CleanupPolicy()) is None
    assert failed_pod_expiry(pod("a", 1, phase="Succeeded"), CleanupPolicy(failed_ttl=60)) is None


def test_the_finalizer_patch_removes_only_ours_and_fails_if_the_list_moved() -> None:
    target = pod("a", 1)
    target["metadata"]["finalizers"] = ["example.com/keep", RESULT_FINALIZER]
    assert without_result_finalizer(target) == [
        {"op": "test", "path": "/metadata/finalizers/1", "value": RESULT_FINALIZER},
        {"op": "remove", "path": "/metadata/finalizers/1"},
    ]
    target["metadata"]["finalizers"] = ["example.com/keep"]
    assert without_result_finalizer(target) is None


def test_in_flight_units_cover_tasks_and_fan_out_items() -> None:
    status = DagRunStatus(taskStates="rSr", items={"2": "Sqr."})
    assert in_flight_units(status) == [(0, None), (2, 1), (2, 2)]


def test_the_stored_status_always_names_its_phase() -> None:
    assert status_body(DagRunStatus())["phase"] == "Pending"

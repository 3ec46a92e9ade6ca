"""What the controller makes of cache events: when a task transition starts being timed on the
pod-status path, and which run and pod events bring nothing new."""

from __future__ import annotations

from typing import Any

from leoflow.controller.cleanup import RESULT_FINALIZER
from leoflow.controller.kube.informer import EventType
from leoflow.controller.reconcile import own_write_echo, settled_pod_event, task_ended


def pod(phase: str, main_state: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": {
            "phase": phase,
            "containerStatuses": [
                {"name": "sidecar", "state": {"terminated": {"exitCode": 0}}},
                {"name": "main", "state": main_state},
            ],
        }
    }


def test_main_container_terminated_ends_the_task_before_the_phase_does() -> None:
    # A real kubelet reports the container's exit about a second before the pod's phase.
    assert task_ended(pod("Running", {"terminated": {"exitCode": 0}}), "main")


def test_a_terminal_phase_ends_the_task() -> None:
    assert task_ended(pod("Failed", {"running": {}}), "main")


def test_another_container_terminating_does_not_end_the_task() -> None:
    assert not task_ended(pod("Running", {"running": {}}), "main")


def run(version: str) -> dict[str, Any]:
    return {"metadata": {"name": "r1", "resourceVersion": version}}


def test_the_echo_of_the_controllers_own_status_write_is_not_reconciled_again() -> None:
    assert own_write_echo(run("10"), run("11"), written=run("11"))


def test_a_change_by_someone_else_is_reconciled() -> None:
    assert not own_write_echo(run("11"), run("12"), written=run("11"))
    assert not own_write_echo(run("10"), run("11"), written=None)


def test_a_resync_of_the_written_object_is_reconciled() -> None:
    assert not own_write_echo(run("11"), run("11"), written=run("11"))


def task_pod(phase: str, *, finalizer: bool = False, deleting: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "r1-extract-1", "finalizers": [RESULT_FINALIZER] if finalizer else []}
    if deleting:
        metadata["deletionTimestamp"] = "2026-11-24T12:00:00Z"
    return {"metadata": metadata, "status": {"phase": phase}}


def test_a_released_pods_deletion_and_late_status_cost_no_reconcile() -> None:
    for event, pod_after in (
        (EventType.MODIFIED, task_pod("Running", deleting=True)),
        (EventType.MODIFIED, task_pod("Succeeded")),
        (EventType.MODIFIED, task_pod("Failed", deleting=True)),
        (EventType.DELETED, task_pod("Succeeded", deleting=True)),
    ):
        assert settled_pod_event(event, pod_after, released=True), (event, pod_after)


def test_a_released_failed_pod_still_reconciles_to_schedule_its_ttl() -> None:
    assert not settled_pod_event(EventType.MODIFIED, task_pod("Failed"), released=True)


def test_a_pod_whose_result_is_not_released_always_reconciles() -> None:
    for event in (EventType.ADDED, EventType.MODIFIED, EventType.DELETED):
        assert not settled_pod_event(event, task_pod("Succeeded", deleting=True), released=False)
    assert not settled_pod_event(EventType.MODIFIED, task_pod("Succeeded", finalizer=True), released=True)


def test_a_resync_of_a_released_pod_is_reconciled() -> None:
    assert not settled_pod_event(EventType.RESYNC, task_pod("Succeeded"), released=True)

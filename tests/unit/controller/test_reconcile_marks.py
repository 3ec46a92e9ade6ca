"""When the controller starts timing a task transition on the pod-status path."""

from __future__ import annotations

from typing import Any

from leoflow.controller.reconcile import task_ended


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

"""Pod status shapes as the API server returns them (JSON), for the classifier and planner tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

T0 = datetime(2026, 11, 24, 7, 0, 0, tzinfo=UTC)


def ts(offset_seconds: float = 0.0) -> str:
    return (T0 + timedelta(seconds=offset_seconds)).isoformat().replace("+00:00", "Z")


def at(offset_seconds: float) -> datetime:
    return T0 + timedelta(seconds=offset_seconds)


def pod(
    phase: str = "Pending",
    *,
    containers: list[dict[str, Any]] | None = None,
    init: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    reason: str | None = None,
    message: str | None = None,
    deleting: bool = False,
    spec_containers: tuple[str, ...] = ("main",),
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if containers is not None:
        status["containerStatuses"] = containers
    if init is not None:
        status["initContainerStatuses"] = init
    if conditions is not None:
        status["conditions"] = conditions
    if reason is not None:
        status["reason"] = reason
    if message is not None:
        status["message"] = message
    metadata: dict[str, Any] = {"name": "p", "namespace": "ns", "creationTimestamp": ts(0)}
    if deleting:
        metadata["deletionTimestamp"] = ts(50)
        metadata["deletionGracePeriodSeconds"] = 30
    return {
        "metadata": metadata,
        "spec": {"containers": [{"name": n, "image": "busybox"} for n in spec_containers]},
        "status": status,
    }


def waiting(name: str, reason: str, message: str = "") -> dict[str, Any]:
    state: dict[str, Any] = {"reason": reason}
    if message:
        state["message"] = message
    return {"name": name, "state": {"waiting": state}, "ready": False, "restartCount": 0}


def running(name: str = "main") -> dict[str, Any]:
    return {"name": name, "state": {"running": {"startedAt": ts(5)}}, "ready": True, "restartCount": 0}


def terminated(
    name: str = "main", exit_code: int = 0, reason: str | None = None, message: str = ""
) -> dict[str, Any]:
    state: dict[str, Any] = {
        "exitCode": exit_code,
        "reason": reason or ("Completed" if exit_code == 0 else "Error"),
        "startedAt": ts(5),
        "finishedAt": ts(20),
    }
    if message:
        state["message"] = message
    return {"name": name, "state": {"terminated": state}, "ready": False, "restartCount": 0}


def scheduled(
    status: str = "True", reason: str | None = None, message: str = "", at_offset: float = 1
) -> dict[str, Any]:
    cond: dict[str, Any] = {"type": "PodScheduled", "status": status, "lastTransitionTime": ts(at_offset)}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def disruption(reason: str, message: str = "") -> dict[str, Any]:
    return {
        "type": "DisruptionTarget",
        "status": "True",
        "reason": reason,
        "message": message,
        "lastTransitionTime": ts(40),
    }

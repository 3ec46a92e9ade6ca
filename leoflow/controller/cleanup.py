"""What happens to a task pod once its result is safe: the result finalizer, the cleanup policy,
and the sweeper for pods whose DAGRun is gone.

Every task pod is created with the finalizer ``leoflow.io/result``: if someone deletes the pod
before the run status recorded that attempt's outcome, the pod stays (Terminating) with its
terminal status and termination message until the controller has read them. Once the run status
no longer has that attempt in flight, the finalizer comes off and the policy applies: succeeded
pods are deleted (``delete-succeeded``), failed pods are kept for a TTL (``keep-failed-ttl=D``),
or everything is kept (``keep-all``) until the DAGRun is deleted and the garbage collector takes
its pods. The sweeper covers the last gap: a pod whose DAGRun no longer exists loses the finalizer
and is deleted, so no pod is ever orphaned or stuck Terminating.

The decisions (``result_recorded``, ``parse_policy``, ``failed_pod_expiry``) are pure; the two
async functions at the end apply them through the writer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from leoflow.controller.kube.errors import ApiError
from leoflow.controller.kube.informer import Informer
from leoflow.controller.kube.transport import DAGRUNS, PODS
from leoflow.controller.kube.writer import Writer
from leoflow.controller.podnames import ATTEMPT_ANNOTATION, ATTEMPT_LABEL, ITEM_LABEL, RUN_LABEL, TASK_LABEL
from leoflow.spec.fields import parse_duration
from leoflow.spec.resources import IN_FLIGHT_TASK_STATES, TERMINAL_RUN_PHASES, DagRunStatus, TaskState

RESULT_FINALIZER = "leoflow.io/result"
JSON_PATCH = "application/json-patch+json"


class PolicyError(ValueError):
    """A cleanup policy that cannot be read; the message says what is accepted."""


@dataclass(frozen=True)
class CleanupPolicy:
    """``delete_succeeded``: delete a pod as soon as its success is recorded.
    ``failed_ttl``: seconds a failed pod is kept after it finished (None: until the run is deleted)."""

    delete_succeeded: bool = True
    failed_ttl: float | None = None


def parse_policy(text: str) -> CleanupPolicy:
    """``delete-succeeded`` | ``keep-failed-ttl=DURATION`` | ``keep-all``."""
    if text == "delete-succeeded":
        return CleanupPolicy()
    if text == "keep-all":
        return CleanupPolicy(delete_succeeded=False)
    prefix = "keep-failed-ttl="
    if text.startswith(prefix):
        try:
            seconds = parse_duration(text[len(prefix) :])
        except ValueError as exc:
            raise PolicyError(f"cleanup policy {text!r}: {exc}") from None
        if not isinstance(seconds, int | float) or seconds < 0:
            raise PolicyError(f"cleanup policy {text!r}: the TTL must be a duration such as 1h")
        return CleanupPolicy(delete_succeeded=True, failed_ttl=float(seconds))
    raise PolicyError(
        f"unknown cleanup policy {text!r}: use delete-succeeded, keep-failed-ttl=DURATION or keep-all"
    )


def has_result_finalizer(pod: Mapping[str, Any]) -> bool:
    finalizers = (pod.get("metadata") or {}).get("finalizers") or []
    return RESULT_FINALIZER in finalizers


def unit_code(status: DagRunStatus, task: int, item: int | None) -> str:
    """The state code ``status`` gives the task, or the fan-out item ``item`` of it; a unit it has
    no code for yet (or a negative item) is pending."""
    codes = status.taskStates if item is None else status.items.get(str(task), "")
    index = task if item is None else item
    return codes[index] if 0 <= index < len(codes) else TaskState.PENDING.value


def _current_code(pod: Mapping[str, Any], task_index: Mapping[str, int], status: DagRunStatus) -> str | None:
    """The state code of the pod's unit when the pod is its current attempt, else None."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    task = task_index.get(str(labels.get(TASK_LABEL, "")))
    attempt = str(labels.get(ATTEMPT_LABEL, ""))
    if task is None or not attempt.isdigit():
        return None
    item_text = labels.get(ITEM_LABEL)
    key = str(task) if item_text is None else f"{task}/{item_text}"
    item = None if item_text is None else (int(item_text) if str(item_text).isdigit() else -1)
    detail = status.tasks.get(key)
    current = detail.attempt if detail is not None else 1
    return unit_code(status, task, item) if current == int(attempt) else None


def result_recorded(pod: Mapping[str, Any], task_index: Mapping[str, int], status: DagRunStatus) -> bool:
    """Whether ``status`` (as stored) no longer has this pod's attempt in flight: its outcome is
    recorded, or it was superseded or stopped, so the pod has nothing more to tell.
    ``task_index`` is the pinned definition's ``DagSpec.task_index()``, computed once per run."""
    if status.phase in TERMINAL_RUN_PHASES:
        return True
    return _current_code(pod, task_index, status) not in IN_FLIGHT_TASK_STATES


def succeeded_attempt(pod: Mapping[str, Any], task_index: Mapping[str, int], status: DagRunStatus) -> bool:
    """Whether ``pod`` ran the attempt ``status`` records as its task's success, and ended so."""
    return pod_succeeded(pod) and _current_code(pod, task_index, status) == TaskState.SUCCEEDED.value


def pod_run_uid(pod: Mapping[str, Any]) -> str:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(ATTEMPT_ANNOTATION, "")).split("/", 1)[0]


def pod_succeeded(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") == "Succeeded"


def pod_failed(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") == "Failed"


def failed_pod_expiry(pod: Mapping[str, Any], policy: CleanupPolicy) -> datetime | None:
    """When a failed pod may be deleted under ``policy`` (None: keep it while its run exists)."""
    if policy.failed_ttl is None or not pod_failed(pod):
        return None
    finished = _finished_at(pod)
    if finished is None:
        return None
    return finished + timedelta(seconds=policy.failed_ttl)


def _finished_at(pod: Mapping[str, Any]) -> datetime | None:
    latest: datetime | None = None
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = ((container or {}).get("state") or {}).get("terminated") or {}
        text = terminated.get("finishedAt")
        if isinstance(text, str):
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                continue
            latest = moment if latest is None or moment > latest else latest
    if latest is None:
        text = (pod.get("metadata") or {}).get("creationTimestamp")
        if isinstance(text, str):
            try:
                latest = datetime.fromisoformat(text)
            except ValueError:
                return None
    return latest


def without_result_finalizer(pod: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The JSON patch that drops our finalizer and nobody else's: the ``test`` op makes it fail
    (422) instead of removing the wrong entry if the list changed since we read it."""
    finalizers = list((pod.get("metadata") or {}).get("finalizers") or [])
    if RESULT_FINALIZER not in finalizers:
        return None
    path = f"/metadata/finalizers/{finalizers.index(RESULT_FINALIZER)}"
    return [{"op": "test", "path": path, "value": RESULT_FINALIZER}, {"op": "remove", "path": path}]


async def drop_result_finalizer(writer: Writer, namespace: str, pod: Mapping[str, Any]) -> None:
    patch = without_result_finalizer(pod)
    if patch is None:
        return
    name = str((pod.get("metadata") or {}).get("name", ""))
    try:
        await writer.call(
            "patch",
            "PATCH",
            PODS.path(namespace, name),
            body=patch,
            content_type=JSON_PATCH,
            retry_conflicts=False,
        )
    except ApiError as exc:
        # 404: gone already; 422: the list changed under us, and the pod event brings us back.
        if not (exc.not_found or exc.code == 422):
            raise


async def release_orphan(writer: Writer, pod: Mapping[str, Any]) -> None:
    """A pod whose run is gone: drop the result finalizer and delete it."""
    metadata = pod.get("metadata") or {}
    namespace = str(metadata.get("namespace", ""))
    await drop_result_finalizer(writer, namespace, pod)
    if not metadata.get("deletionTimestamp"):
        await writer.delete_pod(namespace, str(metadata.get("name", "")), uid=metadata.get("uid"))


async def run_is_gone(writer: Writer, runs: Informer, pod: Mapping[str, Any]) -> bool:
    """Whether the DAGRun that owns ``pod`` (same name and UID) no longer exists: the cache says
    who might be orphaned, a live GET confirms."""
    metadata = pod.get("metadata") or {}
    namespace = str(metadata.get("namespace", ""))
    run = str((metadata.get("labels") or {}).get(RUN_LABEL, ""))
    owner = pod_run_uid(pod)
    cached = runs.get(namespace, run)
    if cached is not None and (cached.get("metadata") or {}).get("uid") == owner:
        return False
    live = await writer.get(DAGRUNS, namespace, run) if run else None
    return live is None or (live.get("metadata") or {}).get("uid") != owner


async def sweep_orphans(writer: Writer, *, pods: Informer, runs: Informer) -> int:
    """Releases and deletes every cached pod whose DAGRun no longer exists; returns how many."""
    if not (pods.has_synced and runs.has_synced):
        return 0
    swept = 0
    for pod in pods.list():
        if await run_is_gone(writer, runs, pod):
            await release_orphan(writer, pod)
            swept += 1
    return swept

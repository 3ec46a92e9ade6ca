"""From a pod the informer delivered to the planner's ``PodObserved``: routing, fencing, fallback.

The pod's labels say which task, item and attempt it runs; its attempt annotation must name this
run's UID, so a pod left over from a deleted run of the same name is never taken for ours. When
the agent's ``Finished`` report never arrived, the agent's termination message (the JSON summary
the kubelet copies into ``state.terminated.message``) still carries the outputs and the agent's
OOM evidence: the pod-status path loses no result the agent could write.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from leoflow.agent_inject.names import VERSION_ANNOTATION
from leoflow.controller.observations import PodObserved
from leoflow.controller.podnames import (
    ATTEMPT_ANNOTATION,
    ATTEMPT_LABEL,
    ITEM_LABEL,
    MAIN_CONTAINER,
    TASK_LABEL,
)
from leoflow.controller.podstatus import (
    ClassifySettings,
    FailureReason,
    PodContext,
    PodObservation,
    PodPhase,
    classify,
)
from leoflow.spec.resources import DagSpec


def observe_pod(
    pod: Mapping[str, Any],
    *,
    dag: DagSpec,
    run_uid: str,
    now: datetime,
    context: PodContext | None = None,
    settings: ClassifySettings | None = None,
) -> PodObserved | None:
    """The observation for ``pod``, or ``None`` when it is not an attempt of this run's tasks."""
    metadata = _mapping(pod.get("metadata"))
    labels = _mapping(metadata.get("labels"))
    annotations = _mapping(metadata.get("annotations"))
    task = dag.task_index().get(str(labels.get(TASK_LABEL, "")))
    attempt = _int(labels.get(ATTEMPT_LABEL))
    item = _int(labels.get(ITEM_LABEL)) if ITEM_LABEL in labels else None
    owner = str(annotations.get(ATTEMPT_ANNOTATION, "")).split("/", 1)[0]
    if task is None or attempt is None or attempt < 1 or owner != run_uid:
        return None
    if ITEM_LABEL in labels and item is None:
        return None
    summary = termination_summary(pod)
    context = context or PodContext()
    if summary.get("oomKilled") is True and not context.agent_oom:
        context = replace(context, agent_oom=True)
    status = classify(pod, now=now, settings=settings, context=context)
    agent_error = summary.get("agentError")
    if isinstance(agent_error, str) and agent_error and status.terminal:
        status = PodObservation(
            PodPhase.FAILED,
            FailureReason.START_ERROR,
            f"{MAIN_CONTAINER}: {agent_error}",
            status.exit_code,
            MAIN_CONTAINER,
            started=False,
        )
    interrupted_by = summary.get("interruptedBy")
    if isinstance(interrupted_by, int) and interrupted_by > 0 and status.phase is PodPhase.SUCCEEDED:
        # The agent forwarded a SIGTERM and the command then exited 0: a handler that swallowed a
        # deletion or eviction, not a finished task (failures.md 20).
        status = PodObservation(
            PodPhase.FAILED,
            FailureReason.INTERRUPTED,
            f"{MAIN_CONTAINER}: exited {status.exit_code or 0} after signal {interrupted_by} reached it: "
            "the pod was deleted, evicted or preempted",
            status.exit_code,
            MAIN_CONTAINER,
        )
    outputs = summary.get("outputs")
    outputs_error = summary.get("outputsError")
    return PodObserved(
        task=task,
        item=item,
        attempt=attempt,
        pod=str(metadata.get("name", "")),
        status=status,
        deleting=bool(metadata.get("deletionTimestamp")),
        outputs={str(k): str(v) for k, v in outputs.items()} if isinstance(outputs, Mapping) else {},
        outputs_error=outputs_error if isinstance(outputs_error, str) else "",
        agent=VERSION_ANNOTATION in annotations,
    )


def termination_summary(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    """The agent's JSON summary from the main container's terminated state, or ``{}``."""
    status = _mapping(pod.get("status"))
    statuses = status.get("containerStatuses")
    for container in statuses if isinstance(statuses, list) else []:
        if not isinstance(container, Mapping) or container.get("name") != MAIN_CONTAINER:
            continue
        terminated = _mapping(_mapping(container.get("state")).get("terminated"))
        message = terminated.get("message")
        if not isinstance(message, str) or not message.startswith("{"):
            return {}
        try:
            parsed = json.loads(message)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def _int(value: Any) -> int | None:
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}

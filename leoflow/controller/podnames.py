"""The identity a task pod carries: its name, labels and annotations.

Names are deterministic per (run, task, fan-out item, attempt), so creating a pod is idempotent:
after a crash the controller re-issues the same create and an ``AlreadyExists`` answer means
"adopt it", once the attempt annotation proves the existing pod is the same attempt and not a
name collision. The name reads like ``leoflow.spec.resources.pod_name`` (``<run>-<task>[-<item>]-<attempt>``)
and always ends in a hash of the unambiguous identity: the readable form alone is ambiguous (task
``x-0`` attempt 1 and item 0 of task ``x`` are both ``<run>-x-0-1``; run ``a-b`` task ``c`` and
run ``a`` task ``b-c`` too). This module also holds the labels the webhook and the informers
select on and the annotation the adoption check reads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

# The labels the webhook's env and the controller's pods share are defined once, in agent_inject.
from leoflow.agent_inject.names import ATTEMPT_LABEL, DAG_LABEL, INJECT_LABEL, RUN_LABEL, TASK_LABEL

__all__ = [
    "ATTEMPT_ANNOTATION",
    "ATTEMPT_LABEL",
    "DAG_LABEL",
    "DEFINITION_ANNOTATION",
    "INJECT_LABEL",
    "ITEM_LABEL",
    "MAIN_CONTAINER",
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "RUN_LABEL",
    "TASK_LABEL",
    "AttemptKey",
    "attempt_pod_name",
    "is_same_attempt",
    "pod_labels",
]

ITEM_LABEL = "leoflow.io/item"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "leoflow"
ATTEMPT_ANNOTATION = "leoflow.io/attempt-id"
DEFINITION_ANNOTATION = "leoflow.io/definition-hash"
MAIN_CONTAINER = "main"


@dataclass(frozen=True, order=True)
class AttemptKey:
    """One pod's worth of work: attempt ``attempt`` (from 1) of task ``task``, item ``item``."""

    run_uid: str
    task: str
    item: int | None
    attempt: int

    def annotation(self) -> str:
        item = "" if self.item is None else str(self.item)
        return f"{self.run_uid}/{self.task}/{item}/{self.attempt}"


MAX_POD_NAME = 63
_HASH_CHARS = 8


def attempt_pod_name(run: str, key: AttemptKey) -> str:
    """At most 63 characters (so the pod's hostname is its name), a DNS-1123 label."""
    item = "" if key.item is None else str(key.item)
    # The run's UID is in the hash so a re-created run of the same name never meets the old pods.
    identity = f"{key.run_uid}/{run}/{key.task}/{item}/{key.attempt}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:_HASH_CHARS]
    tail = f"{item}-{key.attempt}-{digest}" if item else f"{key.attempt}-{digest}"
    room = MAX_POD_NAME - len(tail) - 1
    task = key.task[: max(room // 2, room - len(run) - 1)].strip("-")
    head = run[: max(room - len(task) - 1, 0)].strip("-")
    return "-".join(part for part in (head, task, tail) if part)


def pod_labels(dag: str, run: str, key: AttemptKey) -> dict[str, str]:
    labels = {
        INJECT_LABEL: "true",
        DAG_LABEL: dag,
        RUN_LABEL: run,
        TASK_LABEL: key.task,
        ATTEMPT_LABEL: str(key.attempt),
        MANAGED_BY_LABEL: MANAGED_BY,
    }
    if key.item is not None:
        labels[ITEM_LABEL] = str(key.item)
    return labels


def is_same_attempt(existing_pod: Mapping[str, object], key: AttemptKey) -> bool:
    """Whether a pod found under our deterministic name is this attempt (adopt) or a collision."""
    metadata = existing_pod.get("metadata")
    if not isinstance(metadata, Mapping):
        return False
    annotations = metadata.get("annotations")
    return isinstance(annotations, Mapping) and annotations.get(ATTEMPT_ANNOTATION) == key.annotation()

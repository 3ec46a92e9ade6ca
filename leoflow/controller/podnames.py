"""The identity a task pod carries: its name, labels and annotations.

Names are deterministic per (run, task, fan-out item, attempt), so creating a pod is idempotent:
after a crash the controller re-issues the same create and an ``AlreadyExists`` answer means
"adopt it", once the attempt annotation proves the existing pod is the same attempt and not a
name collision. The name itself comes from ``leoflow.spec.resources.pod_name`` (one rule shared
with the compiler and the CLI); this module adds the labels the webhook and the informers select
on and the annotation the adoption check reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from leoflow.spec.resources import pod_name

INJECT_LABEL = "leoflow.io/inject"
DAG_LABEL = "leoflow.io/dag"
RUN_LABEL = "leoflow.io/run"
TASK_LABEL = "leoflow.io/task"
ITEM_LABEL = "leoflow.io/item"
ATTEMPT_LABEL = "leoflow.io/attempt"
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


def attempt_pod_name(run: str, key: AttemptKey) -> str:
    return pod_name(run, key.task, key.attempt, key.item)


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

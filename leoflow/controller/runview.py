"""Read a DAGRun object (JSON, as the API server returns it) into the planner's ``RunView``.

Requests that are not part of the DAGRun spec yet travel as annotations, so kubectl can make
them (``kubectl annotate dagrun R leoflow.io/cancel=true``):

- ``leoflow.io/cancel: "true"``: stop the run; in-flight pods are deleted;
- ``leoflow.io/retry: "<n>"``: retry generation; raising it re-runs a failed run's failed tasks;
- ``leoflow.io/max-active-tasks: "<n>"``: cap on pods in flight for this run;
- ``leoflow.io/timeout: "<duration>"``: run timeout (``90m``, ``2h``, seconds).

A malformed value is a ``RunViewError`` naming the annotation and what it expects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from leoflow.controller.planner import RunView
from leoflow.spec.fields import parse_duration
from leoflow.spec.resources import DagRunSpec, DagRunStatus

CANCEL_ANNOTATION = "leoflow.io/cancel"
RETRY_ANNOTATION = "leoflow.io/retry"
MAX_ACTIVE_ANNOTATION = "leoflow.io/max-active-tasks"
TIMEOUT_ANNOTATION = "leoflow.io/timeout"


class RunViewError(ValueError):
    """A DAGRun the planner cannot read; the message says which field and why."""


@dataclass(frozen=True)
class RunDefaults:
    """Controller-wide values used when a run does not say otherwise."""

    max_active_tasks: int | None = None
    timeout_seconds: int | None = None


def run_view(obj: Mapping[str, Any], defaults: RunDefaults | None = None) -> RunView:
    defaults = defaults or RunDefaults()
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping):
        raise RunViewError("DAGRun has no metadata")
    name = str(metadata.get("name") or "")
    where = f"DAGRun {metadata.get('namespace', '')}/{name}"
    annotations = metadata.get("annotations")
    notes: Mapping[str, Any] = annotations if isinstance(annotations, Mapping) else {}
    try:
        spec = DagRunSpec.model_validate(obj.get("spec") or {})
        status = DagRunStatus.model_validate(obj.get("status") or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first["loc"])
        raise RunViewError(f"{where}: {path}: {first['msg']}") from None
    created = _timestamp(metadata.get("creationTimestamp"))
    if created is None:
        raise RunViewError(f"{where}: metadata.creationTimestamp is missing or malformed")
    max_active = _count(where, notes, MAX_ACTIVE_ANNOTATION, minimum=1)
    timeout = _duration(where, notes)
    return RunView(
        dag=spec.dagName,
        name=name,
        namespace=str(metadata.get("namespace") or ""),
        uid=str(metadata.get("uid") or ""),
        spec=spec,
        status=status,
        created=created,
        cancel_requested=_flag(where, notes, CANCEL_ANNOTATION),
        retry_generation=_count(where, notes, RETRY_ANNOTATION, minimum=0) or 0,
        max_active_tasks=max_active if max_active is not None else defaults.max_active_tasks,
        timeout_seconds=timeout if timeout is not None else defaults.timeout_seconds,
    )


def _flag(where: str, notes: Mapping[str, Any], key: str) -> bool:
    value = notes.get(key)
    if value is None or value == "false":
        return False
    if value == "true":
        return True
    raise RunViewError(f'{where}: annotation {key} must be "true" or "false", got {value!r}')


def _count(where: str, notes: Mapping[str, Any], key: str, *, minimum: int) -> int | None:
    value = notes.get(key)
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit() and int(value) >= minimum:
        return int(value)
    raise RunViewError(
        f"{where}: annotation {key} must be a whole number of at least {minimum}, got {value!r}"
    )


def _duration(where: str, notes: Mapping[str, Any]) -> int | None:
    value = notes.get(TIMEOUT_ANNOTATION)
    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise RunViewError(f"{where}: annotation {TIMEOUT_ANNOTATION}: {exc}") from None
    if not isinstance(seconds, int) or seconds <= 0:
        raise RunViewError(
            f"{where}: annotation {TIMEOUT_ANNOTATION} must be a positive duration, got {value!r}"
        )
    return seconds


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None

"""Is a Kubernetes object what the sensor waits for? Pure functions over the object's JSON.

A Kubernetes sensor names one object and asks for a condition (``Complete`` means the condition of
that type has status ``True``; ``Ready=False`` asks for another status), a JSON path (present, or
equal to ``jsonValue``), or both; with neither, the object existing is enough. Some conditions
exclude each other for good: a Job that has ``Failed`` will never be ``Complete``, and waiting for
it until the timeout would only hide the failure, so that is a permanent error.

A DAG-run sensor is the same question about a ``DAGRun``: the run of DAG ``dag`` for the logical
date, in a terminal phase (or one of its tasks in a terminal state). Reaching a different terminal
state is again a permanent error.
"""

from __future__ import annotations

from dataclasses import dataclass

from leoflow.controller.sensors import jsonpath
from leoflow.controller.sensors.outcomes import Poke
from leoflow.spec.resources import TERMINAL_RUN_PHASES, RunPhase, TaskState

KubeObject = dict[str, object]

# (kind, the condition waited for) -> conditions that mean it can no longer come true.
_EXCLUSIVE_CONDITIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("Job", "Complete"): ("Failed",),
    ("Job", "SuccessCriteriaMet"): ("Failed", "FailureTarget"),
}

_TASK_CODES = {
    "Succeeded": (TaskState.SUCCEEDED,),
    "Failed": (TaskState.FAILED, TaskState.UPSTREAM_FAILED),
    "Cancelled": (TaskState.CANCELLED,),
}
_TERMINAL_TASK_CODES = frozenset(
    {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.UPSTREAM_FAILED, TaskState.SKIPPED, TaskState.CANCELLED}
)


class PredicateError(ValueError):
    """A sensor condition that cannot be understood."""


@dataclass(frozen=True, slots=True)
class ObjectCondition:
    kind: str
    condition_type: str | None
    condition_status: str
    path: tuple[jsonpath.Step, ...] | None
    path_text: str | None
    expected: str | None

    @classmethod
    def parse(
        cls, kind: str, condition: str | None, json_path: str | None, json_value: str | None
    ) -> ObjectCondition:
        condition_type, status = None, "True"
        if condition is not None:
            condition_type, _, given = condition.partition("=")
            condition_type = condition_type.strip()
            status = given.strip() or "True"
            if not condition_type or status not in ("True", "False", "Unknown"):
                raise PredicateError(
                    f"condition {condition!r} must be a condition type, optionally '=True|False|Unknown'"
                )
        if json_value is not None and json_path is None:
            raise PredicateError("jsonValue needs a jsonPath to compare against")
        path = jsonpath.parse(json_path) if json_path is not None else None
        return cls(kind, condition_type, status, path, json_path, json_value)

    def evaluate(self, obj: KubeObject | None) -> Poke:
        if obj is None:
            return Poke.not_yet(f"the {self.kind} does not exist yet")
        value: object = None
        if self.condition_type is not None:
            conditions = _conditions(obj)
            for blocker in _EXCLUSIVE_CONDITIONS.get((self.kind, self.condition_type), ()):
                if conditions.get(blocker, ("", ""))[0] == "True" and self.condition_status == "True":
                    message = conditions[blocker][1]
                    return Poke.permanent(
                        f"the {self.kind} has condition {blocker}=True and can no longer become "
                        f"{self.condition_type}" + (f": {message}" if message else "")
                    )
            status = conditions.get(self.condition_type, ("", ""))[0]
            if status != self.condition_status:
                shown = status or "absent"
                return Poke.not_yet(
                    f"condition {self.condition_type} is {shown}, waiting for {self.condition_status}"
                )
        if self.path is not None:
            found, value = jsonpath.lookup(obj, self.path)
            if not found or value is None:
                return Poke.not_yet(f"{self.path_text} is not set")
            if self.expected is not None and not jsonpath.value_matches(value, self.expected):
                return Poke.not_yet(f"{self.path_text} is {value!r}, waiting for {self.expected!r}")
        return Poke.satisfied(value)


def _conditions(obj: KubeObject) -> dict[str, tuple[str, str]]:
    status = obj.get("status")
    items = status.get("conditions") if isinstance(status, dict) else None
    found: dict[str, tuple[str, str]] = {}
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("type"), str):
                found[item["type"]] = (str(item.get("status", "")), str(item.get("message", "")))
    return found


@dataclass(frozen=True, slots=True)
class RunCondition:
    """Waits for the DAGRun of ``dag`` at ``logical_date`` (or its task ``task``) to reach ``state``."""

    dag: str
    logical_date: str
    state: str
    task: str | None

    def selects(self, run: KubeObject) -> bool:
        spec = run.get("spec")
        return (
            isinstance(spec, dict)
            and spec.get("dagName") == self.dag
            and spec.get("logicalDate") == self.logical_date
        )

    def evaluate(self, run: KubeObject | None, task_index: int | None) -> Poke:
        what = f"run of DAG {self.dag} at {self.logical_date}"
        if run is None:
            return Poke.not_yet(f"no {what} exists yet")
        status = run.get("status")
        status = status if isinstance(status, dict) else {}
        name = _name(run)
        if self.task is None:
            phase = str(status.get("phase") or RunPhase.PENDING.value)
            if phase == self.state:
                return Poke.satisfied(name, f"{what} ({name}) is {phase}")
            if phase in TERMINAL_RUN_PHASES:
                return Poke.permanent(f"{what} ({name}) ended {phase}, not {self.state}")
            return Poke.not_yet(f"{what} ({name}) is {phase}")
        if task_index is None:
            return Poke.not_yet(f"the definition of {what} ({name}) is not known yet")
        codes = str(status.get("taskStates") or "")
        if task_index >= len(codes):
            return Poke.not_yet(f"task {self.task} of {name} has not started")
        code = codes[task_index]
        if code in _TASK_CODES[self.state]:
            return Poke.satisfied(name, f"task {self.task} of {name} is {self.state}")
        if code in _TERMINAL_TASK_CODES:
            return Poke.permanent(
                f"task {self.task} of {what} ({name}) ended {_task_state_name(code)}, not {self.state}"
            )
        return Poke.not_yet(f"task {self.task} of {name} is {_task_state_name(code)}")


def _name(obj: KubeObject) -> str:
    metadata = obj.get("metadata")
    return str(metadata.get("name", "")) if isinstance(metadata, dict) else ""


def _task_state_name(code: str) -> str:
    try:
        return TaskState(code).name.lower()
    except ValueError:
        return f"in state {code!r}"

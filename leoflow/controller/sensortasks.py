"""A DAGRun's sensor tasks as the sensor engine sees them: keys, rendered specs, poke pods, state.

The planner decides when a sensor task starts and ends; the engine waits. Between them sit the
pieces here, all pure:

- the engine key of a sensor task (``<namespace>/<run>#<run uid>#<task index>``), so a re-created
  run of the same name never meets the old run's sensors;
- the sensor with every template rendered (URL, header values, object names, logical date,
  command), since the engine reads strings literally;
- the pod a command sensor runs per poke: the task's image, env and placement (built by the same
  ``build_pod`` as task pods), named per poke so a restarted controller adopts it; it carries no
  ``managed-by`` label and no agent opt-in, so neither the task-pod informer nor an agent report
  ever takes a poke pod for the task's own attempt;
- the state to resume from after a restart: the one the run status recorded
  (``TaskDetail.sensorState``), else a fresh one counting from the task's ``startTime``.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from leoflow.controller.planner import RunView
from leoflow.controller.podnames import (
    ATTEMPT_ANNOTATION,
    ATTEMPT_LABEL,
    INJECT_LABEL,
    MANAGED_BY_LABEL,
    AttemptKey,
    attempt_pod_name,
)
from leoflow.controller.podspec import PodBuildSettings, build_pod
from leoflow.controller.sensors.commands import CommandRequest
from leoflow.controller.sensors.engine import SensorSpecError
from leoflow.controller.sensors.state import SensorState, SensorStateError
from leoflow.spec.resources import CompiledSensor, CompiledTimeSensor, DagSpec, TaskDetail
from leoflow.spec.templates import RenderContext, render

log = logging.getLogger(__name__)

POKE_LABEL = "leoflow.io/sensor-poke"
"""On every command sensor's poke pod (value ``"true"``): ``kubectl get pods -l`` finds them."""

PodAnnotator = Callable[[Mapping[str, Any]], Mapping[str, str]]


def sensor_key_of(key: str, uid: str, task: int) -> str:
    return f"{key}#{uid}#{task}"


def split_sensor_key(sensor_key: str) -> tuple[str, str, int]:
    key, uid, task = sensor_key.rsplit("#", 2)
    return key, uid, int(task)


def render_context(dag: DagSpec, view: RunView) -> RenderContext:
    params = {p.name: p.default for p in dag.params if p.default is not None}
    params.update(view.spec.params)
    outputs = {
        dag.tasks[int(k)].name: dict(d.outputs)
        for k, d in view.status.tasks.items()
        if d.outputs and k.isdigit() and int(k) < len(dag.tasks)
    }
    logical = view.spec.logicalDate or view.created.isoformat().replace("+00:00", "Z")
    return RenderContext(logical_date=logical, run_id=view.name, params=params, outputs=outputs)


def render_sensor(sensor: CompiledSensor, context: RenderContext) -> CompiledSensor:
    """The sensor with every string rendered (the compiler checked that each template resolves),
    and a time sensor's ``delay`` turned into the moment it means: the run's logical date plus
    the delay, as Airflow's TimeDeltaSensor counts. So a catch-up run whose logical date is long
    past does not wait the delay again, and a restarted controller keeps the same target.
    A rendered value the sensor cannot take (a param that puts a line break in a header) is a
    :class:`SensorSpecError`, which fails the task with the reason."""
    try:
        rendered = CompiledSensor.model_validate(_render_strings(sensor.model_dump(), context))
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in err.errors(include_url=False)
        )
        raise SensorSpecError(f"the sensor's rendered templates are not valid: {problems}") from None
    if rendered.time is None or rendered.time.delaySeconds is None or rendered.time.at is not None:
        return rendered
    try:
        logical = datetime.fromisoformat(context.logical_date)
    except ValueError:
        raise SensorSpecError(
            f"the run's logical date {context.logical_date!r} is not an ISO 8601 date-time, "
            "so the time sensor's delay has nothing to count from"
        ) from None
    if logical.tzinfo is None:
        logical = logical.replace(tzinfo=UTC)
    at = (logical + timedelta(seconds=rendered.time.delaySeconds)).isoformat()
    return rendered.model_copy(update={"time": CompiledTimeSensor(at=at)})


def _render_strings(value: Any, context: RenderContext) -> Any:
    if isinstance(value, str):
        return render(value, context)
    if isinstance(value, list):
        return [_render_strings(v, context) for v in value]
    if isinstance(value, dict):
        return {k: _render_strings(v, context) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class PokePod:
    """What a command sensor's pod builder needs, passed to the engine as the sensor's context:
    the pod of poke 1, from which each poke's pod differs only in its name and poke number."""

    run: str
    run_uid: str
    task: str
    template: dict[str, Any]


def poke_pod(
    dag: DagSpec,
    view: RunView,
    task_index: int,
    sensor: CompiledSensor,
    context: RenderContext,
    *,
    settings: PodBuildSettings | None = None,
) -> PokePod:
    """The command sensor task's pod template, built like a task pod running the sensor's command."""
    command = sensor.command
    assert command is not None
    task = dag.tasks[task_index].model_copy(
        update={"command": list(command.command), "args": command.args, "sensor": None}
    )
    as_pod_task = dag.model_copy(
        update={"tasks": [*dag.tasks[:task_index], task, *dag.tasks[task_index + 1 :]]}
    )
    pod = build_pod(
        as_pod_task, view.identity, task_index, attempt=1, item=None, context=context, settings=settings
    )
    metadata = pod["metadata"]
    for label in (INJECT_LABEL, MANAGED_BY_LABEL):
        metadata["labels"].pop(label, None)
    metadata["labels"][POKE_LABEL] = "true"
    metadata["annotations"].pop(ATTEMPT_ANNOTATION, None)
    return PokePod(run=view.name, run_uid=view.uid, task=task.name, template=pod)


class PokePodBuilder:
    """``build_pod`` for :class:`~leoflow.controller.sensors.pods.PodCommandLauncher`: the pod of
    one poke, from the :class:`PokePod` the controller gave the engine with the sensor."""

    def __init__(self, annotate: PodAnnotator | None = None) -> None:
        self._annotate = annotate

    def __call__(self, request: CommandRequest) -> dict[str, Any]:
        context = request.context
        if not isinstance(context, PokePod):
            raise TypeError(f"command sensor {request.key} was added without its PokePod context")
        pod = copy.deepcopy(context.template)
        metadata = pod["metadata"]
        metadata["name"] = attempt_pod_name(
            context.run, AttemptKey(context.run_uid, context.task, None, request.attempt)
        )
        metadata["labels"][ATTEMPT_LABEL] = str(request.attempt)
        if self._annotate is not None:
            extra = self._annotate(pod)
            if extra:
                metadata["annotations"] = {**metadata.get("annotations", {}), **extra}
        return pod


def resume_state(detail: TaskDetail | None, now: datetime, *, where: str) -> SensorState:
    """Where a sensor task picks up after a restart: its recorded state, else fresh from its start."""
    stored = detail.sensorState if detail is not None else None
    if stored:
        try:
            return SensorState.decode(stored)
        except SensorStateError as exc:
            log.warning("ignoring an unreadable sensor state", extra={"sensor": where, "error": str(exc)})
    started = now
    if detail is not None and detail.startTime:
        with contextlib.suppress(ValueError):
            started = datetime.fromisoformat(detail.startTime)
    return SensorState(started_at=started.timestamp(), next_poke_at=now.timestamp())

"""Sensor tasks between the planner and the engine: recorded progress, rendering, poke pods, resume."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from leoflow.controller.actions import UpdateRunStatus
from leoflow.controller.metrics import ControllerMetrics
from leoflow.controller.observations import SensorFinished, SensorProgress
from leoflow.controller.podnames import ATTEMPT_ANNOTATION, ATTEMPT_LABEL, INJECT_LABEL, MANAGED_BY_LABEL
from leoflow.controller.reconcile import RunReconciler
from leoflow.controller.sensors import CommandRequest, SensorSpecError, SensorState
from leoflow.controller.sensortasks import (
    POKE_LABEL,
    PokePodBuilder,
    poke_pod,
    render_context,
    render_sensor,
    resume_state,
    sensor_key_of,
)
from leoflow.controller.workqueue import WorkQueue
from leoflow.spec.resources import CompiledParam, CompiledSensor, DagSpec, TaskDetail, TaskState

from .dags import dag
from .podfixtures import T0
from .runsim import Sim

STATE = SensorState(1_700_000_000.0, 1_700_000_030.0, 3, 1).encode()


def sensor_dag(sensor: CompiledSensor) -> DagSpec:
    spec = dag({"wait": [], "go": ["wait"]})
    tasks = [spec.tasks[0].model_copy(update={"command": None, "sensor": sensor, "templated": True})]
    return spec.model_copy(update={"tasks": [*tasks, *spec.tasks[1:]]})


HTTP = CompiledSensor.model_validate({"http": {"url": "http://x/{{ run_id }}"}})


def test_progress_is_recorded_for_a_waiting_sensor_and_dropped_when_it_ends() -> None:
    sim = Sim.start(sensor_dag(HTTP))
    sim.step()
    actions = sim.step(SensorProgress(0, STATE))
    assert any(isinstance(a, UpdateRunStatus) for a in actions)
    assert sim.run.status.tasks["0"].sensorState == STATE
    assert not any(isinstance(a, UpdateRunStatus) for a in sim.step(SensorProgress(0, STATE))), (
        "the same state again writes nothing"
    )
    sim.step(SensorFinished(0, succeeded=False, soft_fail=True, message="timed out"))
    assert sim.state("wait") is TaskState.SKIPPED
    assert sim.run.status.tasks["0"].sensorState is None


def test_progress_for_a_task_that_is_not_waiting_is_ignored() -> None:
    sim = Sim.start(sensor_dag(HTTP))
    sim.step()
    sim.step(SensorFinished(0, succeeded=True))
    status = sim.run.status
    sim.step(SensorProgress(0, STATE), SensorProgress(1, STATE))
    assert sim.run.status == status


def test_every_sensor_string_is_rendered() -> None:
    spec = sensor_dag(HTTP)
    sim = Sim.start(spec)
    sensor = CompiledSensor.model_validate(
        {
            "http": {
                "url": "http://x/{{ run_id }}",
                "headers": {"X-Day": "{{ logical_date }}"},
                "headersFrom": {"Authorization": {"secret": "{{ run_id }}-token", "key": "t"}},
            }
        }
    )
    context = render_context(spec, sim.run)
    rendered = render_sensor(sensor, context)
    assert rendered.http is not None
    assert rendered.http.url == f"http://x/{sim.run.name}"
    assert rendered.http.headers == {"X-Day": context.logical_date}
    assert context.logical_date.startswith("20")
    assert rendered.http.headersFrom["Authorization"].secret == f"{sim.run.name}-token"


def test_a_time_sensors_delay_counts_from_the_runs_logical_date_not_from_when_it_starts() -> None:
    # A catch-up run for a day long past must not wait the delay again (Airflow's TimeDeltaSensor).
    sensor = CompiledSensor.model_validate({"time": {"delaySeconds": 600}})
    spec = sensor_dag(sensor)
    sim = Sim.start(spec)
    scheduled = replace(sim.run, spec=sim.run.spec.model_copy(update={"logicalDate": "2026-01-01T00:00:00Z"}))
    rendered = render_sensor(sensor, render_context(spec, scheduled))
    assert rendered.time is not None
    assert (rendered.time.delaySeconds, rendered.time.at) == (None, "2026-01-01T00:10:00+00:00")
    manual = render_sensor(sensor, render_context(spec, sim.run))
    assert manual.time is not None and manual.time.at is not None
    assert datetime.fromisoformat(manual.time.at) == sim.run.created + timedelta(seconds=600), (
        "a run without a logical date counts from its creation"
    )


def test_poke_pods_run_the_command_with_the_task_image_and_never_pass_for_task_pods() -> None:
    sensor = CompiledSensor.model_validate({"command": {"command": ["test", "-e", "/ready/{{ run_id }}"]}})
    spec = sensor_dag(sensor)
    sim = Sim.start(spec)
    context = render_context(spec, sim.run)
    template = poke_pod(spec, sim.run, 0, render_sensor(sensor, context), context)
    build = PokePodBuilder(lambda pod: {"kwok": pod["metadata"]["labels"][ATTEMPT_LABEL]})
    first = build(CommandRequest("k", sim.run.namespace, 1, (), (), context=template))
    second = build(CommandRequest("k", sim.run.namespace, 2, (), (), context=template))
    container = first["spec"]["containers"][0]
    assert container["command"] == ["test", "-e", f"/ready/{sim.run.name}"]
    assert container["image"] == spec.profiles[0].image
    labels = first["metadata"]["labels"]
    assert labels[POKE_LABEL] == "true" and labels[ATTEMPT_LABEL] == "1"
    assert INJECT_LABEL not in labels and MANAGED_BY_LABEL not in labels
    assert ATTEMPT_ANNOTATION not in first["metadata"]["annotations"]
    assert first["metadata"]["annotations"]["kwok"] == "1"
    assert second["metadata"]["labels"][ATTEMPT_LABEL] == "2"
    assert first["metadata"]["name"] != second["metadata"]["name"]
    assert first["metadata"]["ownerReferences"][0]["uid"] == sim.run.uid
    assert template.template["metadata"]["labels"][ATTEMPT_LABEL] == "1", "the template is not changed"


def test_resume_prefers_the_recorded_state_over_the_start_time() -> None:
    now = datetime(2026, 1, 1, 0, 10, tzinfo=UTC)
    recorded = resume_state(TaskDetail(startTime=T0.isoformat(), sensorState=STATE), now, where="k")
    assert recorded == SensorState.decode(STATE)
    fresh = resume_state(TaskDetail(startTime=T0.isoformat()), now, where="k")
    assert (fresh.started_at, fresh.next_poke_at, fresh.attempts) == (T0.timestamp(), now.timestamp(), 0)
    unreadable = resume_state(TaskDetail(startTime=T0.isoformat(), sensorState="garbage"), now, where="k")
    assert unreadable == fresh


def test_a_rendered_value_the_sensor_cannot_take_is_a_spec_error() -> None:
    spec = dag({"wait": []})
    spec = spec.model_copy(update={"params": [CompiledParam(name="tag", default="a\nX-Evil: 1")]})
    sim = Sim.start(spec)
    sensor = CompiledSensor.model_validate(
        {"http": {"url": "http://x/", "headers": {"X-Tag": "{{ params.tag }}"}}}
    )
    with pytest.raises(SensorSpecError, match=r"http\.headers\.X-Tag: .*line break"):
        render_sensor(sensor, render_context(spec, sim.run))


class ChangedSensors:
    """The engine's ``take_changed`` and ``state``, over a fixed list of changed sensor keys."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys

    def take_changed(self, limit: int) -> list[str]:
        taken, self.keys = self.keys[:limit], self.keys[limit:]
        return taken


async def test_progress_notes_queue_each_run_once_and_at_most_a_batch_of_sensors() -> None:
    queue = WorkQueue()
    reconciler = RunReconciler(
        writer=None,  # type: ignore[arg-type]
        runs=None,  # type: ignore[arg-type]
        dags=None,  # type: ignore[arg-type]
        pods=None,  # type: ignore[arg-type]
        queue=queue,
        metrics=ControllerMetrics(CollectorRegistry()),
    )
    keys = [sensor_key_of("ns/a", "u1", 0), sensor_key_of("ns/a", "u1", 1), sensor_key_of("ns/b", "u2", 0)]
    reconciler.sensors = ChangedSensors(keys)  # type: ignore[assignment]
    assert reconciler.note_sensor_progress(2) == 2
    assert len(queue) == 1, "two sensors of one run: one reconcile"
    assert reconciler.note_sensor_progress(2) == 1
    assert len(queue) == 2
    assert reconciler.note_sensor_progress(2) == 0

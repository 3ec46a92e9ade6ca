from __future__ import annotations

import json
from typing import Any

from leoflow.controller.podobserve import observe_pod
from leoflow.controller.podspec import RunIdentity, build_pod
from leoflow.controller.podstatus import FailureReason, PodPhase
from leoflow.spec.resources import CompiledFanOut, DagSpec, TaskState
from leoflow.spec.templates import RenderContext

from .dags import dag
from .podfixtures import T0, at, running, terminated
from .runsim import Sim

SPEC = dag(
    {"extract": [], "load": ["extract"], "each": []},
    outputs={"extract": ["rows"]},
    commands={"load": ["load", "{{ tasks.extract.outputs.rows }}"]},
    fan_out={"each": CompiledFanOut(items=["a", "b"])},
)
RUN = RunIdentity(dag="etl", name="etl-run-1", namespace="ns", uid="uid-1")
CONTEXT = RenderContext(logical_date="d", run_id="etl-run-1", params={}, outputs={}, item="b")


def _pod(
    spec: DagSpec,
    task: int,
    *,
    attempt: int = 1,
    item: int | None = None,
    container: Any = None,
    phase: str = "Running",
) -> dict[str, Any]:
    pod = build_pod(spec, RUN, task, attempt=attempt, item=item, context=CONTEXT)
    pod["status"] = {"phase": phase, "containerStatuses": [container or running()]}
    return pod


def _summary(**fields: Any) -> str:
    return json.dumps({"exitCode": 0, "durationMs": 5, "agentVersion": "v0.1.0", **fields})


def test_pod_is_routed_to_its_task_item_and_attempt() -> None:
    obs = observe_pod(_pod(SPEC, 2, attempt=3, item=1), dag=SPEC, run_uid="uid-1", now=at(10))
    assert obs is not None
    assert (obs.task, obs.item, obs.attempt) == (2, 1, 3)
    assert obs.status.phase is PodPhase.RUNNING
    assert obs.pod.startswith("etl-run-1-each-1-3-")


def test_pod_the_webhook_injected_is_seen_to_carry_the_agent() -> None:
    plain = _pod(SPEC, 0)
    injected = _pod(SPEC, 0)
    injected["metadata"]["annotations"]["leoflow.io/agent-version"] = "v0.1.0"
    seen = [observe_pod(p, dag=SPEC, run_uid="uid-1", now=at(10)) for p in (plain, injected)]
    assert [o.agent if o is not None else None for o in seen] == [False, True]


def test_pod_of_a_deleted_run_with_the_same_name_is_not_ours() -> None:
    assert observe_pod(_pod(SPEC, 0), dag=SPEC, run_uid="uid-2", now=at(10)) is None


def test_pod_naming_an_unknown_task_or_no_attempt_is_ignored() -> None:
    pod = _pod(SPEC, 0)
    pod["metadata"]["labels"]["leoflow.io/task"] = "gone"
    assert observe_pod(pod, dag=SPEC, run_uid="uid-1", now=at(10)) is None
    pod = _pod(SPEC, 0)
    pod["metadata"]["labels"]["leoflow.io/attempt"] = "x"
    assert observe_pod(pod, dag=SPEC, run_uid="uid-1", now=at(10)) is None


def test_outputs_come_back_through_the_termination_message_when_the_agent_report_was_lost() -> None:
    done = terminated("main", 0, message=_summary(outputs={"rows": "42"}))
    obs = observe_pod(_pod(SPEC, 0, container=done, phase="Succeeded"), dag=SPEC, run_uid="uid-1", now=at(30))
    assert obs is not None
    assert obs.outputs == {"rows": "42"}
    sim = Sim.start(SPEC)
    sim.step(now=T0)
    sim.step(obs, now=at(30))
    load = next(c for c in sim.created if c.task == 1)
    assert load.pod["spec"]["containers"][0]["command"] == ["load", "42"]


def test_agent_oom_evidence_in_the_termination_message_names_exit_137_oomkilled() -> None:
    killed = terminated("main", 137, "Error", message=_summary(exitCode=137, oomKilled=True))
    obs = observe_pod(_pod(SPEC, 0, container=killed, phase="Failed"), dag=SPEC, run_uid="uid-1", now=at(30))
    assert obs is not None
    assert obs.status.reason is FailureReason.OOM_KILLED


def test_agent_error_in_the_termination_message_is_a_start_error() -> None:
    failed = terminated("main", 127, "Error", message=_summary(exitCode=127, agentError="exec: not found"))
    obs = observe_pod(_pod(SPEC, 0, container=failed, phase="Failed"), dag=SPEC, run_uid="uid-1", now=at(30))
    assert obs is not None
    assert obs.status.reason is FailureReason.START_ERROR
    assert "exec: not found" in obs.status.message


def test_exit_0_after_a_forwarded_sigterm_is_an_interruption_not_a_success() -> None:
    # What the pod says when the agent's Terminating and Finished never reached the controller.
    swallowed = terminated("main", 0, "Completed", message=_summary(interruptedBy=15))
    obs = observe_pod(
        _pod(SPEC, 0, container=swallowed, phase="Succeeded"), dag=SPEC, run_uid="uid-1", now=at(30)
    )
    assert obs is not None
    assert (obs.status.phase, obs.status.reason) == (PodPhase.FAILED, FailureReason.INTERRUPTED)
    assert "after signal 15" in obs.status.message


def test_refused_outputs_in_the_termination_message_fail_the_task() -> None:
    done = terminated("main", 0, message=_summary(outputsError="output 'rows' is over 64 KiB"))
    obs = observe_pod(_pod(SPEC, 0, container=done, phase="Succeeded"), dag=SPEC, run_uid="uid-1", now=at(30))
    assert obs is not None
    sim = Sim.start(SPEC)
    sim.step()
    sim.step(obs, now=at(30))
    assert sim.state("extract") is TaskState.FAILED
    assert sim.run.status.tasks["0"].reason == "OutputsError"


def test_plain_text_termination_message_of_a_pod_without_agent_is_ignored() -> None:
    done = terminated("main", 1, message="panic: something broke")
    obs = observe_pod(_pod(SPEC, 0, container=done, phase="Failed"), dag=SPEC, run_uid="uid-1", now=at(30))
    assert obs is not None
    assert obs.status.reason is FailureReason.USER_ERROR
    assert obs.outputs == {}

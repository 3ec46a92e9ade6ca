from __future__ import annotations

from datetime import timedelta

import pytest

from leoflow.controller.actions import EmitEvent, StartSensor, StopSensor
from leoflow.controller.observations import SensorFinished
from leoflow.controller.planner import PlanError, PlanSettings
from leoflow.controller.podstatus import FailureReason, PodPhase
from leoflow.spec.resources import (
    CompiledFanOut,
    CompiledParam,
    CompiledSensor,
    CompiledTimeSensor,
    DagRunSpec,
    RunPhase,
    TaskState,
)

from .dags import dag
from .podfixtures import T0, at
from .runsim import Sim

CHAIN = {"extract": [], "transform": ["extract"], "load": ["transform"]}


def test_first_plan_creates_pods_for_root_tasks_only() -> None:
    sim = Sim.start(dag({"a": [], "b": [], "c": ["a", "b"]}))
    sim.step()
    assert sim.creates() == [("a", None, 1), ("b", None, 1)]
    assert sim.run.status.phase is RunPhase.RUNNING
    assert sim.run.status.taskStates == "qq."
    assert sim.run.status.progress == "0/3"


def test_agent_finished_creates_downstream_pod_in_the_same_plan() -> None:
    sim = Sim.start(dag(CHAIN))
    sim.step()
    sim.step(sim.finished("extract"))
    assert sim.creates() == [("transform", None, 1)]
    assert sim.state("extract") is TaskState.SUCCEEDED


def test_pod_status_confirming_agent_finished_does_not_double_count() -> None:
    sim = Sim.start(dag(CHAIN))
    sim.step()
    sim.step(sim.finished("extract"))
    status = sim.run.status
    sim.step(sim.pod("extract", PodPhase.SUCCEEDED))
    assert sim.creates() == []
    assert sim.run.status.taskStates == status.taskStates
    assert sim.deletes() == [sim.pod_name("extract", 1)]


def test_pod_status_completes_task_when_the_agent_could_not_report() -> None:
    sim = Sim.start(dag(CHAIN))
    sim.step()
    sim.step(sim.pod("extract", PodPhase.SUCCEEDED))
    assert sim.creates() == [("transform", None, 1)]


def test_outputs_reach_downstream_templates() -> None:
    spec = dag(
        {"extract": [], "load": ["extract"]},
        outputs={"extract": ["rows"]},
        commands={"load": ["load", "{{ tasks.extract.outputs.rows }}"]},
    )
    sim = Sim.start(spec)
    sim.step()
    sim.step(sim.finished("extract", outputs={"rows": "42"}))
    pod = sim.created[-1].pod
    assert pod["spec"]["containers"][0]["command"] == ["load", "42"]
    assert sim.run.status.tasks["0"].outputs == {"rows": "42"}


def test_stale_attempt_report_is_ignored() -> None:
    sim = Sim.start(dag({"a": []}, retries=3, retryDelaySeconds=1))
    sim.step()
    sim.step(sim.finished("a", exit_code=1))
    sim.step(now=at(10))
    assert sim.creates() == [("a", None, 2)]
    sim.step(
        sim.finished("a", exit_code=0, attempt=1), sim.pod("a", PodPhase.FAILED, FailureReason.USER_ERROR)
    )
    assert sim.state("a") is TaskState.SCHEDULED
    assert sim.run.status.tasks["0"].attempt == 2


def test_pod_of_a_superseded_attempt_still_running_is_deleted() -> None:
    sim = Sim.start(dag({"a": []}, retries=3, retryDelaySeconds=1))
    sim.step()
    sim.step(sim.finished("a", exit_code=1))
    sim.step(now=at(10))
    sim.step(sim.pod("a", PodPhase.RUNNING, attempt=1), now=at(11))
    assert sim.deletes() == [sim.pod_name("a", 1)]


def test_pod_created_before_its_status_write_is_adopted_by_the_next_plan() -> None:
    # The reconcile creates pods concurrently with the status write; if that write failed, the
    # next plan sees a pod for an attempt the status does not have yet, and starts it again.
    sim = Sim.start(dag(CHAIN))
    sim.step(sim.pod("extract", PodPhase.RUNNING))
    assert sim.creates() == [("extract", None, 1)]
    assert sim.deletes() == []


def test_pod_of_an_unrecorded_attempt_the_plan_does_not_start_is_deleted() -> None:
    sim = Sim.start(dag({"a": []}, retries=3, retryDelaySeconds=30))
    sim.step()
    sim.step(sim.finished("a", exit_code=1))
    assert sim.state("a") is TaskState.RETRY_WAIT
    sim.step(sim.pod("a", PodPhase.RUNNING, attempt=2), now=at(1))
    assert sim.creates() == []
    assert sim.deletes() == [sim.pod_name("a", 2)]


def test_failed_attempt_pod_still_running_after_agent_report_is_kept_for_its_logs() -> None:
    sim = Sim.start(dag({"a": []}, retries=3, retryDelaySeconds=30))
    sim.step()
    sim.step(sim.finished("a", exit_code=3))
    assert sim.state("a") is TaskState.RETRY_WAIT
    sim.step(sim.pod("a", PodPhase.RUNNING, attempt=1), now=at(1))
    assert sim.deletes() == [], "the process exited; the kubelet is about to mark the pod Failed"


def test_succeeded_pod_still_running_after_agent_report_is_not_deleted_when_pods_are_kept() -> None:
    sim = Sim.start(dag(CHAIN), settings=PlanSettings(delete_succeeded_pods=False))
    sim.step()
    sim.step(sim.finished("extract"))
    sim.step(sim.pod("extract", PodPhase.RUNNING), now=at(1))
    assert sim.deletes() == [], "the process exited; the kubelet is about to mark the pod Succeeded"
    sim.step(sim.pod("extract", PodPhase.SUCCEEDED), now=at(2))
    assert sim.deletes() == [], "keep-all: a succeeded pod stays"


def test_timed_out_attempt_pod_still_running_is_deleted_again_when_seen() -> None:
    sim = Sim.start(dag({"a": []}, timeout=10))
    sim.step()
    sim.step(sim.started("a", at=at(1)), now=at(1))
    sim.step(now=at(11))
    assert sim.state("a") is TaskState.FAILED
    sim.step(sim.pod("a", PodPhase.RUNNING), now=at(12))
    assert sim.deletes() == [sim.pod_name("a", 1)], "no exit was seen: the process must be stopped"


def test_stranded_pod_of_a_failed_task_is_deleted_in_the_decision_that_ends_the_run() -> None:
    sim = Sim.start(dag({"a": []}, retries=3))
    sim.step()
    sim.step(sim.pod("a", PodPhase.FAILED, FailureReason.IMAGE_INVALID, stranded=True), now=at(1))
    assert sim.run.status.phase is RunPhase.FAILED, "a config error spends no retry"
    assert sim.deletes() == [sim.pod_name("a", 1)], "Kubernetes would keep it Pending forever"


def test_terminal_pod_of_a_failed_task_is_left_to_the_cleanup_policy() -> None:
    sim = Sim.start(dag({"a": []}))
    sim.step()
    sim.step(sim.pod("a", PodPhase.FAILED, FailureReason.USER_ERROR), now=at(1))
    assert sim.run.status.phase is RunPhase.FAILED
    assert sim.deletes() == []


def test_user_failure_retries_with_exponential_backoff_capped_by_max_delay() -> None:
    spec = dag({"a": []}, retries=4, retryDelaySeconds=10, retryBackoff=2.0, maxRetryDelaySeconds=30)
    sim = Sim.start(spec)
    sim.step()
    now = T0
    waits = []
    for attempt in range(1, 5):
        sim.step(sim.finished("a", exit_code=1, attempt=attempt), now=now)
        wake = sim.requeue()
        assert wake is not None
        waits.append((wake - now).total_seconds())
        sim.step(now=wake - timedelta(seconds=1))
        assert sim.creates() == []
        sim.step(now=wake)
        assert sim.creates() == [("a", None, attempt + 1)]
        now = wake
    assert waits == [10, 20, 30, 30]
    sim.step(sim.finished("a", exit_code=1, attempt=5), now=now)
    assert sim.state("a") is TaskState.FAILED
    assert sim.run.status.phase is RunPhase.FAILED


def test_infrastructure_failures_use_their_own_budget() -> None:
    sim = Sim.start(dag({"a": []}, retries=0), PlanSettings(infra_retries=2, infra_retry_delay_seconds=5))
    sim.step()
    sim.step(sim.pod("a", PodPhase.FAILED, FailureReason.EVICTED))
    assert sim.state("a") is TaskState.RETRY_WAIT
    sim.step(now=at(5))
    assert sim.creates() == [("a", None, 2)]
    sim.step(sim.pod("a", PodPhase.FAILED, FailureReason.PREEMPTED, attempt=2), now=at(6))
    sim.step(now=at(11))
    assert sim.creates() == [("a", None, 3)]
    sim.step(sim.pod("a", PodPhase.FAILED, FailureReason.NODE_LOST, attempt=3), now=at(12))
    assert sim.state("a") is TaskState.FAILED
    assert sim.run.status.tasks["0"].infraAttempts == 3


def test_infrastructure_retry_does_not_consume_user_retries() -> None:
    sim = Sim.start(dag({"a": []}, retries=1, retryDelaySeconds=1), PlanSettings(infra_retry_delay_seconds=0))
    sim.step()
    sim.step(sim.pod("a", PodPhase.FAILED, FailureReason.DELETED_EXTERNALLY))
    sim.step(now=at(1))
    sim.step(sim.finished("a", exit_code=2, attempt=2), now=at(2))
    assert sim.state("a") is TaskState.RETRY_WAIT
    sim.step(now=at(3))
    assert sim.creates() == [("a", None, 3)]


def test_config_failure_is_not_retried() -> None:
    sim = Sim.start(dag({"a": []}, retries=5))
    sim.step()
    sim.step(sim.pod("a", PodPhase.FAILED, FailureReason.IMAGE_INVALID))
    assert sim.state("a") is TaskState.FAILED


def test_failed_run_message_names_the_task_and_reason() -> None:
    sim = Sim.start(dag(CHAIN))
    sim.step()
    sim.step(sim.pod("extract", PodPhase.FAILED, FailureReason.OOM_KILLED, exit_code=137))
    status = sim.run.status
    assert status.taskStates == "FUU"
    assert status.phase is RunPhase.FAILED
    assert status.message is not None
    assert status.message.startswith("task 'extract' failed: OOMKilled")
    assert status.completionTime is not None
    assert [c.status for c in status.conditions if c.type == "Succeeded"] == ["False"]
    assert any(isinstance(a, EmitEvent) and a.reason == "RunFailed" for a in sim.last)


def test_all_done_cleanup_runs_after_a_failure() -> None:
    sim = Sim.start(dag({"a": [], "cleanup": ["a"]}, triggers={"cleanup": "all_done"}))
    sim.step()
    sim.step(sim.finished("a", exit_code=1))
    assert sim.creates() == [("cleanup", None, 1)]


def test_one_failed_handler_runs_only_on_failure_and_is_skipped_otherwise() -> None:
    sim = Sim.start(dag({"a": [], "alert": ["a"]}, triggers={"alert": "one_failed"}))
    sim.step()
    sim.step(sim.finished("a"))
    assert sim.state("alert") is TaskState.SKIPPED
    assert sim.run.status.phase is RunPhase.SUCCEEDED


def test_run_succeeds_when_every_task_succeeded_or_was_skipped() -> None:
    sim = Sim.start(dag(CHAIN))
    sim.step()
    for attempt_of in ("extract", "transform", "load"):
        sim.step(sim.finished(attempt_of))
    status = sim.run.status
    assert status.phase is RunPhase.SUCCEEDED
    assert status.progress == "3/3"
    assert [c.status for c in status.conditions if c.type == "Succeeded"] == ["True"]
    assert status.tasks == {}


def test_max_active_tasks_caps_pods_and_the_planner_simply_waits() -> None:
    sim = Sim.start(dag({"a": [], "b": [], "c": [], "d": []}), max_active_tasks=2)
    sim.step()
    assert sim.creates() == [("a", None, 1), ("b", None, 1)]
    sim.step()
    assert sim.creates() == []
    sim.step(sim.finished("b"))
    assert sim.creates() == [("c", None, 1)]


def test_cancel_deletes_running_pods_and_marks_the_run_cancelled() -> None:
    sim = Sim.start(dag(CHAIN))
    sim.step()
    sim.run = sim.run.__class__(**{**sim.run.__dict__, "cancel_requested": True})
    sim.step()
    assert sim.deletes() == [sim.pod_name("extract", 1)]
    assert sim.run.status.phase is RunPhase.CANCELLED
    assert sim.run.status.taskStates == "CCC"
    sim.step()
    assert sim.creates() == []


def test_task_timeout_deletes_the_pod_and_counts_as_a_user_failure() -> None:
    sim = Sim.start(dag({"a": []}, timeout=60, retries=1, retryDelaySeconds=1))
    sim.step()
    sim.step(sim.started("a", at=at(10)), now=at(10))
    assert sim.requeue() == at(70)
    sim.step(now=at(70))
    assert sim.deletes() == [sim.pod_name("a", 1)]
    assert sim.run.status.tasks["0"].reason == "DeadlineExceeded"
    assert sim.state("a") is TaskState.RETRY_WAIT


def test_pending_time_does_not_count_toward_the_task_timeout() -> None:
    sim = Sim.start(dag({"a": []}, timeout=60))
    sim.step()
    sim.step(sim.pod("a", PodPhase.SCHEDULED), now=at(500))
    assert sim.deletes() == []
    assert sim.state("a") is TaskState.SCHEDULED


def test_run_timeout_fails_the_run_and_stops_its_pods() -> None:
    sim = Sim.start(dag(CHAIN), timeout_seconds=100)
    sim.step()
    sim.step(now=at(100))
    assert sim.deletes() == [sim.pod_name("extract", 1)]
    assert sim.run.status.phase is RunPhase.FAILED
    assert sim.run.status.message == "run exceeded its timeout of 100s"


def test_retry_of_a_failed_run_reruns_failed_tasks_with_new_attempts() -> None:
    sim = Sim.start(dag({"a": [], "b": [], "c": ["a", "b"]}))
    sim.step()
    sim.step(sim.finished("a"), sim.finished("b", exit_code=1))
    assert sim.run.status.phase is RunPhase.FAILED
    sim.run = sim.run.__class__(**{**sim.run.__dict__, "retry_generation": 1})
    sim.step(now=at(60))
    assert sim.creates() == [("b", None, 2)]
    assert sim.run.status.phase is RunPhase.RUNNING
    assert sim.state("a") is TaskState.SUCCEEDED
    sim.step(sim.finished("b", attempt=2), now=at(61))
    assert sim.creates() == [("c", None, 1)]
    sim.step(now=at(62))
    assert sim.creates() == []


def test_fan_out_over_literal_items_creates_one_pod_per_item() -> None:
    spec = dag(
        {"each": []},
        fan_out={"each": CompiledFanOut(items=["x", "y", "z"])},
        commands={"each": ["echo", "{{ item }}"]},
    )
    sim = Sim.start(spec)
    sim.step()
    assert sim.creates() == [("each", 0, 1), ("each", 1, 1), ("each", 2, 1)]
    assert [c.pod["spec"]["containers"][0]["command"][1] for c in sim.created] == ["x", "y", "z"]
    assert sim.run.status.items == {"0": "qqq"}
    for item in range(3):
        sim.step(sim.finished("each", item=item))
    assert sim.run.status.phase is RunPhase.SUCCEEDED


def test_fan_out_over_an_upstream_list_output() -> None:
    spec = dag(
        {"list": [], "each": ["list"]},
        outputs={"list": ["files"]},
        fan_out={"each": CompiledFanOut(fromTask=0, fromOutput="files")},
        commands={"each": ["process", "{{ item }}"]},
    )
    sim = Sim.start(spec)
    sim.step()
    sim.step(sim.finished("list", outputs={"files": '["a.csv", {"k": 1}]'}))
    assert sim.creates() == [("each", 0, 1), ("each", 1, 1)]
    assert sim.created[-1].pod["spec"]["containers"][0]["command"] == ["process", '{"k":1}']


def test_fan_out_over_an_output_that_is_not_a_list_fails_clearly() -> None:
    spec = dag(
        {"list": [], "each": ["list"]},
        fan_out={"each": CompiledFanOut(fromTask=0, fromOutput="files")},
    )
    sim = Sim.start(spec)
    sim.step()
    sim.step(sim.finished("list", outputs={"files": "not json"}))
    assert sim.state("each") is TaskState.FAILED
    assert sim.run.status.tasks["1"].message == "output 'files' of task 'list' is not JSON"


def test_fan_out_max_parallel_limits_items_in_flight() -> None:
    spec = dag({"each": []}, fan_out={"each": CompiledFanOut(items=["1", "2", "3"], maxParallel=2)})
    sim = Sim.start(spec)
    sim.step()
    assert sim.creates() == [("each", 0, 1), ("each", 1, 1)]
    sim.step(sim.finished("each", item=0))
    assert sim.creates() == [("each", 2, 1)]


def test_empty_fan_out_succeeds_without_pods() -> None:
    spec = dag({"each": [], "after": ["each"]}, fan_out={"each": CompiledFanOut(items=[])})
    sim = Sim.start(spec)
    sim.step()
    assert sim.creates() == [("after", None, 1)]


def test_template_that_does_not_resolve_fails_the_task_without_retry() -> None:
    spec = dag({"a": []}, retries=3, commands={"a": ["echo", "{{ params.missing }}"]})
    sim = Sim.start(spec)
    sim.step()
    assert sim.creates() == []
    assert sim.state("a") is TaskState.FAILED
    assert sim.run.status.tasks["0"].message == "task 'a' command: param 'missing' has no value"


def test_run_params_override_dag_defaults_in_templates() -> None:
    spec = dag(
        {"a": []}, commands={"a": ["echo", "{{ params.region }}", "{{ run_id }}", "{{ logical_date }}"]}
    )
    spec = spec.model_copy(update={"params": [CompiledParam(name="region", default="us")]})
    sim = Sim.start(spec, spec=DagRunSpec(dagName="etl", params={"region": "eu"}, logicalDate="2026-11-24"))
    sim.step()
    assert sim.created[0].pod["spec"]["containers"][0]["command"] == ["echo", "eu", "etl-run-1", "2026-11-24"]


def test_grace_deadline_from_pod_status_requeues_the_run() -> None:
    sim = Sim.start(dag({"a": []}))
    sim.step()
    sim.step(
        sim.pod("a", PodPhase.SCHEDULED, deadline=at(180), waiting_reason="ImagePullBackOff"), now=at(10)
    )
    assert sim.requeue() == at(180)


def test_waiting_reason_is_shown_live_in_the_run_message() -> None:
    sim = Sim.start(dag({"a": []}))
    sim.step()
    obs = sim.pod("a", PodPhase.PENDING)
    obs = obs.__class__(
        obs.task, None, 1, obs.pod, obs.status.__class__(PodPhase.PENDING, message="Unschedulable: 0/3")
    )
    sim.step(obs)
    assert sim.run.status.message == "a: Unschedulable: 0/3"


def test_sensor_task_runs_in_the_controller_not_in_a_pod() -> None:
    sensor = CompiledSensor(time=CompiledTimeSensor(delaySeconds=10))
    spec = dag({"wait": [], "go": ["wait"]})
    tasks = list(spec.tasks)
    tasks[0] = tasks[0].model_copy(update={"command": None, "sensor": sensor})
    spec = spec.model_copy(update={"tasks": tasks})
    sim = Sim.start(spec)
    actions = sim.step()
    assert StartSensor(0) in actions
    assert sim.creates() == []
    sim.step(SensorFinished(0, succeeded=True))
    assert sim.creates() == [("go", None, 1)]


def test_cancel_stops_running_sensors() -> None:
    sensor = CompiledSensor(time=CompiledTimeSensor(delaySeconds=10))
    spec = dag({"wait": []})
    spec = spec.model_copy(
        update={"tasks": [spec.tasks[0].model_copy(update={"command": None, "sensor": sensor})]}
    )
    sim = Sim.start(spec)
    sim.step()
    sim.run = sim.run.__class__(**{**sim.run.__dict__, "cancel_requested": True})
    assert StopSensor(0) in sim.step()


def test_finished_run_ignores_late_reports() -> None:
    sim = Sim.start(dag({"a": []}))
    sim.step()
    sim.step(sim.finished("a"))
    status = sim.run.status
    sim.step(sim.finished("a", exit_code=1), sim.pod("a", PodPhase.FAILED, FailureReason.USER_ERROR))
    assert sim.run.status == status


def test_retried_run_gets_a_fresh_run_timeout_window() -> None:
    sim = Sim.start(dag({"a": []}), timeout_seconds=100)
    sim.step()
    sim.step(now=at(100))
    assert sim.run.status.phase is RunPhase.FAILED
    sim.run = sim.run.__class__(**{**sim.run.__dict__, "retry_generation": 1})
    sim.step(now=at(500))
    assert sim.creates() == [("a", None, 2)]
    assert sim.run.status.startTime == "2026-11-24T07:08:20Z"
    assert sim.run.status.completionTime is None
    sim.step(now=at(550))
    assert sim.run.status.phase is RunPhase.RUNNING
    assert sim.requeue() == at(600)


def test_agent_that_could_not_start_the_command_fails_the_task_without_retry() -> None:
    sim = Sim.start(dag({"a": []}, retries=3))
    sim.step()
    sim.step(sim.finished("a", exit_code=127, agent_error='exec: "pyhton": executable file not found'))
    assert sim.state("a") is TaskState.FAILED
    assert sim.run.status.tasks["0"].reason == "StartError"


def test_refused_outputs_fail_the_task_with_the_agents_message() -> None:
    sim = Sim.start(dag({"a": []}, retries=3))
    sim.step()
    sim.step(sim.finished("a", exit_code=0, outputs_error="outputs exceed 64 KiB"))
    assert sim.state("a") is TaskState.FAILED
    assert sim.run.status.tasks["0"].message == "outputs exceed 64 KiB"


def test_agent_reserved_exit_code_is_retried_on_the_infrastructure_budget() -> None:
    sim = Sim.start(dag({"a": []}, retries=0), PlanSettings(infra_retry_delay_seconds=0))
    sim.step()
    sim.step(sim.finished("a", exit_code=125))
    assert sim.run.status.tasks["0"].reason == "AgentError"
    assert sim.creates() == [("a", None, 2)], "a zero infra delay retries in the same decision"


def test_process_exiting_0_after_sigterm_is_an_interrupted_attempt_not_a_success() -> None:
    sim = Sim.start(dag(CHAIN, retries=0), PlanSettings(infra_retry_delay_seconds=5))
    sim.step()
    sigterm = sim.terminating("extract")
    sim.step(sigterm)
    assert sim.state("extract") is TaskState.SCHEDULED
    assert "signal 15" in (sim.run.status.tasks["0"].message or "")
    # The reconciler replays an attempt's buffered reports until its outcome is recorded.
    sim.step(sigterm, sim.finished("extract", exit_code=0), now=at(1))
    assert sim.state("extract") is TaskState.RETRY_WAIT
    assert sim.creates() == [], "nothing downstream starts on an interrupted attempt"
    detail = sim.run.status.tasks["0"]
    assert (detail.reason, detail.infraAttempts) == ("Interrupted", 1)
    sim.step(now=at(6))
    assert sim.creates() == [("extract", None, 2)]


def test_nonzero_exit_after_sigterm_is_retried_on_the_infrastructure_budget() -> None:
    sim = Sim.start(dag({"a": []}, retries=0), PlanSettings(infra_retry_delay_seconds=0))
    sim.step()
    sim.step(sim.terminating("a"), sim.finished("a", exit_code=143))
    assert sim.run.status.tasks["0"].reason == "Interrupted"
    assert sim.creates() == [("a", None, 2)]


def test_late_sigterm_report_of_a_superseded_attempt_changes_nothing() -> None:
    sim = Sim.start(dag({"a": []}, retries=1, retryDelaySeconds=0))
    sim.step()
    sim.step(sim.finished("a", exit_code=1))
    assert sim.creates() == [("a", None, 2)]
    sim.step(sim.terminating("a", attempt=1), sim.finished("a", exit_code=0, attempt=2))
    assert sim.state("a") is TaskState.SUCCEEDED


def test_agent_oom_evidence_names_the_failure_oomkilled() -> None:
    sim = Sim.start(dag({"a": []}))
    sim.step()
    sim.step(sim.finished("a", exit_code=137, oom=True))
    assert sim.run.status.tasks["0"].reason == "OOMKilled"


def test_run_retry_sends_a_failed_fan_out_back_through_its_trigger_rule() -> None:
    spec = dag(
        {"up": [], "each": ["up"]},
        fan_out={"up": CompiledFanOut(items=["1"]), "each": CompiledFanOut(items=["a", "b"])},
        triggers={"each": "all_done"},
    )
    sim = Sim.start(spec)
    sim.step()
    sim.step(sim.finished("up", exit_code=1, item=0))
    assert sim.creates() == [("each", 0, 1), ("each", 1, 1)]
    sim.step(sim.finished("each", item=0), sim.finished("each", exit_code=1, item=1))
    assert sim.run.status.phase is RunPhase.FAILED
    sim.run = sim.run.__class__(**{**sim.run.__dict__, "retry_generation": 1})
    sim.step(now=at(60))
    assert sim.creates() == [("up", 0, 2)], "each waits for its retried upstream"
    sim.step(sim.finished("up", item=0, attempt=2), now=at(61))
    assert sim.creates() == [("each", 1, 2)], "only the failed item runs again"


def test_a_status_edited_into_nonsense_is_a_clear_error() -> None:
    sim = Sim.start(dag({"a": [], "b": []}))
    bad = sim.run.status.model_copy(update={"taskStates": "q?"})
    sim.run = sim.run.__class__(**{**sim.run.__dict__, "status": bad})
    with pytest.raises(PlanError, match=r"status.taskStates has the unknown task state code '\?'"):
        sim.step()
    bad = sim.run.status.model_copy(update={"taskStates": "..", "items": {"1": "."}})
    sim.run = sim.run.__class__(**{**sim.run.__dict__, "status": bad})
    with pytest.raises(PlanError, match=r"status.items\['1'\] does not name a fan-out task"):
        sim.step()
    bad = sim.run.status.model_copy(update={"taskStates": "S", "items": {}})
    sim.run = sim.run.__class__(**{**sim.run.__dict__, "status": bad})
    with pytest.raises(PlanError, match="has 1 tasks but the run's DAG has 2"):
        sim.step()

"""Prestart: a task's pod is created while its upstreams run and released when they succeed."""

from __future__ import annotations

from dataclasses import replace

import pytest

from leoflow.controller.actions import CreatePod, DeletePod, EmitEvent, ReleasePod
from leoflow.controller.observations import PodObserved
from leoflow.controller.planner import PlanSettings, released_by_success
from leoflow.controller.podspec import WAIT_START_ENV
from leoflow.controller.podstatus import FailureReason, PodObservation, PodPhase
from leoflow.spec.resources import TaskState

from .dags import dag
from .podfixtures import at
from .runsim import Sim

CHAIN = {"extract": [], "transform": ["extract"], "load": ["transform"]}
AHEAD = PlanSettings(prestart=True, infra_retry_delay_seconds=5)


def running_extract(sim: Sim, **kw: object) -> Sim:
    """The first plan creates extract's pod only; transform's comes once extract is seen running."""
    sim.step()
    assert sim.creates() == [("extract", None, 1)], "not beside a pod that has not started"
    sim.step(sim.started("extract"))
    return sim


def releases(sim: Sim) -> list[tuple[str, int]]:
    return [(sim.dag.tasks[a.task].name, a.attempt) for a in sim.last if isinstance(a, ReleasePod)]


def env_of(sim: Sim, task: str) -> list[dict[str, str]]:
    create = next(c for c in reversed(sim.created) if sim.dag.tasks[c.task].name == task)
    env: list[dict[str, str]] = create.pod["spec"]["containers"][0].get("env", [])
    return env


def test_pod_is_created_one_level_ahead_and_waits_in_the_agent() -> None:
    sim = running_extract(Sim.start(dag(CHAIN, prestart=frozenset({"transform", "load"}), timeout=60), AHEAD))
    assert sim.creates() == [("transform", None, 1)]
    assert sim.run.status.taskStates == "rp."
    assert {"name": WAIT_START_ENV, "value": "true"} in env_of(sim, "transform")
    prepared = next(c for c in sim.created if c.prepared)
    assert "activeDeadlineSeconds" not in prepared.pod["spec"], "how long it waits is unknown"


def test_upstream_success_releases_the_prepared_pod_and_prepares_the_next_level() -> None:
    sim = running_extract(Sim.start(dag(CHAIN, prestart=frozenset({"transform", "load"})), AHEAD))
    sim.step(sim.finished("extract"), now=at(3))
    assert releases(sim) == [("transform", 1)]
    assert sim.creates() == [], "no create for the released task"
    assert sim.run.status.taskStates == "Sq."
    sim.step(sim.started("transform"), now=at(3))
    assert sim.creates() == [("load", None, 1)], "the next level once it runs"
    assert sim.run.status.taskStates == "Srp"
    assert sim.run.status.tasks["1"].releaseTime == "2026-11-24T07:00:03Z"


def test_released_attempt_runs_and_succeeds_like_any_other() -> None:
    sim = running_extract(Sim.start(dag(CHAIN, prestart=frozenset({"transform", "load"})), AHEAD))
    sim.step(sim.finished("extract"))
    sim.step(sim.started("transform"))
    sim.step(sim.finished("transform"))
    assert releases(sim) == [("load", 1)]
    sim.step(sim.finished("load"))
    assert sim.run.status.taskStates == "SSS"
    assert sim.run.status.phase.value == "Succeeded"


def test_prepared_pod_running_is_its_agent_waiting_not_the_task_running() -> None:
    sim = running_extract(Sim.start(dag(CHAIN, prestart=frozenset({"transform"})), AHEAD))
    sim.step(sim.pod("transform", PodPhase.RUNNING, started=True))
    assert sim.state("transform") is TaskState.PREPARED


def test_unschedulable_prepared_pod_waits_for_its_upstreams_resources() -> None:
    sim = running_extract(Sim.start(dag(CHAIN, prestart=frozenset({"transform"})), AHEAD))
    sim.step(sim.pod("transform", PodPhase.FAILED, FailureReason.UNSCHEDULABLE, stranded=True), now=at(900))
    assert sim.state("transform") is TaskState.PREPARED
    assert sim.deletes() == []


def test_nothing_is_created_ahead_until_the_runs_pods_are_seen_to_carry_the_agent() -> None:
    sim = Sim.start(dag(CHAIN, prestart=frozenset({"transform"})), AHEAD)
    sim.step()
    sim.step(sim.pod("extract", PodPhase.RUNNING, started=True))
    assert sim.state("extract") is TaskState.RUNNING
    assert sim.creates() == [], "without the agent its command would start beside extract"
    sim.step(sim.pod("extract", PodPhase.RUNNING, started=True, agent=True))
    assert sim.creates() == [("transform", None, 1)]


def test_pod_without_the_agent_runs_its_downstream_after_it_as_without_prestart() -> None:
    sim = Sim.start(dag(CHAIN, prestart=frozenset({"transform"})), AHEAD)
    sim.step()
    sim.step(sim.pod("extract", PodPhase.RUNNING, started=True))
    sim.step(sim.pod("extract", PodPhase.SUCCEEDED))
    assert sim.creates() == [("transform", None, 1)]
    assert sim.state("transform") is TaskState.SCHEDULED
    assert not [c for c in sim.last if isinstance(c, CreatePod) and c.prepared]


@pytest.mark.parametrize(
    "reason",
    [FailureReason.IMAGE_PULL_FAILED, FailureReason.AGENT_IMAGE_PULL_FAILED, FailureReason.CONFIG_ERROR],
)
def test_prepared_pod_that_cannot_start_yet_waits_for_its_release_with_the_reason_shown(
    reason: FailureReason,
) -> None:
    # Its upstream may be what pushes the image or creates the ConfigMap; the bound counts from
    # the release (the classifier's released_at).
    sim = running_extract(Sim.start(dag(CHAIN, prestart=frozenset({"transform"})), AHEAD))
    sim.step(sim.pod("transform", PodPhase.FAILED, reason, stranded=True), now=at(900))
    assert sim.state("transform") is TaskState.PREPARED
    assert sim.deletes() == []
    assert sim.run.status.tasks["1"].message == str(reason)


def events(sim: Sim) -> list[tuple[str, str]]:
    return [(a.reason, a.message) for a in sim.last if isinstance(a, EmitEvent)]


@pytest.mark.parametrize(
    "waiting",
    [
        PodObservation(PodPhase.FAILED, FailureReason.CONFIG_ERROR, "configmap not found", stranded=True),
        PodObservation(PodPhase.FAILED, FailureReason.IMAGE_PULL_FAILED, "ImagePullBackOff", stranded=True),
        PodObservation(
            PodPhase.SCHEDULED,
            message="ImagePullBackOff",
            deadline=at(1000),
            waiting_reason="ImagePullBackOff",
            fails_as=FailureReason.IMAGE_PULL_FAILED,
        ),
    ],
    ids=["config-error", "image-pull-failed", "image-pull-within-its-grace"],
)
def test_prepared_pod_waiting_on_what_its_upstream_may_make_is_replaced_by_a_fresh_pod_at_release(
    waiting: PodObservation,
) -> None:
    # The upstream may have created the ConfigMap or pushed the image just before it ended: the
    # kubelet retries the old pod only on its back-off, so the task starts as it would have
    # without prestart, in a new pod, on the infrastructure budget.
    sim = running_extract(Sim.start(dag(CHAIN, retries=1, prestart=frozenset({"transform"})), AHEAD))
    stuck = PodObserved(sim.index("transform"), None, 1, sim.pod_name("transform", 1), waiting)
    sim.step(stuck, now=at(60))
    assert sim.state("transform") is TaskState.PREPARED
    sim.step(sim.finished("extract"), stuck, now=at(61))
    assert releases(sim) == []
    assert sim.deletes() == [sim.pod_name("transform", 1)]
    assert sim.creates() == [("transform", None, 2)]
    assert not [c for c in sim.last if isinstance(c, CreatePod) and c.prepared]
    assert sim.state("transform") is TaskState.SCHEDULED
    detail = sim.run.status.tasks["1"]
    assert (detail.attempt, detail.infraAttempts) == (2, 1)
    [(reason, message)] = events(sim)
    assert reason == "PreparedPodReplaced"
    assert waiting.message in message
    sim.step(stuck, now=at(62))
    assert sim.deletes() == [sim.pod_name("transform", 1)], "until it goes: Kubernetes would keep it"
    sim.step(sim.finished("transform", exit_code=1, attempt=2), now=at(63))
    assert sim.state("transform") is TaskState.RETRY_WAIT, "the task's own retry is still there"


@pytest.mark.parametrize(
    "reason",
    [FailureReason.UNSCHEDULABLE, FailureReason.AGENT_IMAGE_PULL_FAILED, FailureReason.START_TIMEOUT],
)
def test_prepared_pod_waiting_on_what_no_upstream_makes_is_released_as_it_is(reason: FailureReason) -> None:
    # Resources free up as the upstreams end; the agent's image and the sandbox are not theirs.
    sim = running_extract(Sim.start(dag(CHAIN, prestart=frozenset({"transform"})), AHEAD))
    stuck = sim.pod("transform", PodPhase.FAILED, reason, stranded=True)
    sim.step(sim.finished("extract"), stuck, now=at(61))
    assert releases(sim) == [("transform", 1)]
    assert sim.deletes() == [] and sim.creates() == []


def test_prepared_pod_is_released_as_it_is_once_the_infrastructure_budget_is_spent() -> None:
    sim = running_extract(
        Sim.start(dag(CHAIN, prestart=frozenset({"transform"})), replace(AHEAD, infra_retries=0))
    )
    stuck = sim.pod("transform", PodPhase.FAILED, FailureReason.CONFIG_ERROR, stranded=True)
    sim.step(sim.finished("extract"), stuck, now=at(61))
    assert releases(sim) == [("transform", 1)]
    assert sim.creates() == []


def test_upstream_failure_deletes_the_prepared_pod_and_marks_it_upstream_failed() -> None:
    sim = running_extract(Sim.start(dag(CHAIN, prestart=frozenset({"transform"})), AHEAD))
    sim.step(sim.finished("extract", exit_code=1))
    assert sim.deletes() == [sim.pod_name("transform", 1)]
    assert sim.run.status.taskStates == "FUU"
    assert sim.run.status.phase.value == "Failed"


def test_prepared_pod_survives_its_upstreams_retry_and_is_released_by_the_retry() -> None:
    sim = running_extract(
        Sim.start(dag(CHAIN, retries=1, retryDelaySeconds=1, prestart=frozenset({"transform"})), AHEAD)
    )
    sim.step(sim.finished("extract", exit_code=1))
    assert sim.state("extract") is TaskState.RETRY_WAIT
    assert sim.deletes() == [] and sim.state("transform") is TaskState.PREPARED
    sim.step(now=at(1))
    assert sim.creates() == [("extract", None, 2)]
    sim.step(sim.finished("extract", attempt=2), now=at(2))
    assert releases(sim) == [("transform", 1)]


def test_prepared_pod_evicted_while_waiting_is_prepared_again_on_the_infrastructure_budget() -> None:
    sim = running_extract(Sim.start(dag(CHAIN, prestart=frozenset({"transform"})), AHEAD))
    sim.step(sim.pod("transform", PodPhase.FAILED, FailureReason.EVICTED), now=at(1))
    assert sim.state("transform") is TaskState.RETRY_WAIT
    sim.step(sim.pod("extract", PodPhase.RUNNING, started=True, agent=True), now=at(6))
    assert sim.creates() == [("transform", None, 2)]
    assert sim.state("transform") is TaskState.PREPARED, "its upstream still runs: ahead again"
    assert sim.run.status.tasks["1"].infraAttempts == 1


def test_prepared_attempt_that_failed_starts_normally_once_its_upstreams_are_done() -> None:
    sim = running_extract(Sim.start(dag(CHAIN, prestart=frozenset({"transform"})), AHEAD))
    sim.step(sim.pod("transform", PodPhase.FAILED, FailureReason.EVICTED), now=at(1))
    sim.step(sim.finished("extract"), now=at(2))
    assert sim.creates() == [], "the retry delay still applies"
    sim.step(now=at(6))
    assert sim.creates() == [("transform", None, 2)]
    assert sim.state("transform") is TaskState.SCHEDULED
    assert not [c for c in sim.last if isinstance(c, CreatePod) and c.prepared]


def test_cancel_deletes_prepared_pods_and_cancels_them() -> None:
    sim = running_extract(Sim.start(dag(CHAIN, prestart=frozenset({"transform"})), AHEAD))
    sim.run = replace(sim.run, cancel_requested=True)
    sim.step()
    assert sorted(a.name for a in sim.last if isinstance(a, DeletePod)) == sorted(
        [sim.pod_name("extract", 1), sim.pod_name("transform", 1)]
    )
    assert sim.run.status.taskStates == "CCC"


def test_without_an_agent_server_prestart_tasks_start_when_their_upstreams_end() -> None:
    sim = Sim.start(dag(CHAIN, prestart=frozenset({"transform"})), PlanSettings(prestart=False))
    sim.step()
    sim.step(sim.started("extract"))
    assert sim.creates() == []
    sim.step(sim.finished("extract"))
    assert sim.creates() == [("transform", None, 1)]
    assert releases(sim) == []


def test_a_capped_run_creates_nothing_ahead() -> None:
    sim = Sim.start(dag(CHAIN, prestart=frozenset({"transform"})), AHEAD, max_active_tasks=5)
    sim.step()
    sim.step(sim.started("extract"))
    assert sim.creates() == []


def test_a_success_names_the_prepared_pods_it_was_the_last_upstream_of() -> None:
    sim = running_extract(Sim.start(dag(CHAIN, prestart=frozenset({"transform"})), AHEAD))
    extract = sim.index("extract")
    assert released_by_success(sim.dag, sim.run, extract) == [sim.pod_name("transform", 1)]
    assert released_by_success(sim.dag, replace(sim.run, cancel_requested=True), extract) == []


def test_a_success_releases_nothing_while_another_upstream_still_runs() -> None:
    fan_in = {"a": [], "b": [], "join": ["a", "b"]}
    sim = Sim.start(dag(fan_in, prestart=frozenset({"join"})), AHEAD)
    sim.step()
    sim.step(sim.started("a"), sim.started("b"))
    assert sim.run.status.taskStates == "rrp"
    assert released_by_success(sim.dag, sim.run, sim.index("a")) == []
    sim.step(sim.finished("a"))
    assert released_by_success(sim.dag, sim.run, sim.index("b")) == [sim.pod_name("join", 1)]

"""Properties of the planner over random DAGs and random outcomes.

Every step reports outcomes for every pod in flight (through the agent, the pod status, or both,
sometimes twice and sometimes late), then the simulated clock jumps past any backoff.
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leoflow.controller.actions import CreatePod, DeletePod
from leoflow.controller.observations import AgentFinished, Observation, PodObserved
from leoflow.controller.planner import PlanSettings, plan
from leoflow.controller.podstatus import FailureReason, PodObservation, PodPhase
from leoflow.controller.triggers import Decision, decide
from leoflow.spec.resources import (
    TERMINAL_RUN_PHASES,
    CompiledFanOut,
    CompiledTask,
    DagSpec,
    Profile,
    RunPhase,
    TaskState,
)

from .podfixtures import T0
from .runsim import Sim

# Raise for a soak run: LEOFLOW_PROPERTY_EXAMPLES=3000 pytest tests/unit/controller
EXAMPLES = int(os.environ.get("LEOFLOW_PROPERTY_EXAMPLES", "150"))
TRIGGERS = ["all_success", "all_done", "all_failed", "one_success", "one_failed", "none_failed"]
OUTCOMES = ["ok", "user", "infra", "config", "oom"]
_REASON = {
    "user": FailureReason.USER_ERROR,
    "infra": FailureReason.EVICTED,
    "config": FailureReason.CONFIG_ERROR,
    "oom": FailureReason.OOM_KILLED,
}


@st.composite
def dags(draw: st.DrawFn) -> DagSpec:
    n = draw(st.integers(1, 7))
    tasks = []
    ups_of: list[list[int]] = []
    for i in range(n):
        ups = sorted(draw(st.sets(st.integers(0, i - 1), max_size=3))) if i else []
        ups_of.append(ups)
    for i in range(n):
        fan = None
        if draw(st.integers(0, 4)) == 0:
            fan = CompiledFanOut(
                items=[str(k) for k in range(draw(st.integers(0, 3)))],
                maxParallel=draw(st.none() | st.integers(1, 2)),
            )
        tasks.append(
            CompiledTask(
                name=f"t{i}",
                upstreams=ups_of[i],
                downstreams=[j for j in range(n) if i in ups_of[j]],
                trigger=draw(st.sampled_from(TRIGGERS)),
                command=["run"],
                fanOut=fan,
            )
        )
    profile = Profile(
        image="img", retries=draw(st.integers(0, 2)), retryDelaySeconds=5, maxRetryDelaySeconds=60
    )
    return DagSpec(image="img", profiles=[profile], tasks=tasks, definitionHash="0" * 16)


def _active(sim: Sim) -> list[tuple[int, int | None, int]]:
    status = sim.run.status
    out = []
    for task, code in enumerate(status.taskStates):
        row = status.items.get(str(task))
        keys = [(task, i) for i in range(len(row))] if row is not None else [(task, None)]
        for t, item in keys:
            state = row[item] if item is not None and row is not None else code
            if state in (TaskState.SCHEDULED, TaskState.RUNNING):
                key = str(t) if item is None else f"{t}/{item}"
                detail = status.tasks.get(key)
                out.append((t, item, detail.attempt if detail else 1))
    return out


def _report(task: int, item: int | None, attempt: int, outcome: str, via: str) -> list[Observation]:
    name = f"pod-{task}-{item}-{attempt}"
    agent_code = {"ok": 0, "oom": 137}.get(outcome, 1)
    agent = AgentFinished(task, item, attempt, agent_code, at=T0, oom=outcome == "oom")
    if outcome == "ok":
        pod = PodObserved(task, item, attempt, name, PodObservation(PodPhase.SUCCEEDED, exit_code=0))
    else:
        reason = _REASON[outcome]
        pod = PodObserved(
            task, item, attempt, name, PodObservation(PodPhase.FAILED, reason, message=reason.value)
        )
    if outcome in ("infra", "config"):
        return [pod]
    return {"agent": [agent], "pod": [pod], "both": [agent, pod], "twice": [agent, agent, pod, pod]}[via]


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=dags(), data=st.data(), cap=st.none() | st.integers(1, 3))
def test_planner_is_safe_live_and_deterministic(spec: DagSpec, data: st.DataObject, cap: int | None) -> None:
    _drive(spec, data, cap, operator=False)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=dags(), data=st.data(), cap=st.none() | st.integers(1, 3))
def test_cancel_and_run_retries_keep_the_planner_safe_and_live(
    spec: DagSpec, data: st.DataObject, cap: int | None
) -> None:
    _drive(spec, data, cap, operator=True)


def _drive(spec: DagSpec, data: st.DataObject, cap: int | None, *, operator: bool) -> None:
    """Run to the end; with ``operator`` an operator may cancel, and retries failed runs twice."""
    sim = Sim.start(spec, PlanSettings(infra_retries=1, infra_retry_delay_seconds=1), max_active_tasks=cap)
    created: set[tuple[int, int | None, int]] = set()
    now = T0
    pending: list[Observation] = []
    stale: list[Observation] = []
    history: list[Observation] = []
    retries_left = 2 if operator else 0
    cancelled = False
    for step in range(300):
        observations = stale + pending
        before = _active(sim)
        reported = {
            (o.task, o.item, o.attempt) for o in pending if isinstance(o, AgentFinished | PodObserved)
        }
        first = plan(spec, sim.run, observations, now, sim.settings)
        assert first == plan(spec, sim.run, observations, now, sim.settings), "plan is not deterministic"
        actions = sim.step(*observations, now=now)
        status = sim.run.status
        for action in actions:
            if not isinstance(action, CreatePod):
                continue
            assert not cancelled, "a cancelled run created a pod"
            key = (action.task, action.item, action.attempt)
            assert key not in created, f"second pod for attempt {key}"
            created.add(key)
            ups = [TaskState(status.taskStates[u]) for u in spec.tasks[action.task].upstreams]
            assert decide(spec.tasks[action.task].trigger, ups) is Decision.RUN
        if cap is not None:
            assert len(_active(sim)) <= cap
        after = set(_active(sim))
        for attempt in before:
            stopped = cancelled and attempt[2] >= 1
            assert attempt in after or attempt in reported or stopped, f"{attempt} ended without a report"
        if cancelled:
            deleted = {a.name for a in actions if isinstance(a, DeletePod)}
            assert len(deleted) >= len(before) or status.phase is RunPhase.CANCELLED
        again = plan(spec, sim.run, [], now, sim.settings)
        assert not any(isinstance(a, CreatePod) for a in again), "replanning created a pod"
        if status.phase in TERMINAL_RUN_PHASES:
            assert not _active(sim)
            if cancelled:
                assert status.phase is RunPhase.CANCELLED
            if status.phase is RunPhase.FAILED and retries_left:
                retries_left -= 1
                sim.run = replace(sim.run, retry_generation=sim.run.retry_generation + 1)
            else:
                return
        elif operator and not cancelled and data.draw(st.integers(0, 30)) == 0:
            cancelled = True
            sim.run = replace(sim.run, cancel_requested=True)
        history.extend(pending)
        stale = data.draw(st.lists(st.sampled_from(history), max_size=3)) if history else []
        pending = []
        for task, item, attempt in _active(sim):
            # Reports may be late, but every attempt reports eventually: liveness needs it.
            if step < 50 and data.draw(st.integers(0, 3)) == 0:
                continue
            outcome = data.draw(st.sampled_from(OUTCOMES))
            via = data.draw(st.sampled_from(["agent", "pod", "both", "twice"]))
            pending.extend(_report(task, item, attempt, outcome, via))
        now += timedelta(seconds=120)
    raise AssertionError(f"run did not terminate: {sim.run.status}")

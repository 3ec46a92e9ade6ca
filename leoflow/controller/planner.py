"""The decision core: ``plan(dag, run, observations, now) -> actions``. Pure and deterministic.

Everything the planner needs to resume is in the DAGRun status it returns (compact task states,
attempt counters, finish times from which retry wake-ups are recomputed), so a restarted
controller plans exactly as the one that crashed. The planner never waits on a queue: a task's pod
is created in the same decision that sees its upstreams satisfy its trigger rule, and a capped run
simply creates fewer pods now and more on the next decision.

The state machine (one per task, and one per fan-out item) is documented in docs/controller.md.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from leoflow.controller.actions import (
    Action,
    CreatePod,
    DeletePod,
    EmitEvent,
    ReleasePod,
    RequeueAt,
    StartSensor,
    StopSensor,
    UpdateRunStatus,
)
from leoflow.controller.observations import (
    AgentFinished,
    AgentStarted,
    AgentTerminating,
    Observation,
    PodObserved,
    SensorFinished,
    SensorProgress,
)
from leoflow.controller.podnames import AttemptKey, attempt_pod_name
from leoflow.controller.podspec import PodBuildSettings, PodSpecError, RunIdentity, build_pod
from leoflow.controller.podstatus import FAILURE_CLASS, FailureClass, FailureReason, PodPhase
from leoflow.controller.triggers import Decision, decide
from leoflow.spec.resources import (
    IN_FLIGHT_TASK_STATES,
    TERMINAL_RUN_PHASES,
    TERMINAL_TASK_STATES,
    Condition,
    DagRunSpec,
    DagRunStatus,
    DagSpec,
    RunPhase,
    TaskDetail,
    TaskState,
    progress,
)
from leoflow.spec.templates import RenderContext

ACTIVE = frozenset({TaskState.SCHEDULED, TaskState.RUNNING})
"""States of an attempt that was let start (a prepared one was not)."""
_UNDERWAY = frozenset({TaskState.SUCCEEDED, TaskState.RUNNING})
"""Upstream states under which a prestart task's pod is created ahead. Not Scheduled: a pod
created beside its upstream's could take the last slot of a quota or a node from it, and then
wait for an upstream that cannot start."""
_PREPARED_WAITS = frozenset(
    {
        FailureReason.UNSCHEDULABLE,
        FailureReason.START_TIMEOUT,
        FailureReason.IMAGE_PULL_FAILED,
        FailureReason.AGENT_IMAGE_PULL_FAILED,
        FailureReason.CONFIG_ERROR,
    }
)
"""Bounded waits a prepared pod may meet before its upstreams end: they hold the resources it
needs, or may be what pushes its image or creates its ConfigMap or Secret. Each bound counts from
the release (``PodContext.released_at``), as if the pod had been created then."""
_CURABLE_BY_UPSTREAMS = frozenset({FailureReason.IMAGE_PULL_FAILED, FailureReason.CONFIG_ERROR})
"""Of those waits, the ones its upstreams may have ended by the release (the image pushed, the
ConfigMap or Secret created) while the kubelet would only notice on its back-off: up to five
minutes for an image, and a config error still shown at the release fails the task at once. Such
a prepared pod is replaced at the release by a fresh one, on the infrastructure budget, which
starts as the task would have started without prestart."""
TEMPLATE_ERROR = "TemplateError"
FAN_OUT_ERROR = "FanOutError"
OUTPUTS_ERROR = "OutputsError"
RUN_TIMEOUT = "RunTimeout"
SUCCEEDED_CONDITION = "Succeeded"
RETRIED_CONDITION = "Retried"
_CONFIG_REASONS = frozenset({TEMPLATE_ERROR, FAN_OUT_ERROR, OUTPUTS_ERROR})
_MAX_BACKOFF_EXPONENT = 64


class PlanError(ValueError):
    """The run's status cannot be read back (edited by hand or written by another version)."""


@dataclass(frozen=True)
class PlanSettings:
    """Controller-wide policy. ``infra_retries`` is the budget for failures that are not the
    task's fault (eviction, preemption, node loss, agent failure), separate from its retries."""

    infra_retries: int = 3
    infra_retry_delay_seconds: float = 5.0
    delete_succeeded_pods: bool = True
    agent_exit_code: int = 125
    prestart: bool = False
    """Whether tasks compiled with ``prestart`` get their pods ahead: only an agent server can
    release them, so a controller without one creates every pod when its task starts."""
    pod: PodBuildSettings = field(default_factory=PodBuildSettings)


@dataclass(frozen=True)
class RunView:
    """One DAGRun as the planner sees it: identity, spec, last written status and the requests
    that live outside the spec (cancel, retry generation, caps) as the adapter resolved them."""

    dag: str
    name: str
    namespace: str
    uid: str
    spec: DagRunSpec
    status: DagRunStatus
    created: datetime
    cancel_requested: bool = False
    retry_generation: int = 0
    max_active_tasks: int | None = None
    timeout_seconds: int | None = None

    @property
    def identity(self) -> RunIdentity:
        return RunIdentity(dag=self.dag, name=self.name, namespace=self.namespace, uid=self.uid)


Unit = tuple[int, int | None]


def detail_key(task: int, item: int | None) -> str:
    return str(task) if item is None else f"{task}/{item}"


def plan(
    dag: DagSpec,
    run: RunView,
    observations: Iterable[Observation],
    now: datetime,
    settings: PlanSettings | None = None,
) -> list[Action]:
    """Decide what to do for ``run`` now. Applying the returned ``UpdateRunStatus`` and planning
    again with no new observations yields no new pod: decisions are idempotent."""
    work = _Work(dag, run, now, settings or PlanSettings())
    work.run_retry()
    for observation in observations:
        work.observe(observation)
    if not work.terminal_before:
        work.deadlines()
        if not work.stopped:
            work.advance()
    work.finish()
    return work.actions()


@dataclass
class _Work:
    dag: DagSpec
    run: RunView
    now: datetime
    settings: PlanSettings
    codes: list[TaskState] = field(default_factory=list)
    items: dict[int, list[TaskState]] = field(default_factory=dict)
    details: dict[str, TaskDetail] = field(default_factory=dict)
    creates: list[Action] = field(default_factory=list)
    deletes: list[Action] = field(default_factory=list)
    events: list[EmitEvent] = field(default_factory=list)
    timers: list[datetime] = field(default_factory=list)
    interrupted: dict[Unit, int] = field(default_factory=dict)
    """Attempts whose agent forwarded a termination signal, by unit: the signal."""
    cannot_start: dict[Unit, str] = field(default_factory=dict)
    """Prepared attempts whose pod waits on something its upstreams may cure, by unit: the pod's
    message (``_CURABLE_BY_UPSTREAMS``)."""
    agent_seen: bool = False
    """Some pod of this run carries the agent (the webhook injected it) or an agent reported. Its
    other pods are injected alike (same namespace, same labels); only then is a pod created
    ahead, since only its agent holds the command back."""
    retried_generation: int = 0
    stopped: str | None = None
    stop_phase: RunPhase = RunPhase.FAILED
    terminal_before: bool = False
    restarted: bool = False
    status: DagRunStatus | None = None
    _outputs: dict[str, dict[str, str]] | None = None

    def __post_init__(self) -> None:
        status = self.run.status
        n = len(self.dag.tasks)
        if status.taskStates and len(status.taskStates) != n:
            raise PlanError(
                f"status.taskStates has {len(status.taskStates)} tasks but the run's DAG has {n}: "
                "the run must be planned with the definition it started with"
            )
        codes = status.taskStates or "." * n
        self.codes = _codes(codes, "status.taskStates")
        for key, row in status.items.items():
            index = int(key) if key.isdigit() else -1
            if not 0 <= index < n or self.dag.tasks[index].fanOut is None:
                raise PlanError(f"status.items[{key!r}] does not name a fan-out task of this DAG")
            self.items[index] = _codes(row, f"status.items[{key!r}]")
        self.details = dict(status.tasks)
        self.retried_generation = _retried_generation(status)
        self.terminal_before = status.phase in TERMINAL_RUN_PHASES

    # -- state access -------------------------------------------------------------------------

    def code(self, unit: Unit) -> TaskState:
        task, item = unit
        return self.codes[task] if item is None else self.items[task][item]

    def set_code(self, unit: Unit, code: TaskState) -> None:
        task, item = unit
        if item is None:
            self.codes[task] = code
        else:
            self.items[task][item] = code

    def detail(self, unit: Unit) -> TaskDetail:
        return self.details.get(detail_key(*unit)) or TaskDetail()

    def set_detail(self, unit: Unit, **changes: object) -> None:
        self.details[detail_key(*unit)] = self.detail(unit).model_copy(update=changes)

    def name(self, unit: Unit) -> str:
        task, item = unit
        return self.dag.tasks[task].name if item is None else f"{self.dag.tasks[task].name}[{item}]"

    def pod_name(self, unit: Unit, attempt: int) -> str:
        return _unit_pod_name(self.dag, self.run, unit, attempt)

    def units(self) -> list[Unit]:
        out: list[Unit] = []
        for task in range(len(self.codes)):
            if task in self.items:
                out.extend((task, i) for i in range(len(self.items[task])))
            else:
                out.append((task, None))
        return out

    # -- run retry ---------------------------------------------------------------------------

    def run_retry(self) -> None:
        generation = self.run.retry_generation
        if generation <= self.retried_generation:
            return
        self.retried_generation = generation
        if self.run.status.phase not in (RunPhase.FAILED, RunPhase.CANCELLED):
            return
        again = frozenset({TaskState.FAILED, TaskState.UPSTREAM_FAILED, TaskState.CANCELLED})
        for task, code in enumerate(self.codes):
            if task in self.items:
                if code in again:
                    row = self.items[task]
                    self.items[task] = [TaskState.PENDING if c in again else c for c in row]
                    # Back through its trigger rule: its upstreams may be retried too.
                    self.codes[task] = TaskState.PENDING
            elif code in again:
                self.codes[task] = TaskState.PENDING
                if detail_key(task, None) in self.details:
                    self.set_detail((task, None), message=None, reason=None, exitCode=None, pod=None)
        self.terminal_before = False
        self.restarted = True
        self.events.append(
            EmitEvent("Normal", "RunRetried", f"retrying failed tasks (generation {generation})")
        )

    # -- observations ------------------------------------------------------------------------

    def observe(self, obs: Observation) -> None:
        if isinstance(obs, SensorFinished):
            self._sensor_finished(obs)
            return
        if isinstance(obs, SensorProgress):
            self._sensor_progress(obs)
            return
        unit: Unit = (obs.task, obs.item)
        if not self._known(unit):
            return
        current = self.detail(unit).attempt
        active = self.code(unit) in IN_FLIGHT_TASK_STATES and not self.terminal_before
        if isinstance(obs, PodObserved):
            self.agent_seen = self.agent_seen or obs.agent
            self._pod_observed(unit, obs, current, active)
            return
        if obs.attempt != current or not active:
            return
        self.agent_seen = True
        if isinstance(obs, AgentStarted):
            self._running(unit, obs.at)
        elif isinstance(obs, AgentTerminating):
            self.interrupted[unit] = obs.signal
            self.set_detail(unit, message=f"received signal {obs.signal}: the pod is being stopped")
        else:
            self._agent_finished(unit, obs)

    def _known(self, unit: Unit) -> bool:
        task, item = unit
        if not 0 <= task < len(self.codes):
            return False
        if item is None:
            return task not in self.items
        return task in self.items and 0 <= item < len(self.items[task])

    def _pod_observed(self, unit: Unit, obs: PodObserved, current: int, active: bool) -> None:
        status = obs.status
        if obs.attempt != current or not active:
            superseded = obs.attempt < current or (obs.attempt == current and not active)
            # A pod of an attempt the status never recorded: created while its status write failed.
            # Deleted unless this plan starts that very attempt again (see actions()).
            unrecorded = obs.attempt > current
            exited = obs.attempt == current and self._exited(unit)
            # A stranded one is terminal only in our verdict: Kubernetes would keep it forever.
            alive = not status.terminal or status.stranded
            if (superseded or unrecorded) and alive and not obs.deleting and not exited:
                self.deletes.append(DeletePod(obs.pod, "attempt no longer current"))
            elif (
                obs.attempt == current
                and status.terminal
                and not obs.deleting
                and self.code(unit) is TaskState.SUCCEEDED
                and self.settings.delete_succeeded_pods
            ):
                self.deletes.append(DeletePod(obs.pod, "task succeeded"))
            return
        if status.deadline is not None:
            self.timers.append(status.deadline)
        if self.code(unit) is TaskState.PREPARED and (
            not status.terminal or status.reason in _PREPARED_WAITS
        ):
            # Running is its agent waiting for the go; the other waits are bounded from the release.
            if status.terminal and status.message != (self.detail(unit).message or ""):
                self.set_detail(unit, message=status.message)
            if (status.reason if status.terminal else status.fails_as) in _CURABLE_BY_UPSTREAMS:
                self.cannot_start[unit] = status.message
            return
        if status.phase is PodPhase.SUCCEEDED and obs.outputs_error:
            self._final_failure(unit, OUTPUTS_ERROR, obs.outputs_error, 0)
        elif status.phase is PodPhase.SUCCEEDED:
            self._succeeded(unit, dict(obs.outputs), exit_code=0)
            if self.settings.delete_succeeded_pods and not obs.deleting:
                self.deletes.append(DeletePod(obs.pod, "task succeeded"))
        elif status.phase is PodPhase.FAILED:
            reason = status.reason or FailureReason.UNKNOWN
            self._failed(unit, reason.value, FAILURE_CLASS[reason], status.message, status.exit_code)
            if status.stranded and not obs.deleting:
                # Kubernetes would keep it waiting forever, and the run may end in this decision.
                self.deletes.append(DeletePod(obs.pod, f"attempt failed: {reason.value}"))
        elif status.phase is PodPhase.RUNNING or status.started:
            self._running(unit, self.now)
            if status.message:
                self.set_detail(unit, message=status.message)
        elif status.message != (self.detail(unit).message or ""):
            self.set_detail(unit, message=status.message or None)

    def _exited(self, unit: Unit) -> bool:
        """Whether the current attempt's process is known to have exited (the agent's Finished can
        arrive before the kubelet marks the pod terminal). Such a pod turns terminal by itself,
        with ``activeDeadlineSeconds`` as the backstop; deleting it would lose its logs and defy
        the cleanup policy, so it is left to finish."""
        code = self.code(unit)
        if code is TaskState.SUCCEEDED:
            return True
        return code in (TaskState.RETRY_WAIT, TaskState.FAILED) and self.detail(unit).exitCode is not None

    def _agent_finished(self, unit: Unit, obs: AgentFinished) -> None:
        if obs.agent_error:
            self._final_failure(unit, FailureReason.START_ERROR.value, obs.agent_error, obs.exit_code)
            return
        signal = self.interrupted.get(unit)
        if signal is not None:
            # Deleted, evicted or preempted by someone else (the controller's own stops end the
            # attempt first, so their reports are no longer current): not the task's outcome.
            self._failed(
                unit,
                FailureReason.INTERRUPTED.value,
                FailureClass.INFRA,
                f"the process exited {obs.exit_code} after signal {signal} reached it: "
                "the pod was deleted, evicted or preempted",
                obs.exit_code,
            )
            return
        if obs.outputs_error:
            self._final_failure(unit, OUTPUTS_ERROR, obs.outputs_error, obs.exit_code)
            return
        if obs.exit_code == 0:
            self._succeeded(unit, dict(obs.outputs), exit_code=0)
            return
        if obs.exit_code == self.settings.agent_exit_code:
            reason, message = FailureReason.AGENT_ERROR, f"leoflow-agent failed (exit code {obs.exit_code})"
        elif obs.oom:
            reason, message = FailureReason.OOM_KILLED, f"OOMKilled (exit code {obs.exit_code})"
        else:
            reason, message = FailureReason.USER_ERROR, f"exit code {obs.exit_code}"
        self._failed(unit, reason.value, FAILURE_CLASS[reason], message, obs.exit_code)

    def _sensor_finished(self, obs: SensorFinished) -> None:
        unit: Unit = (obs.task, None)
        if not self._known(unit) or self.code(unit) not in ACTIVE or self.terminal_before:
            return
        self.set_detail(unit, sensorState=None)
        if obs.succeeded:
            self._succeeded(unit, {}, exit_code=None)
        elif obs.soft_fail:
            self.set_code(unit, TaskState.SKIPPED)
            self.set_detail(unit, message=obs.message or None, finishTime=_iso(self.now))
        else:
            self._final_failure(unit, "SensorFailed", obs.message or "sensor gave up", None)

    def _sensor_progress(self, obs: SensorProgress) -> None:
        unit: Unit = (obs.task, None)
        if not self._known(unit) or self.code(unit) is not TaskState.RUNNING or self.terminal_before:
            return
        if self.dag.tasks[obs.task].sensor is not None and self.detail(unit).sensorState != obs.state:
            self.set_detail(unit, sensorState=obs.state)

    # -- transitions ---------------------------------------------------------------------------

    def _running(self, unit: Unit, at: datetime) -> None:
        self.set_code(unit, TaskState.RUNNING)
        if self.detail(unit).startTime is None:
            self.set_detail(unit, startTime=_iso(at), message=None)

    def _succeeded(self, unit: Unit, outputs: dict[str, str], exit_code: int | None) -> None:
        self.set_code(unit, TaskState.SUCCEEDED)
        self._outputs = None
        d = self.detail(unit)
        if d.attempt == 1 and not outputs and d.infraAttempts == 0:
            self.details.pop(detail_key(*unit), None)
            return
        self.set_detail(
            unit,
            outputs=outputs,
            exitCode=exit_code,
            pod=None,
            message=None,
            reason=None,
            finishTime=_iso(self.now),
        )

    def _failed(
        self, unit: Unit, reason: str, kind: FailureClass, message: str, exit_code: int | None
    ) -> None:
        d = self.detail(unit)
        generations = self.retried_generation + 1
        profile = self.dag.profiles[self.dag.tasks[unit[0]].profile]
        if kind is FailureClass.INFRA:
            retry = self._infra_budget_left(unit)
            self.set_detail(unit, infraAttempts=d.infraAttempts + 1)
        elif kind is FailureClass.USER:
            retry = d.attempt - d.infraAttempts < (profile.retries + 1) * generations
        else:
            retry = False
        if not retry:
            self._final_failure(unit, reason, message, exit_code)
            return
        self.set_code(unit, TaskState.RETRY_WAIT)
        self.set_detail(
            unit, reason=reason, message=message, exitCode=exit_code, pod=None, finishTime=_iso(self.now)
        )
        wake = self._wake(unit)
        self.timers.append(wake)
        self.events.append(
            EmitEvent(
                "Warning",
                "TaskRetrying",
                f"{self.name(unit)} attempt {d.attempt} failed ({reason}: {message}); "
                f"retrying at {_iso(wake)}",
            )
        )

    def _final_failure(self, unit: Unit, reason: str, message: str, exit_code: int | None) -> None:
        self.set_code(unit, TaskState.FAILED)
        self.set_detail(
            unit, reason=reason, message=message, exitCode=exit_code, pod=None, finishTime=_iso(self.now)
        )
        self.events.append(
            EmitEvent("Warning", "TaskFailed", f"{self.name(unit)} failed: {reason}: {message}")
        )

    def _wake(self, unit: Unit) -> datetime:
        d = self.detail(unit)
        finished = _parse(d.finishTime) or self.now
        if d.reason is not None and _reason_class(d.reason) is FailureClass.INFRA:
            return finished + timedelta(seconds=self.settings.infra_retry_delay_seconds)
        profile = self.dag.profiles[self.dag.tasks[unit[0]].profile]
        failures = max(d.attempt - d.infraAttempts, 1)
        exponent = min(failures - 1, _MAX_BACKOFF_EXPONENT)
        delay = min(
            profile.retryDelaySeconds * math.pow(profile.retryBackoff, exponent),
            float(profile.maxRetryDelaySeconds),
        )
        return finished + timedelta(seconds=delay)

    # -- deadlines -----------------------------------------------------------------------------

    def deadlines(self) -> None:
        if self.run.cancel_requested:
            self._stop(RunPhase.CANCELLED, "Cancelled", "run cancelled")
            return
        started = None if self.restarted else _parse(self.run.status.startTime)
        if self.run.timeout_seconds is not None and started is not None:
            limit = started + timedelta(seconds=self.run.timeout_seconds)
            if self.now >= limit:
                self._stop(
                    RunPhase.FAILED, RUN_TIMEOUT, f"run exceeded its timeout of {self.run.timeout_seconds}s"
                )
                return
            self.timers.append(limit)
        for unit in self.units():
            if self.code(unit) is not TaskState.RUNNING:
                continue
            task = self.dag.tasks[unit[0]]
            timeout = self.dag.profiles[task.profile].timeoutSeconds
            begun = _parse(self.detail(unit).startTime)
            if timeout is None or begun is None or task.sensor is not None:
                continue
            limit = begun + timedelta(seconds=timeout)
            if self.now < limit:
                self.timers.append(limit)
                continue
            attempt = self.detail(unit).attempt
            self.deletes.append(DeletePod(self.pod_name(unit, attempt), "task timed out"))
            self._failed(
                unit,
                FailureReason.DEADLINE_EXCEEDED.value,
                FailureClass.USER,
                f"task exceeded its timeout of {timeout}s",
                None,
            )

    def _stop(self, phase: RunPhase, reason: str, message: str) -> None:
        self.stopped = reason
        self.stop_phase = phase
        for unit in self.units():
            code = self.code(unit)
            if code in TERMINAL_TASK_STATES:
                continue
            if code in IN_FLIGHT_TASK_STATES:
                self._stop_attempt(unit, reason)
            final = TaskState.FAILED if phase is RunPhase.FAILED and code in ACTIVE else TaskState.CANCELLED
            self.set_code(unit, final)
            self.set_detail(unit, reason=reason, message=message, pod=None, finishTime=_iso(self.now))
        for task, row in self.items.items():
            if self.codes[task] not in TERMINAL_TASK_STATES:
                self.codes[task] = _aggregate(row)

    def _stop_attempt(self, unit: Unit, why: str) -> None:
        task = self.dag.tasks[unit[0]]
        if task.sensor is not None:
            self.deletes.append(StopSensor(unit[0]))
        else:
            self.deletes.append(DeletePod(self.pod_name(unit, self.detail(unit).attempt), why))

    # -- forward pass --------------------------------------------------------------------------

    def advance(self) -> None:
        budget = self._budget()
        for task_index, task in enumerate(self.dag.tasks):
            code = self.codes[task_index]
            if code is TaskState.PENDING:
                upstreams = [self.codes[u] for u in task.upstreams]
                decision = decide(task.trigger, upstreams)
                if decision in (Decision.UPSTREAM_FAILED, Decision.SKIP):
                    final = _never_runs(decision)
                    self.codes[task_index] = final
                    if task_index in self.items:
                        row = self.items[task_index]
                        self.items[task_index] = [c if c in TERMINAL_TASK_STATES else final for c in row]
                    continue
                if decision is Decision.WAIT:
                    if self._may_prepare(task_index):
                        budget = self._start(task_index, None, budget, prepared=True)
                    continue
                if task.sensor is not None:
                    self.codes[task_index] = TaskState.RUNNING
                    self.set_detail((task_index, None), startTime=_iso(self.now), sensorState=None)
                    self.creates.append(StartSensor(task_index))
                    continue
                if task.fanOut is not None:
                    if task_index in self.items:
                        self.codes[task_index] = TaskState.RUNNING
                    elif not self._expand(task_index):
                        continue
            if task_index in self.items:
                if self.codes[task_index] is TaskState.RUNNING:
                    budget = self._advance_items(task_index, budget)
            elif task.prestart and self.codes[task_index] in (TaskState.PREPARED, TaskState.RETRY_WAIT):
                budget = self._advance_prepared(task_index, budget)
            elif self.codes[task_index] in (TaskState.PENDING, TaskState.RETRY_WAIT):
                budget = self._start(task_index, None, budget)

    def _may_prepare(self, task_index: int) -> bool:
        """One level ahead: every upstream is running (or done), none only scheduled or prepared,
        and the run's pods are known to carry the agent. A pod without it (in a namespace the
        webhook leaves alone) would run its command at once, beside its upstreams: there pods are
        created when their upstreams end, as without prestart."""
        task = self.dag.tasks[task_index]
        return (
            task.prestart
            and self.settings.prestart
            and self.run.max_active_tasks is None
            and all(self.codes[u] in _UNDERWAY for u in task.upstreams)
            and self.agent_seen
        )

    def _advance_prepared(self, task_index: int, budget: int | None) -> int | None:
        """A prestart task whose pod waits (or whose prepared attempt failed and waits to be tried
        again): released once its upstreams succeed, its pod deleted if they fail."""
        unit: Unit = (task_index, None)
        task = self.dag.tasks[task_index]
        decision = decide(task.trigger, [self.codes[u] for u in task.upstreams])
        code = self.codes[task_index]
        if decision is Decision.RUN:
            if code is TaskState.RETRY_WAIT:
                return self._start(task_index, None, budget)
            if unit in self.cannot_start and self._infra_budget_left(unit):
                return self._replace_prepared(unit, budget)
            self.set_code(unit, TaskState.SCHEDULED)
            self.set_detail(unit, releaseTime=_iso(self.now))
            attempt = self.detail(unit).attempt
            self.creates.append(ReleasePod(task_index, None, attempt, self.pod_name(unit, attempt)))
        elif decision in (Decision.UPSTREAM_FAILED, Decision.SKIP):
            if code is TaskState.PREPARED:
                self._stop_attempt(unit, "its upstreams did not succeed")
            final = _never_runs(decision)
            self.set_code(unit, final)
            self.set_detail(unit, pod=None, finishTime=_iso(self.now))
        elif code is TaskState.RETRY_WAIT and self._may_prepare(task_index):
            return self._start(task_index, None, budget, prepared=True)
        return budget

    def _infra_budget_left(self, unit: Unit) -> bool:
        return self.detail(unit).infraAttempts < self.settings.infra_retries * (self.retried_generation + 1)

    def _replace_prepared(self, unit: Unit, budget: int | None) -> int | None:
        """Its upstreams are done, but its pod still waits on what they may have cured: a fresh
        pod starts as one created now would, without the kubelet's back-off of the old one."""
        d = self.detail(unit)
        self._stop_attempt(unit, "replaced at its release: it could not start")
        self.set_detail(unit, infraAttempts=d.infraAttempts + 1)
        self.events.append(
            EmitEvent(
                "Normal",
                "PreparedPodReplaced",
                f"{self.name(unit)} attempt {d.attempt} could not start while its upstreams ran "
                f"({self.cannot_start[unit]}); they are done, so attempt {d.attempt + 1} "
                "starts in a fresh pod",
            )
        )
        return self._start(unit[0], None, budget)

    def _budget(self) -> int | None:
        cap = self.run.max_active_tasks
        if cap is None:
            return None
        active = sum(
            1 for unit in self.units() if self.code(unit) in ACTIVE and self.dag.tasks[unit[0]].sensor is None
        )
        return max(cap - active, 0)

    def _advance_items(self, task_index: int, budget: int | None) -> int | None:
        row = self.items[task_index]
        fan = self.dag.tasks[task_index].fanOut
        room = None
        if fan is not None and fan.maxParallel is not None:
            room = fan.maxParallel - sum(1 for c in row if c in ACTIVE)
        for item, code in enumerate(row):
            if code not in (TaskState.PENDING, TaskState.RETRY_WAIT):
                continue
            if room is not None and room <= 0:
                break
            budget = self._start(task_index, item, budget)
            if room is not None and self.code((task_index, item)) in ACTIVE:
                room -= 1
        self.codes[task_index] = _aggregate(row)
        if self.codes[task_index] is TaskState.FAILED:
            failed = sum(1 for c in row if c is TaskState.FAILED)
            self.set_detail(
                (task_index, None), reason="ItemsFailed", message=f"{failed} of {len(row)} items failed"
            )
        return budget

    def _start(
        self, task_index: int, item: int | None, budget: int | None, *, prepared: bool = False
    ) -> int | None:
        unit: Unit = (task_index, item)
        code = self.code(unit)
        if code is TaskState.RETRY_WAIT:
            wake = self._wake(unit)
            if self.now < wake:
                self.timers.append(wake)
                return budget
        if budget is not None and budget <= 0:
            return budget
        exists = detail_key(*unit) in self.details
        attempt = self.detail(unit).attempt + 1 if exists else 1
        try:
            pod = build_pod(
                self.dag,
                self.run.identity,
                task_index,
                attempt=attempt,
                item=item,
                context=self._context(task_index, item),
                settings=self.settings.pod,
                prestart=prepared,
            )
        except PodSpecError as exc:
            self._final_failure(unit, TEMPLATE_ERROR, str(exc), None)
            return budget
        self.set_code(unit, TaskState.PREPARED if prepared else TaskState.SCHEDULED)
        self.set_detail(
            unit, attempt=attempt, pod=pod["metadata"]["name"], startTime=None, message=None, releaseTime=None
        )
        self.creates.append(CreatePod(task_index, item, attempt, pod, prepared=prepared))
        return None if budget is None else budget - 1

    def _expand(self, task_index: int) -> bool:
        fan = self.dag.tasks[task_index].fanOut
        assert fan is not None
        values = self._items(task_index)
        if values is None:
            return False
        self.items[task_index] = [TaskState.PENDING] * len(values)
        self.codes[task_index] = TaskState.SUCCEEDED if not values else TaskState.RUNNING
        return True

    def _items(self, task_index: int) -> list[str] | None:
        fan = self.dag.tasks[task_index].fanOut
        assert fan is not None
        if fan.items is not None:
            return list(fan.items)
        source = fan.fromTask if fan.fromTask is not None else -1
        name = self.dag.tasks[source].name if 0 <= source < len(self.dag.tasks) else "?"
        raw = self.detail((source, None)).outputs.get(fan.fromOutput or "")
        problem = None
        values: object = None
        if raw is None:
            problem = f"task '{name}' reported no output '{fan.fromOutput}' to fan out over"
        else:
            try:
                values = json.loads(raw)
            except ValueError:
                problem = f"output '{fan.fromOutput}' of task '{name}' is not JSON"
            if problem is None and not isinstance(values, list):
                problem = f"output '{fan.fromOutput}' of task '{name}' is not a JSON list"
        if problem is not None or not isinstance(values, list):
            self._final_failure((task_index, None), FAN_OUT_ERROR, problem or "not a list", None)
            return None
        return [v if isinstance(v, str) else json.dumps(v, separators=(",", ":")) for v in values]

    def _context(self, task_index: int, item: int | None) -> RenderContext:
        if self._outputs is None:
            self._outputs = {
                self.dag.tasks[int(key)].name: dict(d.outputs)
                for key, d in self.details.items()
                if d.outputs and "/" not in key
            }
        params = {p.name: p.default for p in self.dag.params if p.default is not None}
        params.update(self.run.spec.params)
        value = None
        if item is not None:
            values = self._items(task_index) or []
            value = values[item] if item < len(values) else None
        logical = self.run.spec.logicalDate or _iso(self.run.created)
        return RenderContext(
            logical_date=logical, run_id=self.run.name, params=params, outputs=self._outputs, item=value
        )

    # -- result --------------------------------------------------------------------------------

    def finish(self) -> None:
        self.status = self._next_status()

    def _next_status(self) -> DagRunStatus:
        old = self.run.status
        states = "".join(c.value for c in self.codes)
        phase = self._phase()
        start = None if self.restarted else old.startTime
        if start is None and (phase is not RunPhase.PENDING or self.creates):
            start = _iso(self.now)
        if phase is RunPhase.PENDING and start is not None:
            phase = RunPhase.RUNNING
        completion = old.completionTime if phase in TERMINAL_RUN_PHASES else None
        if phase in TERMINAL_RUN_PHASES and completion is None:
            completion = _iso(self.now)
        if phase in TERMINAL_RUN_PHASES and old.phase != phase:
            kind: Literal["Normal", "Warning"] = "Normal" if phase is RunPhase.SUCCEEDED else "Warning"
            self.events.append(
                EmitEvent(kind, f"Run{phase.value}", self._message(phase) or f"run {phase.value}")
            )
        return old.model_copy(
            update={
                "phase": phase,
                "definitionHash": old.definitionHash or self.dag.definitionHash,
                "startTime": start,
                "completionTime": completion,
                "progress": progress(states),
                "taskStates": states,
                "items": {str(k): "".join(c.value for c in v) for k, v in sorted(self.items.items())},
                "tasks": dict(sorted(self.details.items())),
                "conditions": self._conditions(phase),
                "message": self._message(phase),
            }
        )

    def _phase(self) -> RunPhase:
        if self.terminal_before:
            return self.run.status.phase
        if self.stopped is not None:
            return self.stop_phase
        if all(c in TERMINAL_TASK_STATES for c in self.codes):
            bad = any(c in (TaskState.FAILED, TaskState.UPSTREAM_FAILED) for c in self.codes)
            return RunPhase.FAILED if bad else RunPhase.SUCCEEDED
        return RunPhase.RUNNING if any(c is not TaskState.PENDING for c in self.codes) else RunPhase.PENDING

    def _message(self, phase: RunPhase) -> str | None:
        if self.stopped is not None and phase is not RunPhase.SUCCEEDED:
            first = next((d.message for d in self.details.values() if d.reason == self.stopped), None)
            return first or self.stopped
        if phase is RunPhase.FAILED:
            failed = [i for i, c in enumerate(self.codes) if c is TaskState.FAILED]
            if not failed:
                return self.run.status.message or "run failed"
            d = self.detail((failed[0], None))
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            return f"task '{self.dag.tasks[failed[0]].name}' failed: {d.reason}: {d.message}{more}"
        if phase is RunPhase.RUNNING:
            for unit in self.units():
                if self.code(unit) is TaskState.SCHEDULED and self.detail(unit).message:
                    return f"{self.name(unit)}: {self.detail(unit).message}"
        return None

    def _conditions(self, phase: RunPhase) -> list[Condition]:
        verdict: Literal["True", "False", "Unknown"] = "Unknown"
        if phase is RunPhase.SUCCEEDED:
            verdict = "True"
        elif phase in TERMINAL_RUN_PHASES:
            verdict = "False"
        reason = self.stopped if self.stopped is not None and phase is not RunPhase.SUCCEEDED else phase.value
        wanted = [Condition(type=SUCCEEDED_CONDITION, status=verdict, reason=reason)]
        if self.retried_generation:
            wanted.append(
                Condition(
                    type=RETRIED_CONDITION,
                    status="True",
                    reason="RetryRequested",
                    observedGeneration=self.retried_generation,
                )
            )
        old = {c.type: c for c in self.run.status.conditions}
        out = []
        for cond in wanted:
            prior = old.get(cond.type)
            same = prior is not None and (prior.status, prior.reason, prior.observedGeneration) == (
                cond.status,
                cond.reason,
                cond.observedGeneration,
            )
            when = prior.lastTransitionTime if same and prior is not None else _iso(self.now)
            out.append(cond.model_copy(update={"lastTransitionTime": when}))
        return out

    def actions(self) -> list[Action]:
        status = self.status or self._next_status()
        out: list[Action] = []
        if status != self.run.status:
            out.append(UpdateRunStatus(status))
        # Pods are created before their status write lands (see reconcile), so a pod can exist
        # for an attempt the stored status does not have yet; starting that attempt adopts it.
        starting = {create.name for create in self.creates if isinstance(create, CreatePod)}
        out.extend(d for d in self.deletes if not (isinstance(d, DeletePod) and d.name in starting))
        out.extend(self.creates)
        out.extend(self.events)
        future = [t for t in self.timers if t > self.now]
        if future and status.phase not in TERMINAL_RUN_PHASES:
            out.append(RequeueAt(min(future)))
        return out


def released_by_success(dag: DagSpec, run: RunView, task: int) -> list[str]:
    """The prepared pods that ``task``'s success lets start, by the same rule the next plan
    applies: their trigger rule decides to run with ``task`` counted as succeeded. The agent sink
    opens their gates as the Finished arrives, so a release does not wait for its run's
    reconcile; that plan then records it. A status it cannot read releases nothing."""
    status = run.status
    if (
        run.cancel_requested
        or status.phase in TERMINAL_RUN_PHASES
        or len(status.taskStates) != len(dag.tasks)
    ):
        return []
    try:
        codes = _codes(status.taskStates, "status.taskStates")
    except PlanError:
        return []
    codes[task] = TaskState.SUCCEEDED
    out = []
    for down in dag.tasks[task].downstreams:
        spec = dag.tasks[down]
        if codes[down] is not TaskState.PREPARED:
            continue
        if decide(spec.trigger, [codes[u] for u in spec.upstreams]) is Decision.RUN:
            detail = status.tasks.get(detail_key(down, None))
            attempt = detail.attempt if detail is not None else 1
            out.append(_unit_pod_name(dag, run, (down, None), attempt))
    return out


def _unit_pod_name(dag: DagSpec, run: RunView, unit: Unit, attempt: int) -> str:
    task, item = unit
    return attempt_pod_name(run.name, AttemptKey(run.uid, dag.tasks[task].name, item, attempt))


def _never_runs(decision: Decision) -> TaskState:
    """The final state of a task whose trigger rule can no longer hold."""
    return TaskState.UPSTREAM_FAILED if decision is Decision.UPSTREAM_FAILED else TaskState.SKIPPED


def _codes(text: str, where: str) -> list[TaskState]:
    try:
        return [TaskState(c) for c in text]
    except ValueError:
        bad = next(c for c in text if c not in {s.value for s in TaskState})
        raise PlanError(f"{where} has the unknown task state code {bad!r}") from None


def _aggregate(row: Sequence[TaskState]) -> TaskState:
    if not all(c in TERMINAL_TASK_STATES for c in row):
        return TaskState.RUNNING
    if any(c is TaskState.CANCELLED for c in row):
        return TaskState.CANCELLED
    return TaskState.FAILED if any(c is not TaskState.SUCCEEDED for c in row) else TaskState.SUCCEEDED


def _reason_class(reason: str) -> FailureClass:
    if reason in _CONFIG_REASONS:
        return FailureClass.CONFIG
    try:
        return FAILURE_CLASS[FailureReason(reason)]
    except ValueError:
        return FailureClass.USER


def _retried_generation(status: DagRunStatus) -> int:
    for cond in status.conditions:
        if cond.type == RETRIED_CONDITION and cond.observedGeneration is not None:
            return cond.observedGeneration
    return 0


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


__all__ = ["PlanError", "PlanSettings", "RunView", "detail_key", "plan", "released_by_success"]

"""A tiny driver for planner tests: plans, applies the status it returns, and keeps what it created."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from leoflow.controller.actions import Action, CreatePod, DeletePod, RequeueAt, UpdateRunStatus
from leoflow.controller.observations import (
    AgentFinished,
    AgentStarted,
    AgentTerminating,
    Observation,
    PodObserved,
)
from leoflow.controller.planner import PlanSettings, RunView, plan
from leoflow.controller.podnames import AttemptKey, attempt_pod_name
from leoflow.controller.podstatus import FailureReason, PodObservation, PodPhase
from leoflow.spec.resources import DagRunSpec, DagRunStatus, DagSpec, TaskState

from .podfixtures import T0


@dataclass
class Sim:
    dag: DagSpec
    run: RunView
    settings: PlanSettings = field(default_factory=PlanSettings)
    created: list[CreatePod] = field(default_factory=list)
    last: list[Action] = field(default_factory=list)

    @classmethod
    def start(cls, dag: DagSpec, settings: PlanSettings | None = None, **run: Any) -> Sim:
        view = RunView(
            dag="etl",
            name="etl-run-1",
            namespace="ns",
            uid="uid-1",
            spec=run.pop("spec", DagRunSpec(dagName="etl")),
            status=DagRunStatus(),
            created=T0,
            **run,
        )
        return cls(dag, view, settings or PlanSettings())

    def step(self, *observations: Observation, now: datetime = T0) -> list[Action]:
        actions = plan(self.dag, self.run, observations, now, self.settings)
        self.last = actions
        for action in actions:
            if isinstance(action, UpdateRunStatus):
                self.run = replace(self.run, status=action.status)
            elif isinstance(action, CreatePod):
                self.created.append(action)
        return actions

    def creates(self) -> list[tuple[str, int | None, int]]:
        return [
            (self.dag.tasks[a.task].name, a.item, a.attempt) for a in self.last if isinstance(a, CreatePod)
        ]

    def deletes(self) -> list[str]:
        return [a.name for a in self.last if isinstance(a, DeletePod)]

    def requeue(self) -> datetime | None:
        return next((a.at for a in self.last if isinstance(a, RequeueAt)), None)

    def state(self, name: str) -> TaskState:
        index = self.dag.task_index()[name]
        return TaskState(self.run.status.taskStates[index])

    def index(self, name: str) -> int:
        return self.dag.task_index()[name]

    def finished(
        self, name: str, exit_code: int = 0, attempt: int = 1, item: int | None = None, **kw: Any
    ) -> AgentFinished:
        return AgentFinished(self.index(name), item, attempt, exit_code, at=T0, **kw)

    def started(self, name: str, attempt: int = 1, at: datetime = T0) -> AgentStarted:
        return AgentStarted(self.index(name), None, attempt, at)

    def terminating(self, name: str, attempt: int = 1, signal: int = 15) -> AgentTerminating:
        return AgentTerminating(self.index(name), None, attempt, signal, at=T0)

    def pod(
        self,
        name: str,
        phase: PodPhase,
        reason: FailureReason | None = None,
        *,
        attempt: int = 1,
        item: int | None = None,
        deleting: bool = False,
        agent: bool = False,
        **kw: Any,
    ) -> PodObserved:
        status = PodObservation(phase, reason, message=str(reason or ""), **kw)
        return PodObserved(
            self.index(name),
            item,
            attempt,
            self.pod_name(name, attempt, item),
            status,
            deleting=deleting,
            agent=agent,
        )

    def pod_name(self, name: str, attempt: int, item: int | None = None) -> str:
        return attempt_pod_name(self.run.name, AttemptKey(self.run.uid, name, item, attempt))

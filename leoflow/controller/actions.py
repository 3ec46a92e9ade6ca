"""What the planner asks the writer to do. Plain values: the writer executes them in order.

The writer creates pods idempotently (deterministic names; ``AlreadyExists`` adopts after
checking the attempt annotation), deletes pods until 404, patches the DAGRun status, records
Events on the DAGRun and schedules the next reconcile of the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from leoflow.spec.resources import DagRunStatus


@dataclass(frozen=True)
class CreatePod:
    task: int
    item: int | None
    attempt: int
    pod: dict[str, Any]
    prepared: bool = False
    """Created ahead of its upstreams' end: not a transition, its agent waits for a ReleasePod."""

    @property
    def name(self) -> str:
        return str(self.pod["metadata"]["name"])


@dataclass(frozen=True)
class ReleasePod:
    """Tell a prepared attempt's agent, waiting in ``WaitStart``, to run the command now."""

    task: int
    item: int | None
    attempt: int
    name: str


@dataclass(frozen=True)
class DeletePod:
    name: str
    reason: str


@dataclass(frozen=True)
class StartSensor:
    task: int


@dataclass(frozen=True)
class StopSensor:
    task: int


@dataclass(frozen=True)
class UpdateRunStatus:
    status: DagRunStatus


@dataclass(frozen=True)
class EmitEvent:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class RequeueAt:
    """Plan this run again at ``at`` (retry backoff, grace deadlines, timeouts)."""

    at: datetime


Action = (
    CreatePod | ReleasePod | DeletePod | StartSensor | StopSensor | UpdateRunStatus | EmitEvent | RequeueAt
)

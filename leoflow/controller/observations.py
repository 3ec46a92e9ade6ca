"""What the planner learns between two decisions: pod status and agent reports, fenced by attempt.

Every observation names the unit of work it is about (task index, fan-out item or ``None``) and
the attempt it belongs to. The planner ignores reports for an attempt that is no longer current
(a late report from attempt 2 when attempt 3 runs), so a slow agent or a replayed watch event can
never move a run backwards or count a failure twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from leoflow.controller.podstatus import PodObservation


@dataclass(frozen=True)
class PodObserved:
    """The classified status of one attempt's pod, from the pod informer (or a live GET).

    ``deleting``: the pod already has a deletionTimestamp (so the planner does not ask again).
    ``outputs``/``outputs_error``: what the agent's termination message says about outputs, for
    when its ``Finished`` report never arrived.
    """

    task: int
    item: int | None
    attempt: int
    pod: str
    status: PodObservation
    deleting: bool = False
    outputs: Mapping[str, str] = field(default_factory=dict)
    outputs_error: str = ""
    agent: bool = False
    """The pod carries the agent (the webhook's ``leoflow.io/agent-version`` annotation)."""


@dataclass(frozen=True)
class AgentStarted:
    """The agent started the user's process: the attempt is running (its timeout starts now)."""

    task: int
    item: int | None
    attempt: int
    at: datetime


@dataclass(frozen=True)
class AgentTerminating:
    """The agent received ``signal`` (SIGTERM: the pod is being deleted, evicted or preempted) and
    forwarded it to the process group. Whatever the process exits with afterwards, the attempt
    was interrupted: a handler that exits 0 must not turn an eviction into a success."""

    task: int
    item: int | None
    attempt: int
    signal: int
    at: datetime


@dataclass(frozen=True)
class AgentFinished:
    """The fast path: the user's process exited. ``oom`` is the cgroup's OOM-kill evidence;
    ``agent_error`` says the agent could not run the command at all; ``outputs_error`` that the
    outputs were refused (over the cap, unreadable), which fails the task with that message."""

    task: int
    item: int | None
    attempt: int
    exit_code: int
    at: datetime
    outputs: Mapping[str, str] = field(default_factory=dict)
    oom: bool = False
    agent_error: str = ""
    outputs_error: str = ""


@dataclass(frozen=True)
class SensorFinished:
    """A sensor task's condition was met (``succeeded``) or it gave up."""

    task: int
    succeeded: bool
    message: str = ""
    soft_fail: bool = False


@dataclass(frozen=True)
class SensorProgress:
    """A waiting sensor's encoded state (``SensorState.encode``), for the status to record so a
    restarted controller resumes it; the reconciler sends it at a bounded rate, never per poke."""

    task: int
    state: str


Observation = PodObserved | AgentStarted | AgentTerminating | AgentFinished | SensorFinished | SensorProgress

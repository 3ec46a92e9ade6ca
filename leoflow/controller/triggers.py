"""Trigger rules: given the states of a task's upstreams, may it run, must it wait, or never run?

The rules are Airflow's. A rule that can no longer be satisfied resolves at once, so a run never
waits for a task that cannot start: ``upstream_failed`` when an upstream failure is the cause,
``skipped`` otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

from leoflow.spec.resources import TERMINAL_TASK_STATES, TaskState

_FAILED = frozenset({TaskState.FAILED, TaskState.UPSTREAM_FAILED, TaskState.CANCELLED})


class Decision(Enum):
    RUN = "run"
    WAIT = "wait"
    UPSTREAM_FAILED = "upstream_failed"
    SKIP = "skip"


def decide(rule: str, upstreams: Sequence[TaskState]) -> Decision:
    if not upstreams:
        return Decision.RUN
    done = all(s in TERMINAL_TASK_STATES for s in upstreams)
    succeeded = sum(1 for s in upstreams if s is TaskState.SUCCEEDED)
    failed = sum(1 for s in upstreams if s in _FAILED)
    skipped = sum(1 for s in upstreams if s is TaskState.SKIPPED)
    if rule == "all_success":
        if failed:
            return Decision.UPSTREAM_FAILED
        if skipped:
            return Decision.SKIP
        return Decision.RUN if done else Decision.WAIT
    if rule == "all_done":
        return Decision.RUN if done else Decision.WAIT
    if rule == "all_failed":
        if succeeded or skipped:
            return Decision.SKIP
        return Decision.RUN if done else Decision.WAIT
    if rule == "one_success":
        if succeeded:
            return Decision.RUN
        if not done:
            return Decision.WAIT
        return Decision.UPSTREAM_FAILED if failed else Decision.SKIP
    if rule == "one_failed":
        if failed:
            return Decision.RUN
        return Decision.SKIP if done else Decision.WAIT
    if rule == "none_failed":
        if failed:
            return Decision.UPSTREAM_FAILED
        return Decision.RUN if done else Decision.WAIT
    raise ValueError(f"unknown trigger rule {rule!r}")

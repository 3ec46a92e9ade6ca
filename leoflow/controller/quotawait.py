"""Pods refused for an exceeded ResourceQuota wait for room instead of failing (failures.md 6).

A namespace's quota being full is capacity, not a fault of the task or of the platform: Airflow
and Argo treat it as transient and Tekton requeues. Spending the infrastructure retries on it
failed a fan-out of fifty items under a ten-pod quota within seconds. Here the attempt stays
Scheduled, with the API server's message as its live waiting reason; the create is sent again,
with the same pod name, after a jittered exponential backoff; and only a wait longer than the
bound (``ReconcileSettings.quota_wait``) fails the attempt as ExceededQuota.

The waits live in the controller's memory: after a restart, the in-flight attempt without a pod
is judged by the missing-pod rule and tried again, which starts a new wait.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from leoflow.controller.podstatus import PodObservation, PodPhase

FIRST_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 30.0
JITTER = 0.2
"""Each delay is drawn within this fraction of itself, so a namespace full of waiting creates
does not knock on the quota in lockstep."""


def backoff(tries: int, draw: Callable[[float, float], float] = random.uniform) -> float:
    """Seconds before the create is sent again after its ``tries``-th refusal."""
    base = min(FIRST_DELAY_SECONDS * 2 ** max(tries - 1, 0), MAX_DELAY_SECONDS)
    return draw(base * (1 - JITTER), base * (1 + JITTER))


@dataclass
class _Wait:
    first: float
    since: datetime
    tries: int = 0
    due: float = 0.0
    message: str = ""


class QuotaWaits:
    """Pod name to its wait. ``now`` is the event loop's clock; ``wall`` the controller's UTC
    clock, for the deadline the planner schedules its next look at."""

    def __init__(self, bound: float, draw: Callable[[float, float], float] = random.uniform) -> None:
        self.bound = bound
        self._draw = draw
        self._waits: dict[str, _Wait] = {}

    def refused(self, pod: str, message: str, now: float, wall: datetime) -> float | None:
        """Records a refusal; returns when to send the create again, or None once the wait has
        lasted longer than the bound (the refusal is then the attempt's failure)."""
        wait = self._waits.setdefault(pod, _Wait(first=now, since=wall))
        if now - wait.first >= self.bound:
            del self._waits[pod]
            return None
        wait.tries += 1
        wait.due = now + backoff(wait.tries, self._draw)
        wait.message = message
        return wait.due

    def holds(self, pod: str, now: float) -> float | None:
        """When the create of ``pod`` may go out again, if that is still to come."""
        wait = self._waits.get(pod)
        return wait.due if wait is not None and now < wait.due else None

    def observation(self, pod: str) -> PodObservation | None:
        """What the planner sees of a waiting attempt: pending, with the API server's words."""
        wait = self._waits.get(pod)
        if wait is None:
            return None
        return PodObservation(
            PodPhase.PENDING,
            message=f"waiting for quota ({wait.tries} refused): {wait.message}",
            deadline=wait.since + timedelta(seconds=self.bound),
        )

    def forget(self, pod: str) -> None:
        self._waits.pop(pod, None)

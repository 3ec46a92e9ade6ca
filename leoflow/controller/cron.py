"""DAG schedules: which DAGRuns to create (and which to cancel) now. A pure core and a thin loop.

``plan_schedule`` decides from the schedule, the last time it was handled, the clock and the DAG's
active scheduled runs: the due fire times in ``(since, now]``; without ``catchup`` only the latest
of them; ``Forbid`` skips them while a run is active, ``Replace`` cancels the active runs and
starts the latest, ``Allow`` starts as many as ``maxActiveRuns`` leaves room for and keeps the
rest for later. Fires missed while the controller was down are simply due fires: the same policy
applies. Run names are deterministic (``<dag>-<yyyymmdd>t<hhmm>``, UTC), so creating one twice is
an ``AlreadyExists`` that means "done", and two replicas can never double-schedule.

``CronScheduler`` (leader only) applies the plan: creates the runs, cancels through the
``leoflow.io/cancel`` annotation, and records ``lastScheduleTime``/``nextScheduleTime`` in the DAG
status, the mark from which the next due fires are counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from leoflow.controller.kube.errors import ApiError, NotLeader
from leoflow.controller.kube.informer import Informer
from leoflow.controller.kube.transport import DAGRUNS, DAGS, KubeObject
from leoflow.controller.kube.writer import MERGE_PATCH, Writer
from leoflow.controller.runview import CANCEL_ANNOTATION
from leoflow.spec.resources import (
    TERMINAL_RUN_PHASES,
    CompiledSchedule,
    DagRunSpec,
    DagStatus,
    RunPhase,
    dagrun_resource,
    dump,
)
from leoflow.spec.schedule import next_fire_times

log = logging.getLogger(__name__)

SCHEDULED_LABEL = "leoflow.io/scheduled"
DAG_LABEL = "leoflow.io/dag"
MAX_DUE = 1000
"""At most this many fire times are considered per decision (a decade of a minutely schedule
is not backfilled in one go; the rest follow on the next ticks)."""


@dataclass(frozen=True)
class CronPlan:
    create: list[datetime]
    """Logical dates to start runs for, oldest first."""
    cancel: list[str]
    """Active runs to cancel (Replace)."""
    skipped: list[datetime]
    """Due fires that will never run (Forbid while a run is active; older fires without catchup)."""
    last_scheduled: datetime | None
    """The new mark: every fire up to it is handled."""
    next_fire: datetime | None


def scheduled_run_name(dag: str, logical: datetime) -> str:
    return f"{dag}-{logical.astimezone(UTC):%Y%m%dt%H%M}"


def due_fires(schedule: CompiledSchedule, since: datetime, now: datetime) -> list[datetime]:
    """Fire times strictly after ``since`` and at most ``now`` (at most ``MAX_DUE``)."""
    out: list[datetime] = []
    after = since
    while len(out) < MAX_DUE:
        batch = next_fire_times(schedule.cron, schedule.timezone, after, count=64)
        for fire in batch:
            if fire > now or len(out) >= MAX_DUE:
                return out
            out.append(fire)
        after = batch[-1]
    return out


def plan_schedule(
    schedule: CompiledSchedule, *, since: datetime, now: datetime, active: Sequence[str]
) -> CronPlan:
    """What to do for one DAG now; ``active`` are its scheduled runs that have not finished."""
    due = due_fires(schedule, since, now)
    upcoming = next_fire_times(schedule.cron, schedule.timezone, now, count=1)[0]
    if not due:
        return CronPlan([], [], [], since, upcoming)
    skipped: list[datetime] = []
    if not schedule.catchup:
        skipped, due = due[:-1], due[-1:]
    policy = schedule.concurrencyPolicy
    if policy == "Forbid":
        if active:
            return CronPlan([], [], skipped + due, due[-1], upcoming)
        return CronPlan(due[:1], [], skipped, due[0], upcoming)
    if policy == "Replace":
        latest = due[-1]
        return CronPlan([latest], list(active), skipped + due[:-1], latest, upcoming)
    room = max(schedule.maxActiveRuns - len(active), 0)
    create = due[:room]
    if not create:
        # No room: the due fires wait (the mark stays) until a run finishes.
        return CronPlan([], [], skipped, skipped[-1] if skipped else since, upcoming)
    return CronPlan(create, [], skipped, create[-1], upcoming)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class CronScheduler:
    def __init__(
        self,
        *,
        writer: Writer,
        dags: Informer,
        runs: Informer,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.writer = writer
        self.dags = dags
        self.runs = runs
        self.clock = clock
        self._wake = asyncio.Event()

    def nudge(self) -> None:
        """A DAG or a run changed: re-evaluate soon (a finished run may make room)."""
        self._wake.set()

    async def run(self, period: float) -> None:
        while True:
            self._wake.clear()
            try:
                await self.tick()
            except (ApiError, NotLeader) as exc:
                log.warning("cron tick failed", extra={"error": str(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), period)

    async def tick(self) -> None:
        if not (self.dags.has_synced and self.runs.has_synced):
            return
        now = self.clock()
        for dag in self.dags.list():
            schedule = (dag.get("spec") or {}).get("schedule")
            if not isinstance(schedule, dict):
                continue
            try:
                parsed = CompiledSchedule.model_validate(schedule)
            except ValidationError:
                continue
            await self._schedule(dag, parsed, now)

    async def _schedule(self, dag: KubeObject, schedule: CompiledSchedule, now: datetime) -> None:
        meta = dag.get("metadata") or {}
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        status = DagStatus.model_validate(dag.get("status") or {})
        marks = [_parse(status.lastScheduleTime), _parse(meta.get("creationTimestamp"))]
        active: list[str] = []
        for run in self.runs.list():
            run_meta = run.get("metadata") or {}
            labels = run_meta.get("labels") or {}
            if run_meta.get("namespace") != namespace or labels.get(DAG_LABEL) != name:
                continue
            if labels.get(SCHEDULED_LABEL) != "true":
                continue
            marks.append(_parse((run.get("spec") or {}).get("logicalDate")))
            phase = (run.get("status") or {}).get("phase", RunPhase.PENDING.value)
            cancelling = (run_meta.get("annotations") or {}).get(CANCEL_ANNOTATION) == "true"
            if phase not in {p.value for p in TERMINAL_RUN_PHASES} and not cancelling:
                active.append(str(run_meta.get("name", "")))
        since = max(m for m in marks if m is not None) if any(marks) else now
        plan = plan_schedule(schedule, since=since, now=now, active=sorted(active))
        for run_name in plan.cancel:
            patch = {"metadata": {"annotations": {CANCEL_ANNOTATION: "true"}}}
            await self.writer.call(
                "patch", "PATCH", DAGRUNS.path(namespace, run_name), body=patch, content_type=MERGE_PATCH
            )
            log.info("cancelled run for a newer schedule", extra={"dag": name, "run": run_name})
        for logical in plan.create:
            run_name = scheduled_run_name(name, logical)
            body = dagrun_resource(run_name, DagRunSpec(dagName=name, logicalDate=_stamp(logical)), namespace)
            body["metadata"]["labels"][SCHEDULED_LABEL] = "true"
            created = await self.writer.create(DAGRUNS, namespace, body)
            if created.created:
                log.info("scheduled run", extra={"dag": name, "run": run_name})
        wanted = status.model_copy(
            update={
                "lastScheduleTime": _stamp(plan.last_scheduled) if plan.last_scheduled else None,
                "nextScheduleTime": _stamp(plan.next_fire) if plan.next_fire else None,
            }
        )
        if wanted != status:
            await self.writer.patch_status(DAGS, namespace, name, {"status": dump(wanted)})

"""What the CLI shows: tables, a run's tasks, the DAG drawn with task states, progress.

Pure: objects in (as the API server returns them), text or rows out, ``now`` passed in. The
commands in ``leoflow.cli.runs`` do the I/O; ``watch`` turns the same rows into a live table.

A run's status keeps details only for tasks with something to say, and forgets a clean first-try
success entirely (``leoflow.controller.planner``): its times are then unknown here, and a
watcher that saw the run supplies them through ``seen`` instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from leoflow.controller.podnames import AttemptKey, attempt_pod_name
from leoflow.spec.resources import (
    TERMINAL_TASK_STATES,
    DagRunStatus,
    DagSpec,
    TaskDetail,
    TaskState,
)

STATE_NAMES: dict[TaskState, str] = {
    TaskState.PENDING: "Pending",
    TaskState.PREPARED: "Prepared",
    TaskState.SCHEDULED: "Scheduled",
    TaskState.RUNNING: "Running",
    TaskState.RETRY_WAIT: "RetryWait",
    TaskState.SUCCEEDED: "Succeeded",
    TaskState.FAILED: "Failed",
    TaskState.UPSTREAM_FAILED: "UpstreamFailed",
    TaskState.SKIPPED: "Skipped",
    TaskState.CANCELLED: "Cancelled",
}


# States in which a task has had at least one attempt (upstream-failed, skipped and cancelled
# tasks may never have run).
RAN = frozenset(
    {
        TaskState.PREPARED,
        TaskState.SCHEDULED,
        TaskState.RUNNING,
        TaskState.RETRY_WAIT,
        TaskState.SUCCEEDED,
        TaskState.FAILED,
    }
)

# States whose reason and message explain themselves; a scheduled or running task's message is a
# live waiting note that changes by the second.
FAILING = frozenset({TaskState.RETRY_WAIT, TaskState.FAILED, TaskState.UPSTREAM_FAILED})


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def span(seconds: float | None) -> str:
    """kubectl's compact age: ``45s``, ``3m12s``, ``2h5m``, ``4d3h``; ``-`` when unknown.

    Under ten seconds it keeps a decimal: a task that ran for 0.4 s does not read as ``0s``."""
    if seconds is None:
        return "-"
    if 0 <= seconds < 10:
        return f"{seconds:.1f}s"
    total = max(int(seconds), 0)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs}s" if secs and minutes < 10 else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes}m" if minutes and hours < 10 else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h" if hours and days < 10 else f"{days}d"


def age(obj: Mapping[str, Any], now: datetime) -> str:
    created = parse_time((obj.get("metadata") or {}).get("creationTimestamp"))
    return span((now - created).total_seconds()) if created else "-"


def between(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start and end else None


def table(rows: Sequence[Sequence[str]]) -> str:
    """kubectl's plain layout: columns separated by three spaces, no borders."""
    if not rows:
        return ""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines) + "\n"


def dags_rows(
    objs: Iterable[Mapping[str, Any]], now: datetime, *, wide: bool, all_namespaces: bool
) -> list[list[str]]:
    header = ["NAME", "SCHEDULE", "IMAGE", "TASKS", "AGE"]
    if wide:
        header += ["DEFINITION", "LAST SCHEDULED", "ACTIVE RUNS"]
    if all_namespaces:
        header.insert(0, "NAMESPACE")
    rows = [header]
    for obj in objs:
        meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
        schedule = spec.get("schedule") or {}
        row = [
            str(meta.get("name", "")),
            str(schedule.get("cron", "-")) if schedule else "-",
            str(spec.get("image", "")),
            str(len(spec.get("tasks") or [])),
            age(obj, now),
        ]
        if wide:
            last = parse_time(status.get("lastScheduleTime"))
            row += [
                str(spec.get("definitionHash", "")),
                f"{span((now - last).total_seconds())} ago" if last else "-",
                ",".join(status.get("activeRuns") or []) or "-",
            ]
        if all_namespaces:
            row.insert(0, str(meta.get("namespace", "")))
        rows.append(row)
    return rows


def runs_rows(
    objs: Iterable[Mapping[str, Any]], now: datetime, *, wide: bool, all_namespaces: bool
) -> list[list[str]]:
    header = ["NAME", "DAG", "PHASE", "PROGRESS", "DURATION", "AGE"]
    if wide:
        header += ["LOGICAL DATE", "MESSAGE"]
    if all_namespaces:
        header.insert(0, "NAMESPACE")
    rows = [header]
    for obj in objs:
        meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
        row = [
            str(meta.get("name", "")),
            str(spec.get("dagName", "")),
            str(status.get("phase") or "Pending"),
            str(status.get("progress") or "-"),
            run_duration(status, now),
            age(obj, now),
        ]
        if wide:
            row += [str(spec.get("logicalDate") or "-"), str(status.get("message") or "")]
        if all_namespaces:
            row.insert(0, str(meta.get("namespace", "")))
        rows.append(row)
    return rows


def run_duration(status: Mapping[str, Any], now: datetime) -> str:
    start = parse_time(status.get("startTime"))
    end = parse_time(status.get("completionTime")) or now
    return span(between(start, end))


@dataclass(frozen=True)
class Seen:
    """When a watcher first saw a unit running and first saw it finished (times the status forgets)."""

    started: datetime | None = None
    finished: datetime | None = None


@dataclass(frozen=True)
class TaskRow:
    """One task of a run, as the tables show it."""

    index: int
    name: str
    state: TaskState
    attempt: int | None
    items: str
    duration: float | None
    reason: str
    message: str
    pod: str | None

    @property
    def state_name(self) -> str:
        return STATE_NAMES[self.state]


def _unit_times(detail: TaskDetail | None, seen: Seen | None, now: datetime, terminal: bool) -> float | None:
    start = parse_time(detail.startTime) if detail else None
    end = parse_time(detail.finishTime) if detail else None
    if seen is not None:
        start = start or seen.started
        end = end or seen.finished
    if start is None:
        return None
    if end is None:
        end = None if terminal else now
    return between(start, end)


def items_summary(codes: str) -> str:
    if not codes:
        return ""
    ok = codes.count(TaskState.SUCCEEDED)
    failed = sum(codes.count(c) for c in (TaskState.FAILED, TaskState.UPSTREAM_FAILED))
    active = sum(codes.count(c) for c in (TaskState.SCHEDULED, TaskState.RUNNING, TaskState.RETRY_WAIT))
    parts = [f"{ok}/{len(codes)} ok"]
    if failed:
        parts.append(f"{failed} failed")
    if active:
        parts.append(f"{active} active")
    return ", ".join(parts)


def task_rows(
    spec: DagSpec,
    status: DagRunStatus,
    *,
    run: str,
    run_uid: str,
    now: datetime,
    seen: Mapping[str, Seen] | None = None,
) -> list[TaskRow]:
    """One row per task; a fan-out task's row sums its items. ``seen`` is keyed like status.tasks."""
    seen = seen or {}
    codes = status.taskStates
    rows: list[TaskRow] = []
    for index, task in enumerate(spec.tasks):
        state = TaskState(codes[index]) if index < len(codes) else TaskState.PENDING
        key = str(index)
        detail = status.tasks.get(key)
        item_codes = status.items.get(key, "")
        attempt: int | None = detail.attempt if detail else None
        if attempt is None and state in RAN and task.sensor is None and not item_codes:
            attempt = 1
        duration = _unit_times(detail, seen.get(key), now, state in TERMINAL_TASK_STATES)
        if item_codes and duration is None:
            item_spans = [
                _unit_times(
                    status.tasks.get(f"{key}/{i}"),
                    seen.get(f"{key}/{i}"),
                    now,
                    TaskState(c) in TERMINAL_TASK_STATES,
                )
                for i, c in enumerate(item_codes)
            ]
            known = [s for s in item_spans if s is not None]
            duration = max(known) if known else None
        reason, message = _first_problem(status, key, item_codes)
        pod = None
        if task.sensor is None and not item_codes and attempt is not None and run_uid:
            pod = (
                detail.pod
                if detail and detail.pod
                else attempt_pod_name(run, AttemptKey(run_uid, task.name, None, attempt))
            )
        rows.append(
            TaskRow(
                index=index,
                name=task.name,
                state=state,
                attempt=attempt,
                items=items_summary(item_codes),
                duration=duration,
                reason=reason,
                message=message,
                pod=pod,
            )
        )
    return rows


def _first_problem(status: DagRunStatus, key: str, item_codes: str) -> tuple[str, str]:
    detail = status.tasks.get(key)
    if detail and (detail.reason or detail.message):
        return detail.reason or "", detail.message or ""
    for i in range(len(item_codes)):
        item = status.tasks.get(f"{key}/{i}")
        if item and (item.reason or item.message):
            return item.reason or "", f"item {i}: {item.message or ''}".rstrip(": ")
    return "", ""


def task_table(rows: Sequence[TaskRow], *, pods_present: set[str] | None = None) -> list[list[str]]:
    """The per-task table of ``describe`` and of a non-terminal ``watch``."""
    out = [["TASK", "STATE", "ATTEMPT", "DURATION", "REASON", "POD"]]
    for row in rows:
        pod = "-"
        if row.items:
            pod = f"({row.items})"
        elif row.pod:
            pod = row.pod if pods_present is None or row.pod in pods_present else f"{row.pod} (deleted)"
        out.append(
            [
                row.name,
                row.state_name,
                str(row.attempt) if row.attempt is not None else "-",
                span(row.duration),
                row.reason or "-",
                pod,
            ]
        )
    return out


def progress_bar(done: int, total: int, width: int = 30) -> str:
    filled = width * done // total if total else width
    return f"[{'#' * filled}{'-' * (width - filled)}] {done}/{total}"


def done_count(status: DagRunStatus) -> int:
    return sum(1 for code in status.taskStates if code in TERMINAL_TASK_STATES)


def graph_with_states(spec: DagSpec, status: DagRunStatus) -> str:
    """The DAG in topological order, each task with its state: ``[S] extract  <- a, b``."""
    codes = status.taskStates
    width = len(str(len(spec.tasks) - 1)) if spec.tasks else 1
    lines = []
    for index, task in enumerate(spec.tasks):
        code = codes[index] if index < len(codes) else TaskState.PENDING.value
        label = task.name
        extras = [
            *([task.trigger] if task.trigger != "all_success" else []),
            *(["fan-out " + items_summary(status.items.get(str(index), ""))] if task.fanOut else []),
            *(["sensor"] if task.sensor else []),
        ]
        if extras:
            label += f" ({', '.join(e.strip() for e in extras)})"
        after = ", ".join(spec.tasks[u].name for u in task.upstreams)
        lines.append(f"  {index:>{width}} [{code}] {label}" + (f"  <- {after}" if after else ""))
    legend = (
        "  states: . pending  p prepared  q scheduled  r running  w retry wait  S succeeded"
        "  F failed  U upstream failed  K skipped  C cancelled"
    )
    return "\n".join([*lines, legend]) + "\n"


def transitions(spec: DagSpec, before: DagRunStatus | None, after: DagRunStatus) -> list[str]:
    """Plain lines for what changed between two statuses (``watch`` without a terminal)."""
    lines: list[str] = []
    old_codes = before.taskStates if before else ""
    for index, task in enumerate(spec.tasks):
        new = after.taskStates[index] if index < len(after.taskStates) else TaskState.PENDING.value
        old = old_codes[index] if index < len(old_codes) else TaskState.PENDING.value
        key = str(index)
        old_items = before.items.get(key, "") if before else ""
        new_items = after.items.get(key, "")
        if new != old:
            detail = after.tasks.get(key)
            line = f"{task.name}: {STATE_NAMES[TaskState(new)]}"
            if detail and detail.attempt > 1:
                line += f" (attempt {detail.attempt})"
            if detail and (detail.reason or detail.message) and new in FAILING:
                line += f": {detail.reason or ''} {detail.message or ''}".rstrip()
            lines.append(line)
        elif new_items != old_items and new_items:
            lines.append(f"{task.name}: {items_summary(new_items)}")
    return lines


def now_utc() -> datetime:
    return datetime.now(UTC)

"""The live view of ``leoflow watch run`` on a terminal: a task table under a progress bar.

Built on rich (``Live`` redraws in place, tables size themselves to the terminal); only used when
stdout is a terminal, so pipes and CI logs get ``watch``'s plain lines instead. The bar is plain
text rather than rich's ProgressBar, which shares its line with whatever follows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from leoflow.cli import render as show
from leoflow.spec.resources import DagRunStatus, DagSpec, TaskState

STYLES: dict[TaskState, str] = {
    TaskState.PENDING: "dim",
    TaskState.PREPARED: "blue",
    TaskState.SCHEDULED: "cyan",
    TaskState.RUNNING: "bold cyan",
    TaskState.RETRY_WAIT: "yellow",
    TaskState.SUCCEEDED: "green",
    TaskState.FAILED: "bold red",
    TaskState.UPSTREAM_FAILED: "red",
    TaskState.SKIPPED: "dim",
    TaskState.CANCELLED: "magenta",
}


def run_view(
    name: str, spec: DagSpec, run: Mapping[str, Any], status: DagRunStatus, seen: Mapping[str, show.Seen]
) -> Group:
    now = show.now_utc()
    uid = str((run.get("metadata") or {}).get("uid", ""))
    rows = show.task_rows(spec, status, run=name, run_uid=uid, now=now, seen=seen)
    done, total = show.done_count(status), len(spec.tasks)
    header = Text.assemble(
        (f"run {name}", "bold"),
        f"  {status.phase.value}  {done}/{total} tasks  ",
        show.run_duration(run.get("status") or {}, now),
    )
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("TASK", "STATE", "ATTEMPT", "DURATION", "REASON", "DETAIL"):
        table.add_column(column)
    for row in rows:
        detail = row.items or row.message or (row.pod or "")
        table.add_row(
            row.name,
            Text(row.state_name, style=STYLES[row.state]),
            str(row.attempt) if row.attempt is not None else "-",
            show.span(row.duration),
            row.reason or "",
            detail,
        )
    filled = 40 * done // total if total else 40
    bar = Text.assemble(("━" * filled, "green"), ("━" * (40 - filled), "grey30"))
    parts: list[Any] = [header, bar, table]
    if status.message:
        parts.append(Text(status.message, style="yellow"))
    return Group(*parts)


class LiveRun:
    """Redraws the run in place, a few times a second, until the context exits."""

    def __init__(self, name: str, spec: DagSpec) -> None:
        self.name = name
        self.spec = spec
        self._live = Live(Text(f"run {name}: waiting for status"), console=Console(), auto_refresh=False)

    def __enter__(self) -> LiveRun:
        self._live.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._live.__exit__(kind, exc, tb)

    def update(self, run: Mapping[str, Any], status: DagRunStatus, seen: Mapping[str, show.Seen]) -> None:
        self._live.update(run_view(self.name, self.spec, run, status, seen), refresh=True)

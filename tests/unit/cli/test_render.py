"""What `get`, `describe` and `watch` show for a run: pure rendering from status to text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from leoflow.cli import render as show
from leoflow.controller.podnames import AttemptKey, attempt_pod_name
from leoflow.spec.compiler import compile_path
from leoflow.spec.resources import DagRunStatus, DagSpec

DEMO = Path(__file__).resolve().parents[3] / "examples" / "etl" / "demo" / "leoflow.yaml"
NOW = datetime(2026, 11, 24, 8, 0, 0, tzinfo=UTC)


def demo_spec() -> DagSpec:
    return compile_path(DEMO).spec


def status(**fields: object) -> DagRunStatus:
    return DagRunStatus.model_validate(fields)


def test_spans_read_like_kubectl_ages() -> None:
    assert [show.span(s) for s in (None, 0.44, 59, 61, 600, 3 * 3600 + 120, 86400 * 2 + 3600)] == [
        "-",
        "0.4s",
        "59s",
        "1m1s",
        "10m",
        "3h2m",
        "2d1h",
    ]


def test_tasks_that_never_ran_have_no_attempt_and_no_pod() -> None:
    rows = show.task_rows(
        demo_spec(),
        status(phase="Failed", taskStates="SSFUU", items={"2": "SFS"}),
        run="r",
        run_uid="u",
        now=NOW,
    )
    by_name = {row.name: row for row in rows}
    assert by_name["validate"].attempt is None and by_name["validate"].pod is None
    assert by_name["validate"].state_name == "UpstreamFailed"


def test_a_retried_task_shows_its_attempt_reason_duration_and_pod() -> None:
    start = NOW - timedelta(seconds=40)
    detail = {
        "attempt": 2,
        "reason": "UserError",
        "message": "main: exit code 3",
        "startTime": start.isoformat(),
    }
    rows = show.task_rows(
        demo_spec(),
        status(phase="Running", taskStates="SSSr.", items={"2": "SSS"}, tasks={"3": detail}),
        run="etl-demo-x",
        run_uid="uid-1",
        now=NOW,
    )
    validate = rows[3]
    assert (validate.attempt, validate.reason, validate.duration) == (2, "UserError", 40.0)
    assert validate.pod == attempt_pod_name("etl-demo-x", AttemptKey("uid-1", "validate", None, 2))


def test_fan_out_row_sums_its_items_and_names_the_first_failed_item() -> None:
    rows = show.task_rows(
        demo_spec(),
        status(
            phase="Running",
            taskStates="SSr..",
            items={"2": "SFr"},
            tasks={"2/1": {"reason": "OOMKilled", "message": "main: OOMKilled (exit code 137)"}},
        ),
        run="r",
        run_uid="u",
        now=NOW,
    )
    assert rows[2].items == "1/3 ok, 1 failed, 1 active"
    assert rows[2].reason == "OOMKilled" and rows[2].message.startswith("item 1:")
    assert rows[2].pod is None


def test_watcher_times_fill_in_a_clean_success_the_status_forgot() -> None:
    seen = {"1": show.Seen(started=NOW - timedelta(seconds=5), finished=NOW - timedelta(seconds=2))}
    rows = show.task_rows(demo_spec(), status(taskStates="SS..."), run="r", run_uid="u", now=NOW, seen=seen)
    assert rows[1].duration == 3.0


def test_deleted_pods_are_marked_in_the_task_table() -> None:
    rows = show.task_rows(
        demo_spec(), status(taskStates="SSSSF", items={"2": "SSS"}), run="r", run_uid="u", now=NOW
    )
    table = show.table(show.task_table(rows, pods_present={rows[4].pod or ""}))
    assert f"{rows[1].pod} (deleted)" in table and rows[0].pod is None
    assert f"{rows[4].pod} (deleted)" not in table and rows[4].pod in table
    assert "(3/3 ok)" in table


def test_graph_draws_each_task_with_its_state_code() -> None:
    text = show.graph_with_states(demo_spec(), status(taskStates="SSrF.", items={"2": "SSr"}))
    lines = text.splitlines()
    assert lines[0].strip() == "0 [S] wait-for-data (sensor)"
    assert lines[1].strip() == "1 [S] extract  <- wait-for-data"
    assert lines[2].strip() == "2 [r] transform (fan-out 2/3 ok, 1 active)  <- extract"
    assert lines[3].strip() == "3 [F] validate  <- transform"


def test_transitions_print_one_line_per_changed_task() -> None:
    spec = demo_spec()
    before = status(taskStates="SSr..", items={"2": "Srr"})
    after = status(
        taskStates="SSSw.",
        items={"2": "SSS"},
        tasks={"3": {"attempt": 1, "reason": "UserError", "message": "main: exit code 3"}},
    )
    assert show.transitions(spec, before, after) == [
        "transform: Succeeded",
        "validate: RetryWait: UserError main: exit code 3",
    ]
    assert show.transitions(spec, after, after) == []


def test_progress_bar_and_run_tables() -> None:
    assert show.progress_bar(1, 4, width=8) == "[##------] 1/4"
    run = {
        "metadata": {"name": "etl-demo-1", "namespace": "a", "creationTimestamp": "2026-11-24T07:59:00Z"},
        "spec": {"dagName": "etl-demo"},
        "status": {
            "phase": "Succeeded",
            "progress": "4/4",
            "startTime": "2026-11-24T07:59:00Z",
            "completionTime": "2026-11-24T07:59:30Z",
        },
    }
    rows = show.runs_rows([run], NOW, wide=False, all_namespaces=True)
    assert rows == [
        ["NAMESPACE", "NAME", "DAG", "PHASE", "PROGRESS", "DURATION", "AGE"],
        ["a", "etl-demo-1", "etl-demo", "Succeeded", "4/4", "30s", "1m"],
    ]


def test_live_view_shows_progress_and_every_task_state() -> None:
    from rich.console import Console

    from leoflow.cli.live import run_view

    run = {
        "metadata": {"name": "r", "uid": "u"},
        "status": {"startTime": (NOW - timedelta(seconds=5)).isoformat()},
    }
    st = status(
        phase="Running",
        taskStates="SSw..",
        items={},
        tasks={"2": {"attempt": 1, "reason": "UserError", "message": "main: exit code 3"}},
    )
    console = Console(record=True, width=120, force_terminal=False)
    console.print(run_view("r", demo_spec(), run, st, {}))
    text = console.export_text()
    assert "run r  Running  2/5 tasks" in text
    assert "RetryWait" in text and "UserError" in text and "main: exit code 3" in text
    assert [
        line.split()[0]
        for line in text.splitlines()
        if line.split() and line.split()[0] in {"extract", "transform", "validate", "load"}
    ] == ["extract", "transform", "validate", "load"]

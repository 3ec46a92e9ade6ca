from __future__ import annotations

from typing import Any

import pytest

from leoflow.controller.runview import RunDefaults, RunViewError, run_view
from leoflow.spec.resources import RunPhase

from .podfixtures import T0


def _dagrun(annotations: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "leoflow.io/v1alpha1",
        "kind": "DAGRun",
        "metadata": {
            "name": "etl-1",
            "namespace": "team-a",
            "uid": "uid-1",
            "creationTimestamp": "2026-11-24T07:00:00Z",
            "annotations": annotations or {},
        },
        "spec": {"dagName": "etl", "params": {"region": "eu"}},
    }
    obj.update(extra)
    return obj


def test_dagrun_becomes_a_run_view_with_its_status() -> None:
    view = run_view(_dagrun(status={"phase": "Running", "taskStates": "q."}))
    assert (view.dag, view.name, view.namespace, view.uid) == ("etl", "etl-1", "team-a", "uid-1")
    assert view.created == T0
    assert view.spec.params == {"region": "eu"}
    assert view.status.phase is RunPhase.RUNNING
    assert not view.cancel_requested
    assert view.retry_generation == 0


def test_annotations_request_cancel_retry_caps_and_timeout() -> None:
    notes = {
        "leoflow.io/cancel": "true",
        "leoflow.io/retry": "2",
        "leoflow.io/max-active-tasks": "5",
        "leoflow.io/timeout": "1h30m",
    }
    view = run_view(_dagrun(notes))
    assert view.cancel_requested
    assert view.retry_generation == 2
    assert view.max_active_tasks == 5
    assert view.timeout_seconds == 5400


def test_controller_defaults_apply_when_the_run_says_nothing() -> None:
    view = run_view(_dagrun(), RunDefaults(max_active_tasks=100, timeout_seconds=3600))
    assert (view.max_active_tasks, view.timeout_seconds) == (100, 3600)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("leoflow.io/cancel", "yes", 'must be "true" or "false"'),
        ("leoflow.io/retry", "-1", "whole number of at least 0"),
        ("leoflow.io/max-active-tasks", "0", "whole number of at least 1"),
        ("leoflow.io/timeout", "soon", "not a duration"),
        ("leoflow.io/timeout", "0s", "positive duration"),
    ],
)
def test_malformed_annotation_is_a_clear_error(key: str, value: str, expected: str) -> None:
    with pytest.raises(RunViewError, match=f"DAGRun team-a/etl-1: annotation {key}.*{expected}"):
        run_view(_dagrun({key: value}))


def test_malformed_status_names_the_field() -> None:
    with pytest.raises(RunViewError, match="phase"):
        run_view(_dagrun(status={"phase": "Exploded"}))

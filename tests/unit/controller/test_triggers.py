from __future__ import annotations

import pytest

from leoflow.controller.triggers import Decision, decide
from leoflow.spec.resources import TaskState

S, F, U, K, C = (
    TaskState.SUCCEEDED,
    TaskState.FAILED,
    TaskState.UPSTREAM_FAILED,
    TaskState.SKIPPED,
    TaskState.CANCELLED,
)
R, P = TaskState.RUNNING, TaskState.PENDING
RUN, WAIT, UPF, SKIP = Decision.RUN, Decision.WAIT, Decision.UPSTREAM_FAILED, Decision.SKIP


@pytest.mark.parametrize(
    ("rule", "upstreams", "expected"),
    [
        ("all_success", [S, S], RUN),
        ("all_success", [S, R], WAIT),
        ("all_success", [F, R], UPF),
        ("all_success", [U, S], UPF),
        ("all_success", [K, S], SKIP),
        ("all_success", [C, S], UPF),
        ("all_done", [S, F], RUN),
        ("all_done", [K, U], RUN),
        ("all_done", [S, P], WAIT),
        ("all_failed", [F, U], RUN),
        ("all_failed", [F, S], SKIP),
        ("all_failed", [F, R], WAIT),
        ("one_success", [S, R], RUN),
        ("one_success", [F, R], WAIT),
        ("one_success", [F, K], UPF),
        ("one_success", [K, K], SKIP),
        ("one_failed", [F, R], RUN),
        ("one_failed", [S, R], WAIT),
        ("one_failed", [S, K], SKIP),
        ("none_failed", [S, K], RUN),
        ("none_failed", [S, R], WAIT),
        ("none_failed", [S, F], UPF),
    ],
)
def test_trigger_rules_follow_airflow(rule: str, upstreams: list[TaskState], expected: Decision) -> None:
    assert decide(rule, upstreams) is expected


@pytest.mark.parametrize(
    "rule", ["all_success", "all_done", "all_failed", "one_success", "one_failed", "none_failed"]
)
def test_a_task_without_upstreams_always_runs(rule: str) -> None:
    assert decide(rule, []) is RUN


def test_unknown_rule_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown trigger rule 'sometimes'"):
        decide("sometimes", [S])

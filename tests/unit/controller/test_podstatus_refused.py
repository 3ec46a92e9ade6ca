"""A pod create the API server refuses: which refusals fail the task at once, which spend the
infrastructure budget, and which are simply tried again (reference/failures.md, entry 6)."""

from __future__ import annotations

import pytest

from leoflow.controller.podstatus import FailureClass, FailureReason, PodPhase, create_refused

INVALID = 'Pod "r1-work-1" is invalid: spec.nodeSelector: Invalid value: "a b": a valid label must ...'
QUOTA = (
    'pods "r1-work-1" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=1, limited: pods=1'
)
POLICY = 'pods "r1-work-1" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true'


@pytest.mark.parametrize(
    ("code", "reason", "message"),
    [
        (422, "Invalid", INVALID),
        (403, "Forbidden", POLICY),
        (400, "BadRequest", "bad"),
        (404, "NotFound", "ns"),
    ],
)
def test_permanently_refused_pod_fails_the_task_at_once_with_the_api_message(
    code: int, reason: str, message: str
) -> None:
    obs = create_refused(code, reason, message, transient=False)
    assert obs is not None
    assert (obs.phase, obs.reason, obs.failure_class) == (
        PodPhase.FAILED,
        FailureReason.POD_REFUSED,
        FailureClass.CONFIG,
    )
    assert obs.message == f"pod refused by the API server (HTTP {code} {reason}): {message}"
    assert not obs.stranded


def test_exceeded_quota_spends_the_infrastructure_budget() -> None:
    # The API error table calls it transient (the same request may pass once pods end): that
    # decides the writer's own retries, not the task's fate.
    obs = create_refused(403, "Forbidden", QUOTA, transient=True)
    assert obs is not None
    assert (obs.reason, obs.failure_class) == (FailureReason.QUOTA_EXCEEDED, FailureClass.INFRA)
    assert "exceeded quota: pods" in obs.message


def test_quota_not_counted_yet_spends_the_infrastructure_budget_too() -> None:
    message = 'pods "r1-work-1" is forbidden: status unknown for quota: q, resources: pods'
    obs = create_refused(403, "Forbidden", message, transient=False)
    assert obs is not None
    assert obs.reason is FailureReason.QUOTA_EXCEEDED


@pytest.mark.parametrize("code", [0, 409, 429, 500, 503])
def test_transient_create_failure_is_tried_again_not_recorded(code: int) -> None:
    assert create_refused(code, "", "try later", transient=True) is None

"""Quota waits: backoff from a second to half a minute, a waiting observation, a bound."""

from __future__ import annotations

from leoflow.controller.podstatus import PodPhase
from leoflow.controller.quotawait import MAX_DELAY_SECONDS, QuotaWaits, backoff

from .podfixtures import T0, at


def middle(low: float, high: float) -> float:
    return (low + high) / 2


def test_backoff_doubles_from_a_second_up_to_its_cap_within_its_jitter() -> None:
    assert [backoff(n, middle) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff(20, middle) == MAX_DELAY_SECONDS
    assert 0.8 <= backoff(1) <= 1.2


def test_a_refused_create_waits_and_is_shown_pending_with_the_api_servers_words() -> None:
    waits = QuotaWaits(bound=600, draw=middle)
    due = waits.refused("pod-a", "exceeded quota: team-quota, requested: pods=1", now=100.0, wall=T0)
    assert due == 101.0
    assert waits.holds("pod-a", 100.5) == 101.0
    assert waits.holds("pod-a", 101.0) is None
    seen = waits.observation("pod-a")
    assert seen is not None
    assert seen.phase is PodPhase.PENDING and not seen.terminal
    assert "exceeded quota: team-quota" in seen.message
    assert seen.deadline == at(600)
    assert waits.refused("pod-a", "exceeded quota", now=101.0, wall=at(1)) == 103.0


def test_a_wait_past_its_bound_is_handed_back_as_a_failure() -> None:
    waits = QuotaWaits(bound=10, draw=middle)
    assert waits.refused("pod-a", "exceeded quota", now=0.0, wall=T0) is not None
    assert waits.refused("pod-a", "exceeded quota", now=10.0, wall=at(10)) is None
    assert waits.observation("pod-a") is None


def test_a_created_pod_forgets_its_wait() -> None:
    waits = QuotaWaits(bound=600, draw=middle)
    waits.refused("pod-a", "exceeded quota", now=0.0, wall=T0)
    waits.forget("pod-a")
    assert waits.observation("pod-a") is None and waits.holds("pod-a", 0.0) is None

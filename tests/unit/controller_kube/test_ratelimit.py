"""Per-verb token buckets pace callers in arrival order and honour server-requested pauses."""

from __future__ import annotations

from typing import Any

import pytest

from leoflow.controller.kube.ratelimit import Rate, TokenBucket


def test_burst_passes_immediately_then_calls_are_paced_at_qps(clock: Any) -> None:
    bucket = TokenBucket(Rate(qps=10, burst=3), clock)
    waits = [bucket.reserve() for _ in range(5)]
    assert waits == pytest.approx([0, 0, 0, 0.1, 0.2])


async def test_tokens_refill_with_time(clock: Any) -> None:
    bucket = TokenBucket(Rate(qps=2, burst=2), clock)
    assert [bucket.reserve(), bucket.reserve()] == [0, 0]
    await clock.sleep(1.0)
    assert [bucket.reserve(), bucket.reserve()] == [0, 0]
    assert bucket.reserve() == pytest.approx(0.5)


async def test_pause_holds_every_caller_of_the_verb_until_it_ends(clock: Any) -> None:
    bucket = TokenBucket(Rate(qps=100, burst=100), clock)
    bucket.pause_for(3.0)
    assert await bucket.acquire() == pytest.approx(3.0)
    assert bucket.reserve() == 0, "the pause is over once its time has passed"


def test_rate_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="qps > 0"):
        Rate(qps=0, burst=1)

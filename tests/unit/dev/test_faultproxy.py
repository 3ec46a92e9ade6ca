"""The fault proxy's policy: reads always pass, every n-th write fails, each kind in turn, so a
test that makes enough writes is sure to meet every fault."""

from __future__ import annotations

import pytest

from leoflow.dev.faultproxy import Fault, FaultPolicy


def test_every_third_write_is_faulted_cycling_through_the_kinds() -> None:
    policy = FaultPolicy(every=3, kinds=(Fault.TOO_MANY_REQUESTS, Fault.CONFLICT))
    verdicts = [policy.decide(method) for method in ("POST", "PATCH", "DELETE") * 4]
    assert verdicts == [None, None, Fault.TOO_MANY_REQUESTS, None, None, Fault.CONFLICT] * 2
    assert policy.injected == {Fault.TOO_MANY_REQUESTS: 2, Fault.CONFLICT: 2}


def test_reads_and_watches_always_pass_and_do_not_count() -> None:
    policy = FaultPolicy(every=1)
    assert [policy.decide("GET") for _ in range(5)] == [None] * 5
    assert policy.decide("PUT") is Fault.TOO_MANY_REQUESTS


def test_default_policy_meets_every_kind_within_a_few_writes() -> None:
    policy = FaultPolicy()
    for _ in range(policy.every * len(Fault)):
        policy.decide("POST")
    assert set(policy.injected) == set(Fault)


@pytest.mark.parametrize("bad", [{"every": 0}, {"kinds": ()}])
def test_a_policy_that_cannot_inject_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="FaultPolicy"):
        FaultPolicy(**bad)  # type: ignore[arg-type]


def test_a_policy_for_creates_of_one_resource_faults_only_those() -> None:
    policy = FaultPolicy(every=1, kinds=(Fault.UNAVAILABLE,), creates_of="pods")
    assert policy.decide("PATCH", "/api/v1/namespaces/n/pods/p") is None
    assert policy.decide("POST", "/apis/leoflow.io/v1alpha1/namespaces/n/dagruns") is None
    assert policy.decide("POST", "/api/v1/namespaces/n/pods/p/eviction") is None
    assert policy.decide("POST", "/api/v1/namespaces/n/pods") is Fault.UNAVAILABLE

"""Leader election on a real Lease: one leader at a time, takeover on silence, handover on exit."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest
from kubernetes_asyncio import client

from leoflow.controller.kube.errors import NotLeader
from leoflow.controller.kube.leader import LeaderElector, LeaseConfig
from leoflow.controller.kube.transport import CONFIGMAPS, Transport
from leoflow.controller.kube.writer import Writer

pytestmark = pytest.mark.cluster


class Timeline:
    """Who led when, by the test's monotonic clock, to check that leaderships never overlap."""

    def __init__(self) -> None:
        self.spans: dict[str, list[list[float]]] = {}

    def callbacks(self, identity: str) -> dict[str, Any]:
        spans = self.spans.setdefault(identity, [])
        return {
            "on_started_leading": lambda: spans.append([time.monotonic(), float("inf")]),
            "on_stopped_leading": lambda: spans[-1].__setitem__(1, time.monotonic()),
        }

    def overlapping(self) -> bool:
        everything = sorted((s, e) for spans in self.spans.values() for s, e in spans)
        return any(later[0] < earlier[1] for earlier, later in itertools.pairwise(everything))


def config(namespace: str, identity: str, **timings: float) -> LeaseConfig:
    return LeaseConfig(namespace=namespace, name="leoflow-controller", identity=identity, **timings)


async def lease_spec(kube: Any, namespace: str) -> Any:
    return (await client.CoordinationV1Api(kube).read_namespaced_lease("leoflow-controller", namespace)).spec


async def test_two_electors_only_one_leads(kube: Any, namespace: str) -> None:
    timings = {"lease_duration": 4.0, "renew_deadline": 2.0, "retry_period": 0.2}
    timeline = Timeline()
    a = LeaderElector(Transport(kube), config(namespace, "a", **timings), **timeline.callbacks("a"))
    b = LeaderElector(Transport(kube), config(namespace, "b", **timings), **timeline.callbacks("b"))
    async with a, b:
        done, _ = await asyncio.wait(
            [asyncio.create_task(a.wait_leader()), asyncio.create_task(b.wait_leader())],
            timeout=30,
            return_when=asyncio.FIRST_COMPLETED,
        )
        assert done, "nobody became leader"
        for _ in range(40):  # several lease durations of both campaigning
            assert not (a.is_leader and b.is_leader)
            await asyncio.sleep(0.1)
        leader = a if a.is_leader else b
        assert leader.is_leader
        assert (await lease_spec(kube, namespace)).holder_identity == leader.identity
    assert not timeline.overlapping()


async def test_silent_leader_steps_down_and_the_standby_takes_over(
    kube: Any, proxied_kube: Any, api_proxy: Any, namespace: str, eventually: Any
) -> None:
    timings = {"lease_duration": 4.0, "renew_deadline": 2.0, "retry_period": 0.2}
    timeline = Timeline()
    a = LeaderElector(Transport(proxied_kube), config(namespace, "a", **timings), **timeline.callbacks("a"))
    b = LeaderElector(Transport(kube), config(namespace, "b", **timings), **timeline.callbacks("b"))
    async with a:
        await asyncio.wait_for(a.wait_leader(), 30)
        async with b:
            await asyncio.sleep(1.0)
            assert a.is_leader and not b.is_leader, "a renewing leader keeps the lease"

            api_proxy.refusing = True
            api_proxy.cut()
            await asyncio.wait_for(a.wait_lost(), 30)
            assert not a.is_leader
            fenced = Writer(Transport(kube), is_leader=lambda: a.is_leader)
            with pytest.raises(NotLeader):
                await fenced.create(CONFIGMAPS, namespace, {"metadata": {"name": "from-the-old-leader"}})
            await asyncio.wait_for(b.wait_leader(), 30)

            spec = await lease_spec(kube, namespace)
            assert (spec.holder_identity, spec.lease_transitions) == ("b", 1)
    assert not timeline.overlapping(), "the old leader stopped before the new one started"


async def test_release_on_shutdown_hands_over_without_waiting_for_expiry(
    kube: Any, namespace: str, eventually: Any
) -> None:
    # A lease this long would keep the standby waiting a minute if the leader merely vanished.
    timings = {"lease_duration": 60.0, "renew_deadline": 40.0, "retry_period": 0.2}
    a = LeaderElector(Transport(kube), config(namespace, "a", **timings))
    b = LeaderElector(Transport(kube), config(namespace, "b", **timings))
    async with a:
        await asyncio.wait_for(a.wait_leader(), 30)
        async with b:
            await asyncio.sleep(0.5)
            assert not b.is_leader
            await a.close()
            assert not a.is_leader
            await asyncio.wait_for(b.wait_leader(), 20)
            assert (await lease_spec(kube, namespace)).holder_identity == "b"


def test_lease_timings_must_let_the_leader_stop_before_anyone_else_starts() -> None:
    with pytest.raises(ValueError, match="renew_deadline < lease_duration"):
        LeaseConfig(namespace="n", name="l", identity="i", lease_duration=5, renew_deadline=5, retry_period=1)

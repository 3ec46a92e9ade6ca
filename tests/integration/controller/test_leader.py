"""Two controller replicas: only the Lease holder acts, the standby takes over on handover, and the
agents' Service (the leader label) follows the Lease."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from leoflow.controller.agentserver import AgentIdentity, AgentReport, NotLeading
from leoflow.controller.agentsink import RunReportSink
from leoflow.controller.app import Controller, ControllerSettings
from leoflow.controller.cleanup import CleanupPolicy
from leoflow.controller.leaderpod import LEADER_LABEL, PodRef
from leoflow.controller.podnames import TASK_LABEL
from leoflow.controller.reconcile import ReconcileSettings
from tests.integration.controller.conftest import Harness, dag_yaml

CHAIN = (
    "  extract: {command: [extract]}\n"
    "  transform: {after: [extract], command: [transform]}\n"
    "  load: {after: [transform], command: [load]}\n"
)


def _replica(h: Harness, identity: str, own_pod: PodRef | None = None) -> Controller:
    settings = ControllerSettings(
        own_pod=own_pod,
        namespace=h.namespace,
        leader_elect=True,
        lease_namespace=h.namespace,
        identity=identity,
        workers=4,
        cron=False,
        reconcile=ReconcileSettings(pod_annotations=h.script, cleanup=CleanupPolicy(delete_succeeded=False)),
    )
    return Controller(h.kube, settings, registry=CollectorRegistry())


async def _tasks_per_pod(h: Harness, run: str) -> Counter[str]:
    return Counter(p["metadata"]["labels"][TASK_LABEL] for p in await h.pods(run))


async def test_two_replicas_run_each_task_once_and_the_standby_takes_over(harness: Harness) -> None:
    await harness.apply_dag(dag_yaml("ha", CHAIN))
    replicas = [_replica(harness, "replica-a"), _replica(harness, "replica-b")]
    stops = [asyncio.Event(), asyncio.Event()]
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(r.run(s)) for r, s in zip(replicas, stops, strict=True)]
    try:
        await harness.create_run("r1", "ha")
        await harness.wait_phase("r1", "Succeeded")
        assert await _tasks_per_pod(harness, "r1") == {"extract": 1, "transform": 1, "load": 1}
        leaders = [r for r in replicas if r.is_leader]
        assert len(leaders) == 1
        leader = replicas.index(leaders[0])
        stops[leader].set()
        await asyncio.wait_for(tasks[leader], 30)
        await harness.create_run("r2", "ha")
        await harness.wait_phase("r2", "Succeeded", within=90)
        assert replicas[1 - leader].is_leader
        assert await _tasks_per_pod(harness, "r2") == {"extract": 1, "transform": 1, "load": 1}
    finally:
        for stop in stops:
            stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _pod_standing_in_for_a_replica(h: Harness, name: str) -> PodRef:
    """A pod object for a replica to label; it never runs (no node matches it). It starts with the
    label, as a restarted controller container's pod or a dead leader's would."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {LEADER_LABEL: "true"}},
        "spec": {
            "nodeSelector": {"leoflow.io/no-such-node": "true"},
            "containers": [{"name": "controller", "image": "registry.local/controller:1"}],
        },
    }
    await h.kubectl("create", "-f", "-", input=json.dumps(pod))
    return PodRef(h.namespace, name)


async def _labelled(h: Harness) -> set[str]:
    out = await h.kubectl("get", "pods", "-l", f"{LEADER_LABEL}=true", "-o", "json")
    return {p["metadata"]["name"] for p in json.loads(out)["items"]}


async def _wait_labelled(h: Harness, expected: set[str], within: float = 30) -> None:
    deadline = time.monotonic() + within
    while (found := await _labelled(h)) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"pods labelled {LEADER_LABEL}: {sorted(found)}, want {sorted(expected)}")
        await asyncio.sleep(0.2)


async def test_only_the_leaders_pod_carries_the_label_the_agents_service_selects(harness: Harness) -> None:
    pods = [await _pod_standing_in_for_a_replica(harness, name) for name in ("replica-a", "replica-b")]
    gone = await _pod_standing_in_for_a_replica(harness, "replica-that-died-leading")
    replicas = [_replica(harness, p.name, own_pod=p) for p in pods]
    stops = [asyncio.Event(), asyncio.Event()]
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(r.run(s)) for r, s in zip(replicas, stops, strict=True)]
    try:
        deadline = time.monotonic() + 30
        while not any(r.is_leader for r in replicas):
            assert time.monotonic() < deadline, "no replica became leader"
            await asyncio.sleep(0.1)
        leader = next(i for i, r in enumerate(replicas) if r.is_leader)
        await _wait_labelled(harness, {pods[leader].name})
        assert gone.name not in await _labelled(harness)

        standby = replicas[1 - leader]
        report = AgentReport(
            AgentIdentity(harness.namespace, "etl-extract-1", "uid-1", "etl", "r1", "extract", 1),
            "finished",
            datetime.now(UTC),
            exit_code=0,
        )
        with pytest.raises(NotLeading):
            await RunReportSink(standby.reconciler).report(report)

        stops[leader].set()
        await asyncio.wait_for(tasks[leader], 30)
        await _wait_labelled(harness, {pods[1 - leader].name})
    finally:
        for stop in stops:
            stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert await _labelled(harness) == set(), "a replica that stops leading takes its label off"

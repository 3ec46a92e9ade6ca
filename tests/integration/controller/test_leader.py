"""Two controller replicas: only the Lease holder acts, and the standby takes over on handover."""

from __future__ import annotations

import asyncio
from collections import Counter

from prometheus_client import CollectorRegistry

from leoflow.controller.app import Controller, ControllerSettings
from leoflow.controller.cleanup import CleanupPolicy
from leoflow.controller.podnames import TASK_LABEL
from leoflow.controller.reconcile import ReconcileSettings
from tests.integration.controller.conftest import Harness, dag_yaml

CHAIN = (
    "  extract: {command: [extract]}\n"
    "  transform: {after: [extract], command: [transform]}\n"
    "  load: {after: [transform], command: [load]}\n"
)


def _replica(h: Harness, identity: str) -> Controller:
    settings = ControllerSettings(
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

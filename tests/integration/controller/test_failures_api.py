"""The API server misbehaving under the controller: runs still complete, exactly once.

A fault-injecting proxy (leoflow.dev.faultproxy) stands between the in-process controller and
the real API server and answers a steady share of its writes with 429 and 503 (with
``Retry-After``), 500, 409, or a 500 after the write took effect; the test's own kubectl goes
straight to the API server. And the API server is restarted in the middle of runs, on a cluster
of this module's own so that no other test shares the outage.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.config import new_client_from_config

from leoflow.controller.cleanup import CleanupPolicy
from leoflow.controller.podnames import ATTEMPT_LABEL, TASK_LABEL
from leoflow.dev import cluster
from leoflow.dev.cluster import admin_ssl_context
from leoflow.dev.faultproxy import Fault, FaultPolicy, FaultProxy
from leoflow.dev.pki import Pki
from leoflow.dev.testing import ClusterHandle
from tests.integration.controller.conftest import Harness, dag_yaml, install_crds, run_status

pytestmark = pytest.mark.cluster

DIAMOND = (
    "  extract: {command: [extract]}\n"
    "  left: {after: [extract], command: [left]}\n"
    "  right: {after: [extract], command: [right]}\n"
    "  join: {after: [left, right], command: [join]}\n"
    "  load: {after: [join], command: [load]}\n"
)
RUNS = ("r1", "r2", "r3")


async def assert_ran_exactly_once(harness: Harness, run: str) -> None:
    """Succeeded, every task on its first attempt, and exactly one pod per task ever created."""
    done = await harness.wait_phase(run, "Succeeded", within=180)
    assert run_status(done)["taskStates"] == "SSSSS"
    attempts = {k: d.get("attempt", 1) for k, d in (run_status(done).get("tasks") or {}).items()}
    assert set(attempts.values()) <= {1}, attempts
    pods = await harness.pods(run)
    assert Counter(p["metadata"]["labels"][TASK_LABEL] for p in pods) == dict.fromkeys(
        ("extract", "left", "right", "join", "load"), 1
    )
    assert {p["metadata"]["labels"][ATTEMPT_LABEL] for p in pods} == {"1"}


async def test_runs_complete_exactly_once_through_429_503_500_and_409(harness: Harness) -> None:
    await harness.apply_dag(dag_yaml("flaky", DIAMOND))
    upstream = harness.cluster.state.apiserver_url
    context = admin_ssl_context(Pki(harness.cluster.home / "pki"))
    async with FaultProxy(upstream, context, FaultPolicy(every=3)) as proxy:
        client = ApiClient(Configuration(host=proxy.url))
        harness.kube = client
        try:
            # Succeeded pods are kept, so every pod ever created can be counted.
            await harness.start(cleanup=CleanupPolicy(delete_succeeded=False))
            for run in RUNS:
                await harness.create_run(run, "flaky")
            for run in RUNS:
                await assert_ran_exactly_once(harness, run)
            assert set(proxy.policy.injected) == set(Fault), proxy.policy.injected
        finally:
            proxy.enabled = False
            await harness.release_pods()
            await harness.stop()
            await client.close()


async def test_pod_creates_failing_longer_than_the_writer_retries_are_sent_again_not_judged_deleted(
    harness: Harness,
) -> None:
    # The status write that records the attempt lands; every pod create gets 503 for longer than
    # the writer retries. The reconcile must send the create again, not wait out the missing-pod
    # grace and spend an infrastructure retry on a pod that was never created.
    await harness.apply_dag(dag_yaml("unsent", "  only: {command: [only]}\n"))
    upstream = harness.cluster.state.apiserver_url
    context = admin_ssl_context(Pki(harness.cluster.home / "pki"))
    policy = FaultPolicy(every=1, kinds=(Fault.UNAVAILABLE,), creates_of="pods")
    async with FaultProxy(upstream, context, policy) as proxy:
        client = ApiClient(Configuration(host=proxy.url))
        harness.kube = client
        try:
            await harness.start(cleanup=CleanupPolicy(delete_succeeded=False))
            await harness.create_run("r1", "unsent")
            await harness.wait_run("r1", lambda o: run_status(o).get("taskStates") == "q")
            deadline = time.monotonic() + 60
            while policy.injected[Fault.UNAVAILABLE] < 12:
                assert time.monotonic() < deadline, policy.injected
                await asyncio.sleep(0.2)
            proxy.enabled = False
            done = await harness.wait_phase("r1", "Succeeded", within=120)
            assert (run_status(done).get("tasks") or {}).get("0", {}).get("attempt", 1) == 1
            assert len(await harness.pods("r1")) == 1
        finally:
            proxy.enabled = False
            await harness.release_pods()
            await harness.stop()
            await client.close()


@pytest.fixture(scope="module")
def private_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterHandle]:
    """A control plane with one KWOK node and no real node, for this module alone: restarting its
    API server cannot disturb the session cluster the other tests share."""
    home: Path = tmp_path_factory.mktemp("apiserver-restart")
    handle = ClusterHandle(cluster.up(cluster.UpOptions(home=home, kwok_nodes=1, real_node=False)), False)
    try:
        install_crds(handle)
        yield handle
    finally:
        handle.close()


async def test_runs_complete_exactly_once_across_an_api_server_restart(
    private_cluster: ClusterHandle,
) -> None:
    private_cluster.create_namespace("restart")
    kube = await new_client_from_config(config_file=str(private_cluster.kubeconfig))
    harness = Harness(private_cluster, "restart", kube)
    try:
        await harness.apply_dag(dag_yaml("steady", DIAMOND))
        # Pods end while the API server is down: their results must not be lost.
        harness.script.tasks = {
            task: {"kwok.leoflow.io/succeed-after": "1s"}
            for task in ("extract", "left", "right", "join", "load")
        }
        await harness.start(cleanup=CleanupPolicy(delete_succeeded=False))
        for run in RUNS:
            await harness.create_run(run, "steady")
        await harness.wait_run("r1", lambda o: (run_status(o).get("taskStates") or "").startswith("S"))
        await asyncio.to_thread(cluster.restart_apiserver, private_cluster.home)
        for run in RUNS:
            await assert_ran_exactly_once(harness, run)
    finally:
        await harness.release_pods()
        await harness.stop()
        await kube.close()

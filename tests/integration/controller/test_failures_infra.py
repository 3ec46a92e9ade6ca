"""Infrastructure failures are retried on their own budget, never the user's: every task here has
``retries: 0``, so only the infrastructure budget can bring it to success on attempt 2.

Each disruption is produced the way Kubernetes produces it: the kubelet's node-pressure eviction
by a KWOK stage writing the exact status the eviction manager writes, an API eviction through the
real ``pods/eviction`` subresource, a plain ``kubectl delete`` by someone else, preemption by the
real scheduler making room for a higher-priority pod, and node loss by deleting a KWOK node (the
controller's Node watch sees it at once, before the pod garbage collector's 40 s quarantine).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from leoflow.controller.planner import PlanSettings
from leoflow.controller.podnames import ATTEMPT_LABEL
from leoflow.dev import kwok
from tests.integration.controller.conftest import SUCCEED, Harness, dag_yaml, run_status

pytestmark = pytest.mark.cluster

RUNNING_FOREVER = {"kwok.leoflow.io/succeed-after": "10m"}
POOL_LABEL = "leoflow.io/failure-test-pool"


async def _start(harness: Harness) -> None:
    await harness.start(plan=PlanSettings(infra_retries=2, infra_retry_delay_seconds=0.5))


async def _running_pod(harness: Harness, run: str, attempt: int = 1) -> dict[str, Any]:
    """The attempt's pod once the kubelet (KWOK) reports it Running."""

    def running(pod: dict[str, Any]) -> bool:
        attempt_of = pod["metadata"]["labels"][ATTEMPT_LABEL]
        return attempt_of == str(attempt) and pod.get("status", {}).get("phase") == "Running"

    return await harness.wait_pod(run, running, f"of attempt {attempt} Running")


async def _first_attempt_running(harness: Harness, dag: str) -> dict[str, Any]:
    """A one-task run whose first attempt runs until something happens to it (the second
    succeeds), with no user retries: only the infrastructure budget can retry it. Its pod."""
    await harness.apply_dag(dag_yaml(dag, "  work: {command: [work], retries: 0}\n"))
    harness.script.tasks = {"work": {1: RUNNING_FOREVER, 2: SUCCEED}}
    await _start(harness)
    await harness.create_run("r1", dag)
    return await _running_pod(harness, "r1")


async def _succeeded_on_the_infrastructure_budget(harness: Harness, reason: str) -> dict[str, Any]:
    """The run succeeded on attempt 2 after one infrastructure failure named ``reason``."""
    done = await harness.wait_phase("r1", "Succeeded", within=120)
    detail = run_status(done)["tasks"]["0"]
    assert (detail["attempt"], detail["infraAttempts"]) == (2, 1), detail
    [retrying] = [e for e in await harness.events("r1") if e["reason"] == "TaskRetrying"]
    assert f"attempt 1 failed ({reason}: " in retrying["message"], retrying["message"]
    return retrying


@pytest.mark.parametrize(
    ("kubelet", "reason", "said"),
    [
        ({"kwok.leoflow.io/evict-after": "500ms"}, "Evicted", "The node was low on resource: memory."),
        # Refused before any container ran (failures.md 7): not the user's failure either.
        (
            {"kwok.leoflow.io/admission-reject": "OutOfcpu"},
            "AdmissionRejected",
            "Node didn't have enough resource: cpu",
        ),
    ],
    ids=["node-pressure-eviction", "admission-rejection"],
)
async def test_a_pod_the_kubelet_fails_is_retried_on_the_infrastructure_budget(
    harness: Harness, kubelet: dict[str, str], reason: str, said: str
) -> None:
    await harness.apply_dag(dag_yaml("kubelet", "  work: {command: [work], retries: 0}\n"))
    harness.script.tasks = {"work": {1: kubelet, 2: SUCCEED}}
    await _start(harness)
    await harness.create_run("r1", "kubelet")
    retrying = await _succeeded_on_the_infrastructure_budget(harness, reason)
    # The kubelet's own explanation reaches the user.
    assert said in retrying["message"], retrying["message"]


async def test_api_eviction_is_retried_on_the_infrastructure_budget(harness: Harness) -> None:
    pod = await _first_attempt_running(harness, "drained")
    name = pod["metadata"]["name"]
    # What `kubectl drain` and the cluster autoscaler do: POST pods/<name>/eviction.
    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": name, "namespace": harness.namespace},
    }
    path = f"/api/v1/namespaces/{harness.namespace}/pods/{name}/eviction"
    await harness.kubectl("create", "--raw", path, "-f", "-", input=json.dumps(eviction))
    retrying = await _succeeded_on_the_infrastructure_budget(harness, "Evicted")
    assert "EvictionByEvictionAPI" in retrying["message"]


async def test_pod_deleted_by_someone_else_is_retried_on_the_infrastructure_budget(harness: Harness) -> None:
    pod = await _first_attempt_running(harness, "deleted")
    await harness.kubectl("delete", "pod", pod["metadata"]["name"], "--wait=false")
    retrying = await _succeeded_on_the_infrastructure_budget(harness, "DeletedExternally")
    assert "pod deleted by someone other than Leoflow" in retrying["message"]


async def test_pod_deleted_while_the_controller_is_down_is_retried_when_it_returns(harness: Harness) -> None:
    # The result finalizer holds the deleted pod until a controller has read it: the one that
    # comes back finds it Terminating, not gone, and names the deletion instead of a lost pod.
    pod = await _first_attempt_running(harness, "outage")
    await harness.kill()
    await harness.kubectl("delete", "pod", pod["metadata"]["name"], "--wait=false")
    await _start(harness)
    retrying = await _succeeded_on_the_infrastructure_budget(harness, "DeletedExternally")
    assert "pod deleted by someone other than Leoflow" in retrying["message"]
    await harness.wait_until_no_pods("r1")


@pytest.fixture
async def pool(harness: Harness) -> AsyncIterator[str]:
    """A label value naming KWOK nodes only this test uses (``add_node`` creates them); the nodes
    keep KWOK's taint and lack the shared node-type label, so no other test's pod lands there."""
    value = f"p-{uuid.uuid4().hex[:8]}"
    yield value
    await asyncio.to_thread(
        harness.cluster.kubectl, "delete", "nodes", "-l", f"{POOL_LABEL}={value}", "--wait=false", check=False
    )


async def add_node(harness: Harness, pool: str, name: str) -> None:
    node = kwok.node_manifest(0)
    labels = node["metadata"]["labels"]
    del labels[kwok.NODE_TYPE_LABEL]
    labels.update({"kubernetes.io/hostname": name, POOL_LABEL: pool})
    node["metadata"]["name"] = name
    await asyncio.to_thread(harness.cluster.kubectl, "create", "-f", "-", input=json.dumps(node))
    for _ in range(100):
        got = await asyncio.to_thread(harness.cluster.kubectl, "get", "node", name, "-o", "json")
        conditions = json.loads(got.stdout).get("status", {}).get("conditions") or []
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"KWOK never made node {name} Ready")


def pool_dag(name: str, pool: str, tasks: str) -> str:
    placement = {
        "nodeSelector": {POOL_LABEL: pool},
        "tolerations": kwok.simulated_pod_placement()["tolerations"],
    }
    return dag_yaml(name, tasks, placement=placement)


async def test_preemption_by_the_scheduler_is_retried_on_the_infrastructure_budget(
    harness: Harness, pool: str
) -> None:
    await add_node(harness, pool, f"{pool}-a")
    # 40 of the node's 64 CPUs: the urgent pod below fits only if the task's pod goes.
    tasks = "  work: {command: [work], retries: 0, resources: {cpu: '40'}}\n"
    await harness.apply_dag(pool_dag("preempted", pool, tasks))
    harness.script.tasks = {"work": {1: RUNNING_FOREVER, 2: SUCCEED}}
    await _start(harness)
    await harness.create_run("r1", "preempted")
    await _running_pod(harness, "r1")
    priority = f"leoflow-test-urgent-{pool}"
    await asyncio.to_thread(harness.cluster.kubectl, "create", "priorityclass", priority, "--value=1000000")
    try:
        urgent = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "urgent", "annotations": {"kwok.leoflow.io/succeed-after": "2s"}},
            "spec": {
                "priorityClassName": priority,
                "nodeSelector": {POOL_LABEL: pool},
                "tolerations": kwok.simulated_pod_placement()["tolerations"],
                "containers": [
                    {
                        "name": "main",
                        "image": "registry.local/urgent:1",
                        "resources": {"requests": {"cpu": "40"}},
                    }
                ],
            },
        }
        await harness.kubectl("create", "-f", "-", input=json.dumps(urgent))
        # The urgent pod runs and ends; the retried task then gets the node back.
        retrying = await _succeeded_on_the_infrastructure_budget(harness, "Preempted")
        assert "PreemptionByScheduler" in retrying["message"]
    finally:
        # Not a task pod: the harness would wait for it to go when it releases the run's pods.
        await harness.kubectl("delete", "pod", "urgent", "--ignore-not-found", "--wait=false", check=False)
        await asyncio.to_thread(
            harness.cluster.kubectl, "delete", "priorityclass", priority, "--ignore-not-found", check=False
        )


@pytest.mark.parametrize("controller_down", [False, True], ids=["while-watching", "during-an-outage"])
async def test_node_loss_is_retried_on_the_infrastructure_budget(
    harness: Harness, pool: str, controller_down: bool
) -> None:
    await add_node(harness, pool, f"{pool}-a")
    await harness.apply_dag(pool_dag("lost", pool, "  work: {command: [work], retries: 0}\n"))
    harness.script.tasks = {"work": {1: RUNNING_FOREVER, 2: SUCCEED}}
    await _start(harness)
    await harness.create_run("r1", "lost")
    await _running_pod(harness, "r1")
    if controller_down:
        await harness.kill()
    # The machine is gone and an autoscaler brings a replacement into the pool.
    await add_node(harness, pool, f"{pool}-b")
    await asyncio.to_thread(harness.cluster.kubectl, "delete", "node", f"{pool}-a")
    if controller_down:
        # The restarted controller never saw the deletion: the node is missing from its cache,
        # which it gives the node-lost grace, and the PodGC may mark the pod first. Both are NodeLost.
        await _start(harness)
    done = await harness.wait_phase("r1", "Succeeded", within=150)
    detail = run_status(done)["tasks"]["0"]
    assert (detail["attempt"], detail["infraAttempts"]) == (2, 1), detail
    [retrying] = [e for e in await harness.events("r1") if e["reason"] == "TaskRetrying"]
    message = retrying["message"]
    said = "attempt 1 failed (NodeLost: "
    assert said in message, message
    if not controller_down:
        assert f"{said}node {pool}-a was deleted" in message, message

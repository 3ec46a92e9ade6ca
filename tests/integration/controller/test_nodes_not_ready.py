"""A task on a node that stops being Ready is failed as NodeLost once the controller's grace has
passed, on the infrastructure budget, and its pod force-deleted: no waiting for the taint
manager's 300 s, no pod Terminating for ever.

The node that dies is a Node object with no kubelet behind it: created without KWOK's annotation,
so KWOK neither heartbeats it nor runs its pods. The test writes what a kubelet and the node
lifecycle controller would: the node's Ready status, the pod's Running status, then Ready
``Unknown`` with its NoSchedule taint when "heartbeats stop". The retry runs on a KWOK node.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from leoflow.controller.planner import PlanSettings
from leoflow.controller.podnames import ATTEMPT_LABEL
from leoflow.controller.podstatus import ClassifySettings
from tests.integration.controller.conftest import SUCCEED, Harness, run_status
from tests.integration.controller.test_failures_infra import POOL_LABEL, add_node, pool, pool_dag

pytestmark = pytest.mark.cluster

__all__ = ["pool"]  # the fixture, used by name

GRACE = 3.0


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ready(status: str, reason: str, message: str) -> dict[str, Any]:
    stamp = _now()
    return {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": message,
        "lastHeartbeatTime": stamp,
        "lastTransitionTime": stamp,
    }


async def _kubectl(harness: Harness, *args: str, input: str | None = None) -> str:
    done = await asyncio.to_thread(harness.cluster.kubectl, *args, input=input)
    return str(done.stdout)


async def add_unmanaged_node(harness: Harness, pool: str, name: str) -> None:
    """A Ready node that nobody heartbeats: the test owns its status. Like a real kubelet's, its
    status lists the images on the machine, which the controller's Node cache must not keep."""
    capacity = {"cpu": "64", "memory": "512Gi", "pods": "110"}
    images = [{"names": [f"registry.local/app-{i}:1"], "sizeBytes": 50_000_000} for i in range(50)]
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, POOL_LABEL: pool}},
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [_ready("True", "KubeletReady", "kubelet is posting ready status")],
            "images": images,
        },
    }
    await _kubectl(harness, "create", "-f", "-", input=json.dumps(node))


async def _bound_pod(harness: Harness, run: str, node: str) -> dict[str, Any]:
    def bound(pod: dict[str, Any]) -> bool:
        return pod["metadata"]["labels"][ATTEMPT_LABEL] == "1" and pod["spec"].get("nodeName") == node

    return await harness.wait_pod(run, bound, f"of attempt 1 bound to {node}")


async def _play_kubelet_running(harness: Harness, pod: dict[str, Any]) -> None:
    stamp = _now()
    status = {
        "status": {
            "phase": "Running",
            "startTime": stamp,
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": stamp}
                for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
            ],
            "containerStatuses": [
                {
                    "name": "main",
                    "image": pod["spec"]["containers"][0]["image"],
                    "imageID": "",
                    "ready": True,
                    "restartCount": 0,
                    "started": True,
                    "state": {"running": {"startedAt": stamp}},
                }
            ],
        }
    }
    await harness.kubectl(
        "patch", "pod", pod["metadata"]["name"], "--subresource=status", "--type=merge",
        "-p", json.dumps(status),
    )  # fmt: skip


async def _stop_heartbeats(harness: Harness, node: str) -> None:
    """What the node lifecycle controller writes when a kubelet goes silent."""
    condition = _ready("Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
    patch = {"status": {"conditions": [condition]}}
    await _kubectl(
        harness, "patch", "node", node, "--subresource=status", "--type=strategic", "-p", json.dumps(patch)
    )
    taint = {"spec": {"taints": [{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}]}}
    await _kubectl(harness, "patch", "node", node, "--type=merge", "-p", json.dumps(taint))


async def test_task_on_a_node_not_ready_past_the_grace_is_retried_and_its_pod_force_deleted(
    harness: Harness, pool: str
) -> None:
    dying = f"{pool}-a"
    await add_unmanaged_node(harness, pool, dying)
    await harness.apply_dag(pool_dag("stranded", pool, "  work: {command: [work], retries: 0}\n"))
    harness.script.tasks = {"work": {2: SUCCEED}}
    await harness.start(
        plan=PlanSettings(infra_retries=2, infra_retry_delay_seconds=0.5),
        classify=ClassifySettings(node_lost_grace=GRACE),
    )
    await harness.create_run("r1", "stranded")
    first = await _bound_pod(harness, "r1", dying)
    await _play_kubelet_running(harness, first)
    await harness.wait_run("r1", lambda o: run_status(o).get("tasks", {}).get("0", {}).get("startTime"))
    # A replacement machine joins the pool (KWOK runs it); then the first node goes silent.
    await add_node(harness, pool, f"{pool}-b")
    await _stop_heartbeats(harness, dying)

    done = await harness.wait_phase("r1", "Succeeded", within=60)
    detail = run_status(done)["tasks"]["0"]
    assert (detail["attempt"], detail["infraAttempts"]) == (2, 1), detail
    [retrying] = [e for e in await harness.events("r1") if e["reason"] == "TaskRetrying"]
    assert f"attempt 1 failed (NodeLost: node {dying} not Ready since " in retrying["message"], retrying
    # Without a kubelet a graceful delete would leave the pod Terminating for ever.
    name = first["metadata"]["name"]
    for _ in range(50):
        if name not in {p["metadata"]["name"] for p in await harness.pods("r1")}:
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError(f"pod {name} of the lost node still exists")


async def _until(check: Callable[[], bool], what: str, within: float = 30) -> None:
    for _ in range(int(within / 0.1)):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never: {what}")


async def test_the_node_cache_holds_no_images_and_still_sees_the_node_go_not_ready(
    harness: Harness, pool: str
) -> None:
    name = f"{pool}-slim"
    await add_unmanaged_node(harness, pool, name)
    served = json.loads(await _kubectl(harness, "get", "node", name, "-o", "json"))
    assert served["status"]["images"], "the API server keeps a node's images: the test would prove nothing"
    controller = await harness.start()
    informer = controller.nodes.informer
    await _until(lambda: informer.get("", name) is not None, f"node {name} cached")
    cached = informer.get("", name)
    assert cached is not None
    assert set(cached["status"]) == {"conditions"}
    assert cached["metadata"]["resourceVersion"] == served["metadata"]["resourceVersion"]
    on_it = {"spec": {"nodeName": name}}
    assert not controller.nodes.unreachable(on_it, datetime.now(UTC))

    await _stop_heartbeats(harness, name)
    await _until(lambda: controller.nodes.unreachable(on_it, datetime.now(UTC)), f"node {name} not Ready")
    # A relist diffs the slim cache against a fresh LIST by resourceVersion: still slim, still not Ready.
    relists = informer.stats.relists
    informer.reconnect(relist=True)
    await _until(lambda: informer.stats.relists > relists, "a relist")
    cached = informer.get("", name)
    assert cached is not None and "images" not in cached["status"]
    assert controller.nodes.unreachable(on_it, datetime.now(UTC))

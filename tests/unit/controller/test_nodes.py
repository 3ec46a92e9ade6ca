"""Node readiness as the classifier needs it, which runs a readiness change requeues, and what
of a Node the cache keeps."""

from __future__ import annotations

from typing import Any

from leoflow.controller.kube.informer import EventType
from leoflow.controller.kube.transport import Transport
from leoflow.controller.nodes import NodeWatch, node_essentials
from leoflow.controller.podstatus import node_not_ready_since, node_ready

from .podfixtures import at


def node(name: str, ready: str | None, since: str = "2026-11-24T07:00:10+00:00") -> dict[str, Any]:
    conditions = [{"type": "MemoryPressure", "status": "False"}]
    if ready is not None:
        conditions.append({"type": "Ready", "status": ready, "lastTransitionTime": since})
    return {"metadata": {"name": name}, "status": {"conditions": conditions}}


def task_pod(name: str, run: str, node_name: str | None, namespace: str = "team") -> dict[str, Any]:
    spec = {"nodeName": node_name} if node_name else {}
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": {"leoflow.io/run": run}},
        "spec": spec,
    }


def test_node_not_ready_counts_from_the_ready_conditions_transition() -> None:
    assert node_not_ready_since(node("n", "False"), at(100)) == at(10)
    assert node_not_ready_since(node("n", "Unknown"), at(100)) == at(10)
    assert node_not_ready_since(node("n", "True"), at(100)) is None


def test_node_without_a_ready_condition_is_not_judged() -> None:
    assert node_not_ready_since(node("n", None), at(100)) is None
    assert node_ready(node("n", None)) is None


def test_transition_in_the_future_or_missing_counts_from_now() -> None:
    assert node_not_ready_since(node("n", "False", since="2026-11-24T08:00:00+00:00"), at(100)) == at(100)
    assert node_not_ready_since(node("n", "False", since=""), at(100)) == at(100)


def watch() -> tuple[NodeWatch, list[str]]:
    requeued: list[str] = []
    return NodeWatch(Transport(None), requeued.append), requeued


def test_readiness_change_requeues_the_runs_with_pods_on_that_node_only() -> None:
    nodes, requeued = watch()
    nodes.on_pod_event(EventType.ADDED, None, task_pod("a", "r1", "n1"))
    nodes.on_pod_event(EventType.ADDED, None, task_pod("b", "r1", "n1"))
    nodes.on_pod_event(EventType.ADDED, None, task_pod("c", "r2", "n2"))
    nodes.on_pod_event(EventType.ADDED, None, task_pod("d", "r3", None))
    nodes.on_node_event(EventType.MODIFIED, node("n1", "True"), node("n1", "Unknown"))
    assert requeued == ["team/r1"]


def test_heartbeats_that_keep_readiness_requeue_nothing() -> None:
    nodes, requeued = watch()
    nodes.on_pod_event(EventType.ADDED, None, task_pod("a", "r1", "n1"))
    nodes.on_node_event(EventType.MODIFIED, node("n1", "True"), node("n1", "True", since="x"))
    nodes.on_node_event(EventType.RESYNC, node("n1", "True"), node("n1", "True"))
    assert requeued == []


def test_node_deletion_requeues_its_runs_and_a_pod_that_moved_or_went_is_forgotten() -> None:
    nodes, requeued = watch()
    nodes.on_pod_event(EventType.ADDED, None, task_pod("a", "r1", "n1"))
    nodes.on_pod_event(EventType.ADDED, None, task_pod("b", "r2", "n1"))
    nodes.on_pod_event(EventType.DELETED, task_pod("b", "r2", "n1"), None)
    nodes.on_node_event(EventType.DELETED, node("n1", "True"), None)
    assert requeued == ["team/r1"]
    nodes.on_pod_event(EventType.DELETED, task_pod("a", "r1", "n1"), None)
    nodes.on_node_event(EventType.ADDED, None, node("n1", "True"))
    assert requeued == ["team/r1"]


def kubelet_node(name: str, ready: str) -> dict[str, Any]:
    """A Node as a real cluster serves it: identity, a spec, and a status mostly about other things."""
    full = node(name, ready)
    full["apiVersion"], full["kind"] = "v1", "Node"
    full["metadata"].update(
        uid="5f0c", resourceVersion="42", labels={"kubernetes.io/hostname": name}, annotations={"a": "b"}
    )
    full["spec"] = {"podCIDR": "10.0.0.0/24", "taints": [{"key": "k", "effect": "NoSchedule"}]}
    full["status"].update(
        images=[{"names": [f"registry.local/image-{i}:1"], "sizeBytes": 1 << 20} for i in range(500)],
        capacity={"cpu": "64"},
        addresses=[{"type": "InternalIP", "address": "10.0.0.1"}],
        nodeInfo={"kubeletVersion": "v1.33.0"},
    )
    return full


def test_the_node_cache_keeps_identity_and_conditions_only() -> None:
    full = kubelet_node("n1", "False")
    kept = node_essentials(full)
    assert kept == {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": "n1",
            "uid": "5f0c",
            "resourceVersion": "42",
            "labels": {"kubernetes.io/hostname": "n1"},
        },
        "status": {"conditions": full["status"]["conditions"]},
    }
    assert node_ready(kept) is node_ready(full) is False
    assert node_not_ready_since(kept, at(100)) == node_not_ready_since(full, at(100)) == at(10)


def test_a_node_without_status_keeps_no_status() -> None:
    assert node_essentials({"metadata": {"name": "n1", "resourceVersion": "1"}}) == {
        "metadata": {"name": "n1", "resourceVersion": "1"}
    }

"""The writer's creates, deletes, status patches and Events against the real API server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes_asyncio import client

from leoflow.controller.kube.errors import ApiError
from leoflow.controller.kube.transport import CONFIGMAPS, PODS, Transport
from leoflow.controller.kube.writer import RetryPolicy, Writer
from leoflow.dev import kwok

pytestmark = pytest.mark.cluster


def pod(name: str, attempt: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": {"leoflow.io/attempt": attempt}},
        "spec": {
            **kwok.simulated_pod_placement(),
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "leoflow.dev/base:1"}],
        },
    }


async def test_create_pod_then_create_again_adopts_the_existing_pod(kube: Any, namespace: str) -> None:
    writer = Writer(Transport(kube))
    first = await writer.create_pod(namespace, pod("task-a-1", "uid-1"))
    assert first.created
    again = await writer.create_pod(namespace, pod("task-a-1", "uid-2"))

    assert not again.created
    assert again.object["metadata"]["uid"] == first.object["metadata"]["uid"]
    assert again.object["metadata"]["annotations"]["leoflow.io/attempt"] == "uid-1", (
        "the caller sees whose attempt the existing pod belongs to"
    )


async def test_delete_pod_is_idempotent_and_respects_the_uid_precondition(kube: Any, namespace: str) -> None:
    writer = Writer(Transport(kube))
    core = client.CoreV1Api(kube)
    created = await writer.create_pod(namespace, pod("task-b-1", "x"))
    uid = created.object["metadata"]["uid"]

    assert await writer.delete_pod(namespace, "task-b-1", uid="not-" + uid) is False
    assert (await core.read_namespaced_pod("task-b-1", namespace)).metadata.uid == uid, "the pod survived"

    assert await writer.delete_pod(namespace, "task-b-1", uid=uid, grace_period_seconds=0) is True
    assert await writer.delete_pod(namespace, "never-existed") is False


async def test_invalid_pod_is_a_permanent_error_with_the_api_message(kube: Any, namespace: str) -> None:
    writer = Writer(Transport(kube))
    bad = pod("Bad_Name", "x")
    with pytest.raises(ApiError) as raised:
        await writer.create_pod(namespace, bad)
    assert raised.value.code == 422 and not raised.value.transient
    assert "Bad_Name" in raised.value.message


async def test_status_updates_are_minimal_and_survive_concurrent_writers(kube: Any, namespace: str) -> None:
    """Pods stand in for DAGRuns here: both are written through the status subresource."""
    writer = Writer(Transport(kube))
    created = await writer.create_pod(namespace, pod("task-c-1", "x"))
    assert created.created

    async def add_condition(kind: str) -> None:
        def compute(current: dict[str, Any]) -> dict[str, Any]:
            conditions = [c for c in current["status"].get("conditions", []) if c["type"] != kind]
            conditions.append({"type": kind, "status": "True"})
            return {**current["status"], "conditions": conditions}

        await writer.update_status(PODS, namespace, "task-c-1", compute)

    await asyncio.gather(*(add_condition(f"leoflow.io/c{i}") for i in range(6)))
    stored = await writer.get(PODS, namespace, "task-c-1")
    assert stored is not None
    kinds = {c["type"] for c in stored["status"]["conditions"]}
    assert {f"leoflow.io/c{i}" for i in range(6)} <= kinds, "no concurrent update was lost"


async def test_patch_status_merges_into_the_status_subresource(kube: Any, namespace: str) -> None:
    writer = Writer(Transport(kube))
    await writer.create_pod(namespace, pod("task-d-1", "x"))
    patched = await writer.patch_status(
        PODS,
        namespace,
        "task-d-1",
        {"status": {"conditions": [{"type": "leoflow.io/Seen", "status": "True"}]}},
    )
    assert {"type": "leoflow.io/Seen", "status": "True"}.items() <= patched["status"]["conditions"][0].items()


async def test_events_are_recorded_and_repeats_bump_the_count(kube: Any, namespace: str) -> None:
    writer = Writer(Transport(kube))
    created = await writer.create(CONFIGMAPS, namespace, {"metadata": {"name": "run"}})
    involved = {**created.object, "apiVersion": "v1", "kind": "ConfigMap"}
    assert await writer.create_event(involved, "TaskStarted", "task a started")
    assert await writer.create_event(involved, "TaskStarted", "task a started")
    assert await writer.create_event(involved, "TaskFailed", "task b: OOMKilled", type="Warning")

    events = (await client.CoreV1Api(kube).list_namespaced_event(namespace)).items
    by_reason = {e.reason: e for e in events if e.involved_object.name == "run"}
    assert by_reason["TaskStarted"].count == 2
    assert by_reason["TaskFailed"].type == "Warning"
    assert by_reason["TaskFailed"].involved_object.uid == created.object["metadata"]["uid"]


async def test_create_during_an_api_outage_retries_until_the_server_is_back(
    proxied_kube: Any, api_proxy: Any, namespace: str
) -> None:
    writer = Writer(
        Transport(proxied_kube), retry=RetryPolicy(max_attempts=50, base_delay=0.05, max_delay=0.2)
    )
    api_proxy.refusing = True
    api_proxy.cut()
    refused_before = errors_counted("create", "0")
    creating = asyncio.create_task(writer.create_pod(namespace, pod("task-e-1", "x")))
    while not creating.done() and errors_counted("create", "0") == refused_before:
        await asyncio.sleep(0.05)
    assert not creating.done(), "the create is waiting out the outage, not failing"
    api_proxy.refusing = False
    created = await asyncio.wait_for(creating, 30)
    assert created.created and created.object["metadata"]["name"] == "task-e-1"


def errors_counted(verb: str, code: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("leoflow_api_errors_total", {"verb": verb, "code": code}) or 0.0

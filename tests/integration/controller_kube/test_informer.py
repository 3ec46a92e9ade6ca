"""The informer's cache converges on the API server's truth through adds, 410s, cuts and silences."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from kubernetes_asyncio import client

from leoflow.controller.kube.informer import EventType, Informer, InformerOptions
from leoflow.controller.kube.transport import CONFIGMAPS, PODS, KubeObject, ResourceRef, Transport
from leoflow.dev import kwok
from leoflow.dev.cluster import wait_established

pytestmark = pytest.mark.cluster

Seen = list[tuple[EventType, str, str | None]]


def recorder(seen: Seen) -> Any:
    def handler(kind: EventType, old: KubeObject | None, new: KubeObject | None) -> None:
        obj = new if new is not None else old
        assert obj is not None
        data = (new or {}).get("data") or {}
        seen.append((kind, obj["metadata"]["name"], data.get("v")))

    return handler


def config_map(name: str, value: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"t": "1"}}, "data": {"v": value}}


MINE = "t=1"  # every namespace also holds kube-root-ca.crt, which these tests ignore


async def names_on_server(core: client.CoreV1Api, namespace: str) -> dict[str, str]:
    listed = await core.list_namespaced_config_map(namespace, label_selector=MINE)
    return {cm.metadata.name: (cm.data or {}).get("v") for cm in listed.items}


def cached(informer: Informer) -> dict[str, str]:
    return {cm["metadata"]["name"]: (cm.get("data") or {}).get("v") for cm in informer.list()}


async def test_informer_lists_existing_objects_then_sees_adds_updates_and_deletes(
    kube: Any, namespace: str, eventually: Any
) -> None:
    core = client.CoreV1Api(kube)
    for name in ("a", "b"):
        await core.create_namespaced_config_map(namespace, config_map(name, "1"))
    seen: Seen = []
    informer = Informer(Transport(kube), CONFIGMAPS, namespace=namespace, label_selector=MINE)
    informer.add_handler(recorder(seen))
    async with informer:
        await asyncio.wait_for(informer.wait_synced(), 30)
        assert informer.has_synced
        listed = informer.get(namespace, "b")
        assert listed is not None
        assert (listed["kind"], listed["apiVersion"]) == ("ConfigMap", "v1"), (
            "listed objects look like watched ones"
        )
        assert set(seen) == {(EventType.ADDED, "a", "1"), (EventType.ADDED, "b", "1")}
        seen.clear()

        await core.create_namespaced_config_map(namespace, config_map("c", "1"))
        await core.patch_namespaced_config_map("a", namespace, {"data": {"v": "2"}})
        await core.delete_namespaced_config_map("b", namespace)
        await eventually(lambda: len(seen) >= 3, "three watch events")

        assert seen == [
            (EventType.ADDED, "c", "1"),
            (EventType.MODIFIED, "a", "2"),
            (EventType.DELETED, "b", None),
        ]
        assert cached(informer) == await names_on_server(core, namespace)
        got = informer.get(namespace, "a")
        assert got is not None and got["data"] == {"v": "2"}
        assert informer.get(namespace, "b") is None
        assert "managedFields" not in got["metadata"], "the cache drops managedFields"


async def test_pod_informer_follows_selected_pods_and_drops_those_leaving_the_selector(
    kube: Any, namespace: str, eventually: Any
) -> None:
    core = client.CoreV1Api(kube)

    def pod(name: str, labels: dict[str, str]) -> dict[str, Any]:
        return {
            "metadata": {
                "name": name,
                "labels": labels,
                "annotations": {"kwok.leoflow.io/succeed-after": "300ms"},
            },
            "spec": {
                **kwok.simulated_pod_placement(),
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "leoflow.dev/base:1"}],
            },
        }

    phases: dict[str, list[str]] = {}
    deleted: list[str] = []

    def handler(kind: EventType, old: KubeObject | None, new: KubeObject | None) -> None:
        if new is None:
            assert old is not None
            deleted.append(old["metadata"]["name"])
            return
        phase = (new.get("status") or {}).get("phase", "")
        phases.setdefault(new["metadata"]["name"], []).append(phase)

    informer = Informer(Transport(kube), PODS, namespace=namespace, label_selector="leoflow.io/done!=true")
    informer.add_handler(handler)
    async with informer:
        await asyncio.wait_for(informer.wait_synced(), 30)
        await core.create_namespaced_pod(namespace, pod("task", {"leoflow.io/done": "false"}))
        await core.create_namespaced_pod(namespace, pod("finished", {"leoflow.io/done": "true"}))
        await eventually(lambda: "Succeeded" in phases.get("task", []), "the pod's Succeeded phase")
        assert "finished" not in phases, "pods outside the selector never reach the handlers"

        await core.patch_namespaced_pod(
            "task", namespace, {"metadata": {"labels": {"leoflow.io/done": "true"}}}
        )
        await eventually(lambda: deleted == ["task"], "a DELETED event when the pod leaves the selector")
        assert informer.list() == []


async def test_relist_after_an_outage_emits_what_changed_while_disconnected(
    kube: Any, proxied_kube: Any, api_proxy: Any, namespace: str, eventually: Any
) -> None:
    core = client.CoreV1Api(kube)
    for name in ("keep", "change", "remove"):
        await core.create_namespaced_config_map(namespace, config_map(name, "1"))
    seen: Seen = []
    # The freeze also silences the idle pooled connection the next watch may pick: the watchdog
    # must be quick to drop it.
    options = InformerOptions(silence_timeout=2.0)
    informer = Informer(
        Transport(proxied_kube), CONFIGMAPS, namespace=namespace, label_selector=MINE, options=options
    )
    informer.add_handler(recorder(seen))
    async with informer:
        await asyncio.wait_for(informer.wait_synced(), 30)
        seen.clear()
        api_proxy.freeze()

        await core.create_namespaced_config_map(namespace, config_map("new", "1"))
        await core.patch_namespaced_config_map("change", namespace, {"data": {"v": "2"}})
        await core.delete_namespaced_config_map("remove", namespace)
        for i in range(20):
            await core.patch_namespaced_config_map("keep", namespace, {"metadata": {"labels": {"n": str(i)}}})
        assert seen == [], "the frozen watch delivered nothing"

        informer.reconnect(relist=True)
        await eventually(lambda: len(seen) >= 4, "the synthetic events of the relist")

        assert len(seen) == 4
        assert set(seen) == {
            (EventType.ADDED, "new", "1"),
            (EventType.MODIFIED, "change", "2"),
            (EventType.MODIFIED, "keep", "1"),
            (EventType.DELETED, "remove", None),
        }
        assert informer.stats.relists == 2
        assert cached(informer) == await names_on_server(core, namespace)


async def test_cut_watch_connection_is_reestablished_without_losing_events(
    kube: Any, proxied_kube: Any, api_proxy: Any, namespace: str, eventually: Any
) -> None:
    core = client.CoreV1Api(kube)
    seen: Seen = []
    informer = Informer(Transport(proxied_kube), CONFIGMAPS, namespace=namespace, label_selector=MINE)
    informer.add_handler(recorder(seen))
    async with informer:
        await asyncio.wait_for(informer.wait_synced(), 30)
        api_proxy.refusing = True
        api_proxy.cut()
        await core.create_namespaced_config_map(namespace, config_map("during-outage", "1"))
        await core.create_namespaced_config_map(namespace, config_map("gone-during-outage", "1"))
        await core.delete_namespaced_config_map("gone-during-outage", namespace)
        await eventually(lambda: informer.stats.errors >= 1, "the informer noticing the outage")
        api_proxy.refusing = False

        await eventually(lambda: len(seen) >= 3, "the events from the outage")
        assert seen == [
            (EventType.ADDED, "during-outage", "1"),
            (EventType.ADDED, "gone-during-outage", "1"),
            (EventType.DELETED, "gone-during-outage", None),
        ]
        assert informer.stats.relists == 1, "a resumable watch resumes instead of relisting"
        assert cached(informer) == await names_on_server(core, namespace)


async def test_watchdog_restarts_a_silent_watch(
    kube: Any, proxied_kube: Any, api_proxy: Any, namespace: str, eventually: Any
) -> None:
    core = client.CoreV1Api(kube)
    seen: Seen = []
    options = InformerOptions(silence_timeout=1.0, resync_period=None)
    informer = Informer(
        Transport(proxied_kube), CONFIGMAPS, namespace=namespace, label_selector=MINE, options=options
    )
    informer.add_handler(recorder(seen))
    async with informer:
        await asyncio.wait_for(informer.wait_synced(), 30)
        api_proxy.freeze()
        await core.create_namespaced_config_map(namespace, config_map("while-silent", "1"))

        await eventually(
            lambda: seen == [(EventType.ADDED, "while-silent", "1")], "the event after the restart"
        )
        assert informer.stats.watchdog_restarts >= 1


async def test_resync_replays_every_cached_object(kube: Any, namespace: str, eventually: Any) -> None:
    core = client.CoreV1Api(kube)
    await core.create_namespaced_config_map(namespace, config_map("x", "1"))
    await core.create_namespaced_config_map(namespace, config_map("y", "1"))
    seen: Seen = []
    informer = Informer(
        Transport(kube),
        CONFIGMAPS,
        namespace=namespace,
        label_selector=MINE,
        options=InformerOptions(resync_period=0.2),
    )
    informer.add_handler(recorder(seen))
    async with informer:
        await eventually(
            lambda: {name for kind, name, _ in seen if kind is EventType.RESYNC} == {"x", "y"},
            "a resync of both objects",
        )


def widget_crd(group: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }


async def test_real_410_after_an_outage_spanning_a_resource_reinstall_relists_and_diffs(
    cluster: Any, kube: Any, *, proxied_kube: Any, api_proxy: Any, namespace: str, eventually: Any
) -> None:
    """A reinstalled CRD gets a fresh watch cache that starts after our resume point, so the API
    server answers the informer's resumed watch with a genuine 410 Expired."""
    group = f"t{uuid.uuid4().hex[:8]}.test.leoflow.io"
    crd = widget_crd(group)

    def install() -> None:
        cluster.kubectl("apply", "-f", "-", input=json.dumps(crd))
        wait_established(cluster.state, (f"widgets.{group}",))

    custom = client.CustomObjectsApi(kube)

    async def put(name: str, value: str) -> None:
        body = {
            "apiVersion": f"{group}/v1",
            "kind": "Widget",
            "metadata": {"name": name},
            "data": {"v": value},
        }
        await custom.create_namespaced_custom_object(group, "v1", namespace, "widgets", body)

    install()
    try:
        await put("a", "1")
        await put("b", "1")
        seen: Seen = []
        options = InformerOptions(backoff_initial=0.05, backoff_max=0.5, resync_period=None)
        informer = Informer(
            Transport(proxied_kube), ResourceRef(group, "v1", "widgets"), namespace=namespace, options=options
        )
        informer.add_handler(recorder(seen))
        async with informer:
            await asyncio.wait_for(informer.wait_synced(), 30)
            seen.clear()
            api_proxy.refusing = True
            api_proxy.cut()
            cluster.kubectl("delete", "crd", f"widgets.{group}", "--wait=true", "--timeout=60s")
            install()
            await put("a", "2")
            await put("c", "1")
            api_proxy.refusing = False

            await eventually(lambda: informer.stats.expired >= 1, "a 410 from the API server")
            await eventually(lambda: len(seen) >= 3, "the relist's synthetic events")
            assert set(seen) == {
                (EventType.MODIFIED, "a", "2"),
                (EventType.DELETED, "b", None),
                (EventType.ADDED, "c", "1"),
            }
            assert len(seen) == 3
    finally:
        cluster.kubectl(
            "delete", "crd", f"widgets.{group}", "--wait=false", "--ignore-not-found", check=False
        )


async def test_paginated_list_gathers_every_page(kube: Any, namespace: str) -> None:
    core = client.CoreV1Api(kube)
    for i in range(7):
        await core.create_namespaced_config_map(namespace, config_map(f"cm{i}", str(i)))
    seen: Seen = []
    options = InformerOptions(page_size=2, resync_period=None)
    informer = Informer(
        Transport(kube), CONFIGMAPS, namespace=namespace, label_selector=MINE, options=options
    )
    informer.add_handler(recorder(seen))
    async with informer:
        await asyncio.wait_for(informer.wait_synced(), 30)
        assert informer.stats.list_pages == 4
        assert sorted(name for _, name, _ in seen) == [f"cm{i}" for i in range(7)]
        assert cached(informer) == await names_on_server(core, namespace)

"""Informer protocol details a real API server will not produce on cue: 410s and bookmarks."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from leoflow.controller.kube.informer import EventType, Informer, InformerOptions
from leoflow.controller.kube.transport import CONFIGMAPS, KubeObject, Transport

PATH = "/api/v1/namespaces/ns/configmaps"


def cm(name: str, version: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": version}}


class Script:
    """Lists return successive snapshots; watches play successive scripts of lines."""

    def __init__(
        self, lists: list[tuple[str, list[dict[str, Any]]]], watches: list[Any], *, hang: bool = True
    ) -> None:
        self.hang = hang
        self.lists = lists
        self.watches = watches
        self.watch_queries: list[dict[str, list[str]]] = []

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        query = parse_qs(request.query_string)
        if "watch" not in query:
            version, items = self.lists.pop(0)
            return web.json_response({"metadata": {"resourceVersion": version}, "items": items})
        self.watch_queries.append(query)
        script = self.watches.pop(0) if self.watches else []
        if isinstance(script, web.Response):
            return script
        response = web.StreamResponse()
        await response.prepare(request)
        for line in script:
            # "cut" stands for half a JSON line, as a connection dying mid-event leaves it.
            await response.write(b'{"type": "MODIF\n' if line == "cut" else json.dumps(line).encode() + b"\n")
        if self.hang or not script:
            await asyncio.sleep(3600)
        return response


def recorder(seen: list[tuple[EventType, str]]) -> Any:
    def handler(kind: EventType, old: KubeObject | None, new: KubeObject | None) -> None:
        obj = new if new is not None else old
        assert obj is not None
        seen.append((kind, obj["metadata"]["name"]))

    return handler


async def until(check: Any) -> None:
    async with asyncio.timeout(10):
        while not check():
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("how", ["error-event", "http-410"])
async def test_gone_watch_relists_and_diffs_the_cache(
    fake_api: Any, make_status: Any, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    # At INFO, as the controller logs: the expiry's log line itself must not break the relist.
    caplog.set_level(logging.INFO, logger="leoflow.controller.kube.informer")
    expired = (
        [
            {
                "type": "ERROR",
                "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"},
            }
        ]
        if how == "error-event"
        else make_status(410, "Gone", "too old resource version: 10 (400)")
    )
    script = Script(
        lists=[("10", [cm("a", "1"), cm("b", "1")]), ("20", [cm("a", "2"), cm("c", "1")])],
        watches=[expired],
    )
    fake_api.on("GET", PATH, script)
    seen: list[tuple[EventType, str]] = []
    informer = Informer(
        Transport(fake_api.client), CONFIGMAPS, namespace="ns", options=InformerOptions(resync_period=None)
    )
    informer.add_handler(recorder(seen))
    async with informer:
        await until(lambda: len(seen) == 5)
        assert seen[:2] == [(EventType.ADDED, "a"), (EventType.ADDED, "b")]
        assert set(seen[2:]) == {(EventType.MODIFIED, "a"), (EventType.ADDED, "c"), (EventType.DELETED, "b")}
        assert informer.stats.expired == 1
        assert sorted(o["metadata"]["name"] for o in informer.list()) == ["a", "c"]
        await until(lambda: len(script.watch_queries) == 2)
        assert script.watch_queries[1]["resourceVersion"] == ["20"], "the new watch starts at the relist"


async def test_bookmark_moves_the_resume_point_without_a_relist(fake_api: Any) -> None:
    first_watch = [
        {"type": "BOOKMARK", "object": {"kind": "ConfigMap", "metadata": {"resourceVersion": "15"}}}
    ]
    script = Script(lists=[("10", [cm("a", "1")])], watches=[first_watch], hang=False)
    fake_api.on("GET", PATH, script)
    informer = Informer(
        Transport(fake_api.client), CONFIGMAPS, namespace="ns", options=InformerOptions(resync_period=None)
    )
    async with informer:
        await until(lambda: len(script.watch_queries) == 2)
    first, second = script.watch_queries
    assert first["resourceVersion"] == ["10"] and first["allowWatchBookmarks"] == ["true"]
    assert "timeoutSeconds" in first
    assert second["resourceVersion"] == ["15"]
    assert informer.stats.relists == 1


async def test_a_line_cut_short_resumes_from_the_last_good_event(fake_api: Any) -> None:
    good = {"type": "ADDED", "object": cm("b", "11")}
    script = Script(lists=[("10", [cm("a", "1")])], watches=[[good, "cut"]], hang=False)
    fake_api.on("GET", "/api/v1/namespaces/cut-short/configmaps", script)
    seen: list[tuple[EventType, str]] = []
    informer = Informer(
        Transport(fake_api.client),
        CONFIGMAPS,
        namespace="cut-short",
        options=InformerOptions(resync_period=None, backoff_initial=0.01),
    )
    informer.add_handler(recorder(seen))
    async with informer:
        await until(lambda: len(script.watch_queries) == 2)
    assert seen == [(EventType.ADDED, "a"), (EventType.ADDED, "b")]
    assert script.watch_queries[1]["resourceVersion"] == ["11"]
    assert informer.stats.errors == 1 and informer.stats.relists == 1
    labels = {"informer": informer.name, "cause": "error"}
    assert REGISTRY.get_sample_value("leoflow_informer_watch_restarts_total", labels) == 1


def identity_only(obj: KubeObject) -> KubeObject:
    meta = obj["metadata"]
    return {"metadata": {key: meta[key] for key in ("name", "namespace", "resourceVersion")}}


async def test_transformed_objects_are_cached_handed_out_and_diffed_by_resource_version(
    fake_api: Any,
) -> None:
    def big(name: str, version: str) -> dict[str, Any]:
        return {**cm(name, version), "data": {"blob": "x" * 10_000}}

    expired = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}
    script = Script(
        lists=[("10", [big("a", "1"), big("b", "1")]), ("20", [big("a", "3"), big("b", "1")])],
        watches=[[{"type": "MODIFIED", "object": big("a", "2")}, expired]],
    )
    fake_api.on("GET", "/api/v1/namespaces/slim/configmaps", script)
    seen: list[tuple[EventType, KubeObject | None, KubeObject | None]] = []
    informer = Informer(
        Transport(fake_api.client),
        CONFIGMAPS,
        namespace="slim",
        options=InformerOptions(resync_period=None),
        transform=identity_only,
    )
    informer.add_handler(lambda kind, old, new: seen.append((kind, old, new)))
    async with informer:
        await until(lambda: len(script.watch_queries) == 2)
    # b kept its resourceVersion through the relist: no event; a moved 1 -> 2 (watch) -> 3 (relist).
    versions = [
        (kind, old and old["metadata"]["resourceVersion"], new and new["metadata"]["resourceVersion"])
        for kind, old, new in seen
    ]
    assert versions == [
        (EventType.ADDED, None, "1"),
        (EventType.ADDED, None, "1"),
        (EventType.MODIFIED, "1", "2"),
        (EventType.MODIFIED, "2", "3"),
    ]
    handed_out = [obj for _, old, new in seen for obj in (old, new) if obj is not None]
    assert all("data" not in obj for obj in [*handed_out, *informer.list()])
    assert [query["resourceVersion"] for query in script.watch_queries] == [["10"], ["20"]]

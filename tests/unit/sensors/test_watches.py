"""The shared watch hub against a scripted API server: sharing, relist on 410, failures."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from leoflow.controller.sensors.watches import KubeObject, WatchHub, WatchKey
from tests.unit.sensors.manual_clock import until

CORE_DISCOVERY = {
    "resources": [
        {"name": "configmaps", "kind": "ConfigMap", "namespaced": True},
        {"name": "configmaps/status", "kind": "ConfigMap", "namespaced": True},
        {"name": "nodes", "kind": "Node", "namespaced": False},
    ]
}


def configmap(name: str, version: str, **data: str) -> KubeObject:
    return {"metadata": {"name": name, "resourceVersion": version}, "data": data}


class FakeContent:
    def __init__(self, lines: list[KubeObject] | None) -> None:
        self._lines = lines

    async def iter_any(self) -> AsyncIterator[bytes]:
        if self._lines is None:
            await asyncio.Event().wait()
        for line in self._lines or []:
            yield json.dumps(line).encode() + b"\n"


class FakeResponse:
    def __init__(self, status: int, body: object = None, lines: list[KubeObject] | None = None) -> None:
        self.status = status
        self._body = body
        self.content = FakeContent(lines)

    async def read(self) -> bytes:
        return self._body if isinstance(self._body, bytes) else json.dumps(self._body).encode()

    def release(self) -> None:
        pass


class ScriptedApi:
    """Answers discovery, LIST and WATCH from scripts; a watch with no script left hangs."""

    def __init__(
        self,
        lists: list[FakeResponse],
        watches: list[list[KubeObject]] | None = None,
        discovery: FakeResponse | None = None,
    ) -> None:
        self.lists = lists
        self.watches = watches or []
        self.discovery = discovery or FakeResponse(200, CORE_DISCOVERY)
        self.calls: list[tuple[str, dict[str, str]]] = []

    def watched_from(self) -> list[str]:
        return [query["resourceVersion"] for _, query in self.calls if query.get("watch")]

    async def call_api(
        self, path: str, method: str, query_params: list[tuple[str, str]], **_: Any
    ) -> FakeResponse:
        query = dict(query_params)
        self.calls.append((path, query))
        if path in ("/api/v1", "/apis/nowhere.example/v1"):
            return self.discovery
        if query.get("watch"):
            return FakeResponse(200, lines=self.watches.pop(0) if self.watches else None)
        return self.lists.pop(0) if len(self.lists) > 1 else self.lists[0]


def listing(version: str, *items: KubeObject) -> FakeResponse:
    return FakeResponse(200, {"metadata": {"resourceVersion": version}, "items": list(items)})


class Seen:
    def __init__(self) -> None:
        self.objects: list[KubeObject | None] = []
        self.errors: list[str] = []

    def on_object(self, obj: KubeObject | None) -> None:
        self.objects.append(obj)

    def on_permanent_error(self, message: str) -> None:
        self.errors.append(message)

    def data(self) -> list[dict[str, str] | None]:
        return [None if obj is None else obj["data"] for obj in self.objects]


KEY = WatchKey("v1", "ConfigMap", "team")


async def test_relist_after_410_shows_changes_and_deletions() -> None:
    api = ScriptedApi(
        lists=[listing("10", configmap("a", "10", x="1")), listing("30", configmap("b", "30"))],
        watches=[
            [
                {"type": "MODIFIED", "object": configmap("a", "20", x="2")},
                {"type": "ERROR", "object": {"code": 410}},
            ]
        ],
    )
    hub = WatchHub(api)
    a, b = Seen(), Seen()
    hub.subscribe(KEY, "a", a)
    hub.subscribe(KEY, "b", b)
    await until(lambda: a.data() == [{"x": "1"}, {"x": "2"}, None] and b.data() == [{}], "relisted")
    assert api.watched_from() == ["10", "30"], "watch, 410, list again, watch from the new list"
    await hub.close()


async def test_bookmarks_move_the_resume_point() -> None:
    bookmark = {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "55"}}}
    api = ScriptedApi(lists=[listing("10")], watches=[[bookmark]])
    hub = WatchHub(api)
    hub.subscribe(KEY, "a", Seen())
    await until(lambda: len(api.watched_from()) == 2, "watched again after the stream ended")
    assert api.watched_from() == ["10", "55"]
    await hub.close()


async def test_sensors_on_one_type_and_namespace_share_a_watch() -> None:
    hub = WatchHub(ScriptedApi(lists=[listing("1", configmap("a", "1"))]))
    subs = [hub.subscribe(KEY, name, Seen()) for name in ("a", "a", "b")]
    other = hub.subscribe(WatchKey("v1", "ConfigMap", "elsewhere"), "a", Seen())
    assert (hub.watches_opened, hub.open_watches) == (2, 2)
    for sub in subs:
        hub.unsubscribe(sub)
    assert hub.open_watches == 1
    hub.unsubscribe(other)
    assert hub.open_watches == 0
    await hub.close()


async def test_late_subscriber_is_shown_the_cached_object() -> None:
    hub = WatchHub(ScriptedApi(lists=[listing("1", configmap("a", "1", k="v"))]))
    first = Seen()
    hub.subscribe(KEY, "a", first)
    await until(lambda: first.objects != [], "listed")
    late = Seen()
    hub.subscribe(KEY, "a", late)
    await until(lambda: late.data() == [{"k": "v"}], "replayed from the cache")
    await hub.close()


async def test_unknown_kind_and_unserved_api_are_permanent() -> None:
    hub = WatchHub(ScriptedApi(lists=[listing("1")]))
    widget = Seen()
    hub.subscribe(WatchKey("v1", "Widget", "team"), "w", widget)
    await until(lambda: widget.errors != [], "failed")
    assert widget.errors == ["kind Widget does not exist in v1"]
    late = Seen()
    hub.subscribe(WatchKey("v1", "Widget", "team"), "x", late)
    await until(lambda: late.errors != [], "the failure is replayed")

    gone = Seen()
    unserved = WatchHub(ScriptedApi(lists=[listing("1")], discovery=FakeResponse(404, b"404 page not found")))
    unserved.subscribe(WatchKey("nowhere.example/v1", "Widget", "team"), "w", gone)
    await until(lambda: gone.errors != [], "failed")
    assert "not served" in gone.errors[0]
    await hub.close()
    await unserved.close()


async def test_forbidden_list_is_permanent_and_a_server_error_is_retried() -> None:
    forbidden = Seen()
    hub = WatchHub(ScriptedApi(lists=[FakeResponse(403, {"message": "configmaps is forbidden"})]))
    hub.subscribe(KEY, "a", forbidden)
    await until(lambda: forbidden.errors != [], "failed")
    assert "forbidden" in forbidden.errors[0]

    retried = Seen()
    flaky = WatchHub(
        ScriptedApi(lists=[FakeResponse(500, {"message": "etcd"}), listing("2", configmap("a", "2"))])
    )
    flaky.subscribe(KEY, "a", retried)
    await until(lambda: retried.objects != [], "listed after a retry")
    assert retried.errors == []
    await hub.close()
    await flaky.close()


async def test_cluster_scoped_kinds_share_one_watch_across_namespaces() -> None:
    api = ScriptedApi(lists=[listing("1", configmap("kwok-0", "1"))])
    hub = WatchHub(api)
    first = Seen()
    hub.subscribe(WatchKey("v1", "Node", "team"), "kwok-0", first)
    await until(lambda: first.objects != [], "listed")
    assert ("/api/v1/nodes", {"limit": "500"}) in api.calls
    hub.subscribe(WatchKey("v1", "Node", "other"), "kwok-0", Seen())
    hub.subscribe(WatchKey("v1", "Node", None), "kwok-1", Seen())
    assert hub.watches_opened == 2, "the first sensor's watch, then one for every namespace"
    await hub.close()

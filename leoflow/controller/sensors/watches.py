"""Kubernetes sensors wait on watches, and sensors on the same resource type share one.

A sensor names an object by apiVersion, kind, namespace and name. The hub resolves the kind to its
resource through discovery (once per group/version), then keeps exactly one LIST+WATCH per
(group, version, resource, namespace) however many sensors wait on objects of it, and hands each
object change to the sensors that named that object (or, for DAG-run sensors, that asked for any
object of the type). A watch starts with the first sensor on its type and stops with the last.

Level-triggered like the rest of the controller: a sensor added to a running watch is shown the
cached object at once; after a 410 Gone or any broken stream the watch lists again and shows every
listener its object, so nothing that happened while disconnected is missed. Transient failures
retry with capped exponential backoff and never fail a sensor (its timeout does that); an unknown
apiVersion or kind, or a forbidden type, is reported to the sensors as a permanent error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp

log = logging.getLogger(__name__)

KubeObject = dict[str, Any]

WATCH_TIMEOUT_SECONDS = 290
SILENCE_TIMEOUT = 180
"""Bookmarks arrive about once a minute; three minutes without a byte is a dead connection."""
RETRY_MIN = 0.5
RETRY_MAX = 30.0


class Listener(Protocol):
    def on_object(self, obj: KubeObject | None) -> None:
        """The object now (None: it does not exist)."""

    def on_permanent_error(self, message: str) -> None:
        """The watch cannot be served at all (unknown kind, forbidden)."""


@dataclass(frozen=True, slots=True)
class ResourceType:
    group: str
    version: str
    plural: str
    namespaced: bool

    def path(self, namespace: str | None) -> str:
        root = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace is not None:
            return f"{root}/namespaces/{quote(namespace, safe='')}/{self.plural}"
        return f"{root}/{self.plural}"


@dataclass(frozen=True, slots=True)
class WatchKey:
    api_version: str
    kind: str
    namespace: str | None


class PermanentWatchError(Exception):
    pass


class TransientWatchError(Exception):
    pass


class Subscription:
    __slots__ = ("listener", "name", "watch")

    def __init__(self, watch: SharedWatch, name: str | None, listener: Listener) -> None:
        self.watch = watch
        self.name = name
        self.listener = listener


@dataclass(eq=False)
class SharedWatch:
    key: WatchKey
    by_name: dict[str, set[Subscription]] = field(default_factory=dict)
    any_object: set[Subscription] = field(default_factory=set)
    objects: dict[str, KubeObject] = field(default_factory=dict)
    synced: bool = False
    failed: str | None = None
    task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self.any_object) + sum(len(s) for s in self.by_name.values())

    def deliver(self, name: str, obj: KubeObject | None) -> None:
        for sub in list(self.by_name.get(name, ())):
            _safely(sub.listener.on_object, obj)
        if obj is not None:
            for sub in list(self.any_object):
                _safely(sub.listener.on_object, obj)


def _safely(call: Any, *args: Any) -> None:
    try:
        call(*args)
    except Exception:
        log.exception("sensor watch listener failed")


class WatchHub:
    """All Kubernetes sensor watches of one controller, on one kubernetes_asyncio ApiClient."""

    def __init__(self, api_client: Any, *, request_timeout: float = 30.0) -> None:
        self._api = api_client
        self._request_timeout = request_timeout
        self._watches: dict[WatchKey, SharedWatch] = {}
        self._discovery: dict[str, dict[str, ResourceType]] = {}
        self._discovery_lock = asyncio.Lock()
        self.watches_opened = 0
        """Watches started over the hub's life: tests check that sensors share them."""

    @property
    def open_watches(self) -> int:
        return len(self._watches)

    def subscribe(self, key: WatchKey, name: str | None, listener: Listener) -> Subscription:
        """``name=None`` listens to every object of the type (DAG-run sensors filter themselves)."""
        known = self._discovery.get(key.api_version, {}).get(key.kind)
        if known is not None and not known.namespaced and key.namespace is not None:
            # Cluster-scoped (Nodes, Namespaces): one watch serves sensors from every namespace.
            key = WatchKey(key.api_version, key.kind, None)
        watch = self._watches.get(key)
        if watch is None:
            watch = self._watches[key] = SharedWatch(key)
            self.watches_opened += 1
            watch.task = asyncio.get_running_loop().create_task(self._run(watch))
        sub = Subscription(watch, name, listener)
        if name is None:
            watch.any_object.add(sub)
        else:
            watch.by_name.setdefault(name, set()).add(sub)
        loop = asyncio.get_running_loop()
        if watch.failed is not None:
            loop.call_soon(self._replay_failure, sub)
        elif watch.synced:
            loop.call_soon(self._replay, sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        watch = sub.watch
        if sub.name is None:
            watch.any_object.discard(sub)
        else:
            subs = watch.by_name.get(sub.name)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del watch.by_name[sub.name]
        if not len(watch) and self._watches.get(watch.key) is watch:
            del self._watches[watch.key]
            if watch.task is not None:
                watch.task.cancel()

    async def close(self) -> None:
        watches = list(self._watches.values())
        self._watches.clear()
        for watch in watches:
            if watch.task is not None:
                watch.task.cancel()
        for watch in watches:
            if watch.task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await watch.task

    def _live(self, sub: Subscription) -> bool:
        watch = self._watches.get(sub.watch.key)
        if watch is not sub.watch:
            return False
        return sub in (watch.any_object if sub.name is None else watch.by_name.get(sub.name, ()))

    def _replay(self, sub: Subscription) -> None:
        if not self._live(sub):
            return
        if sub.name is not None:
            _safely(sub.listener.on_object, sub.watch.objects.get(sub.name))
        else:
            for obj in list(sub.watch.objects.values()):
                _safely(sub.listener.on_object, obj)

    def _replay_failure(self, sub: Subscription) -> None:
        if self._live(sub) and sub.watch.failed is not None:
            _safely(sub.listener.on_permanent_error, sub.watch.failed)

    async def _run(self, watch: SharedWatch) -> None:
        delay = RETRY_MIN
        path = f"{watch.key.api_version} {watch.key.kind}"
        while True:
            try:
                path = (await self._resolve(watch.key)).path(watch.key.namespace)
                resume: str | None = await self._list(watch, path)
                delay = RETRY_MIN
                while resume is not None:
                    resume = await self._watch(watch, path, resume)
            except PermanentWatchError as err:
                self._fail(watch, str(err))
                return
            except (TransientWatchError, aiohttp.ClientError, TimeoutError, OSError, ValueError) as err:
                log.warning(
                    "sensor watch broke; listing again",
                    extra={"resource": path, "error": str(err), "retry_in": delay},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)

    def _fail(self, watch: SharedWatch, message: str) -> None:
        watch.failed = message
        for sub in [*watch.any_object, *(s for subs in watch.by_name.values() for s in subs)]:
            _safely(sub.listener.on_permanent_error, message)

    async def _resolve(self, key: WatchKey) -> ResourceType:
        group, _, version = key.api_version.rpartition("/")
        async with self._discovery_lock:
            kinds = self._discovery.get(key.api_version)
            if kinds is None:
                path = f"/apis/{group}/{version}" if group else f"/api/{version}"
                status, body = await self._get_json(path, [])
                if status == 404:
                    raise PermanentWatchError(f"apiVersion {key.api_version} is not served by this cluster")
                if status in (401, 403):
                    raise PermanentWatchError(
                        f"the controller may not discover {key.api_version}: HTTP {status}"
                    )
                if status != 200:
                    raise TransientWatchError(f"discovery of {key.api_version} answered HTTP {status}")
                kinds = {
                    item["kind"]: ResourceType(group, version, item["name"], bool(item.get("namespaced")))
                    for item in body.get("resources", [])
                    if "/" not in item.get("name", "/") and "kind" in item
                }
                self._discovery[key.api_version] = kinds
        resource = kinds.get(key.kind)
        if resource is None:
            # Forget the listing so a CRD installed later is found by the next sensor.
            self._discovery.pop(key.api_version, None)
            raise PermanentWatchError(f"kind {key.kind} does not exist in {key.api_version}")
        return resource

    async def _get_json(self, path: str, query: list[tuple[str, str]]) -> tuple[int, KubeObject]:
        response = await self._open(path, query, self._request_timeout)
        try:
            raw = await response.read()
        finally:
            response.release()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"message": raw[:200].decode(errors="replace")}
        return response.status, body if isinstance(body, dict) else {}

    async def _open(
        self, path: str, query: list[tuple[str, str]], client_timeout: float | aiohttp.ClientTimeout
    ) -> aiohttp.ClientResponse:
        response: aiohttp.ClientResponse = await self._api.call_api(
            path,
            "GET",
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=client_timeout,
        )
        return response

    async def _list(self, watch: SharedWatch, path: str) -> str:
        objects: dict[str, KubeObject] = {}
        cont = ""
        while True:
            query = [("limit", "500")] + ([("continue", cont)] if cont else [])
            status, body = await self._get_json(path, query)
            _raise_for(status, body, path)
            for item in body.get("items", []):
                objects[item["metadata"]["name"]] = item
            metadata = body.get("metadata", {})
            cont = metadata.get("continue", "")
            if not cont:
                break
        gone = [name for name in watch.objects if name not in objects]
        watch.objects = objects
        watch.synced = True
        for name in gone:
            watch.deliver(name, None)
        for name, obj in list(objects.items()):
            watch.deliver(name, obj)
        return str(metadata.get("resourceVersion", ""))

    async def _watch(self, watch: SharedWatch, path: str, version: str) -> str | None:
        """Streams events from ``version``; returns where to resume, or None to list again."""
        query = [
            ("watch", "true"),
            ("resourceVersion", version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(WATCH_TIMEOUT_SECONDS)),
        ]
        timeout = aiohttp.ClientTimeout(total=WATCH_TIMEOUT_SECONDS + 30, sock_read=SILENCE_TIMEOUT)
        response = await self._open(path, query, timeout)
        try:
            if response.status == 410:
                return None
            if response.status != 200:
                raw = await response.read()
                _raise_for(response.status, {"message": raw[:200].decode(errors="replace")}, path)
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        resume = self._apply(watch, json.loads(line))
                        if resume is None:
                            return None
                        version = resume or version
        finally:
            response.release()
        return version

    def _apply(self, watch: SharedWatch, event: KubeObject) -> str | None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                return None
            raise TransientWatchError(f"watch error: {obj.get('message', obj)}")
        metadata = obj.get("metadata", {})
        version = str(metadata.get("resourceVersion", ""))
        if kind == "BOOKMARK":
            return version
        name = metadata.get("name", "")
        if kind == "DELETED":
            watch.objects.pop(name, None)
            watch.deliver(name, None)
        else:
            watch.objects[name] = obj
            watch.deliver(name, obj)
        return version


def _raise_for(status: int, body: KubeObject, path: str) -> None:
    if status == 200:
        return
    message = body.get("message", f"HTTP {status}")
    if status in (401, 403, 404):
        raise PermanentWatchError(f"cannot watch {path}: {message}")
    raise TransientWatchError(f"listing {path} answered HTTP {status}: {message}")

"""A local, always-converging copy of one kind of object: LIST, then WATCH, then repeat on trouble.

There is no informer in the Python clients, and a bare ``watch.stream`` loop loses events
whenever the watch ends (reference/failures.md, entry 14: Airflow's watcher froze on silent
connections, died on 410 raised mid-iteration, and missed every deletion that happened while it
was reconnecting). This one keeps client-go's contract:

* LIST (paginated), then WATCH from the list's resourceVersion with bookmarks, so a quiet
  selective watch still has a fresh resume point;
* on 410 Gone (raised, or as an ``ERROR`` event), relist and diff against the cache, emitting
  synthetic ADDED/MODIFIED/DELETED for whatever changed while we could not see it;
* a server-side ``timeoutSeconds``, a client total timeout, and a watchdog that drops a watch that
  has been silent (no event, no bookmark) for longer than a bound: that is a dead connection;
* a periodic RESYNC of every cached object, because handlers must be level-triggered: events only
  make things faster, the resync makes them right.

Objects are raw JSON dicts (``managedFields`` dropped to save memory, and passed through the
informer's ``transform`` when it has one, so a cache of big objects keeps only what its handlers
read); handlers are plain callables ``handler(event_type, old, new)`` run on the event loop, so
they must only record work (enqueue a key) and never block.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from prometheus_client import Counter, Gauge

from leoflow.controller.kube.errors import ApiError, connection_error, error_from_status_object
from leoflow.controller.kube.transport import KubeObject, ResourceRef, Transport

log = logging.getLogger(__name__)

WATCH_RESTARTS = Counter(
    "leoflow_informer_watch_restarts",
    "Watches that ended, by informer and cause (closed, expired, watchdog, error)",
    ["informer", "cause"],
)
RELISTS = Counter("leoflow_informer_relists", "Full LISTs, by informer", ["informer"])
LAST_EVENT = Gauge(
    "leoflow_informer_last_event_timestamp_seconds",
    "Wall-clock time of the last watch event or bookmark, by informer (alert on its age)",
    ["informer"],
)


class EventType(enum.Enum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"
    RESYNC = "RESYNC"


Handler = Callable[[EventType, KubeObject | None, KubeObject | None], None]
Transform = Callable[[KubeObject], KubeObject]
Query = list[tuple[str, str]]


@dataclass(frozen=True)
class InformerOptions:
    page_size: int = 500
    watch_timeout_seconds: int = 300
    """Server-side watch duration; the server then closes the stream cleanly and we re-watch."""
    silence_timeout: float = 180.0
    """Watchdog: bookmarks arrive about once a minute, so ~3x that without a byte is a dead link."""
    resync_period: float | None = 300.0
    backoff_initial: float = 0.2
    backoff_max: float = 10.0
    connect_timeout: float = 10.0


@dataclass
class InformerStats:
    relists: int = 0
    list_pages: int = 0
    expired: int = 0
    watches: int = 0
    watchdog_restarts: int = 0
    errors: int = 0
    last_event_monotonic: float = 0.0


def object_key(obj: KubeObject) -> str:
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace") or ""
    return f"{namespace}/{meta.get('name', '')}" if namespace else str(meta.get("name", ""))


def _resource_version(obj: KubeObject) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


def _slim(obj: KubeObject) -> KubeObject:
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    return obj


class Informer:
    """Caches every object of ``resource`` (in ``namespace``, or all) matching the selectors.

    ``transform``, if given, is applied to every object before it is cached and handed to the
    handlers (LIST items and WATCH events alike; the ``old`` a handler gets comes from the cache,
    so it was transformed too). It must keep ``metadata.name``, ``metadata.namespace`` and
    ``metadata.resourceVersion``: the cache is keyed by the first two, and the relist diff and
    duplicate-event check compare the third.
    """

    def __init__(
        self,
        transport: Transport,
        resource: ResourceRef,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        options: InformerOptions | None = None,
        transform: Transform | None = None,
    ) -> None:
        self._transport = transport
        self._transform = transform
        self._resource = resource
        self._namespace = namespace
        self._label_selector = label_selector
        self._field_selector = field_selector
        self._options = options or InformerOptions()
        self._cache: dict[str, KubeObject] = {}
        self._handlers: list[Handler] = []
        self._resource_version: str | None = None
        self._synced = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._watch_task: asyncio.Task[None] | None = None
        self.stats = InformerStats()
        self._gone_streak = 0
        self._last_event_gauge = LAST_EVENT.labels(self.name)

    @property
    def name(self) -> str:
        scope = self._namespace or "*"
        return f"{self._resource.plural}.{self._resource.group or 'core'}[{scope}]"

    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)

    @property
    def has_synced(self) -> bool:
        """True once the first LIST is in the cache (and stays true across relists)."""
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    def get(self, namespace: str, name: str) -> KubeObject | None:
        return self._cache.get(f"{namespace}/{name}" if namespace else name)

    def list(self) -> list[KubeObject]:
        return list(self._cache.values())

    @property
    def resource_version(self) -> str | None:
        """Where the next watch resumes; None means the next step is a full relist."""
        return self._resource_version

    def start(self) -> None:
        if self._tasks:
            return
        self._tasks.append(asyncio.create_task(self._run(), name=f"informer {self.name}"))
        if self._options.resync_period:
            self._tasks.append(asyncio.create_task(self._resync_loop(), name=f"resync {self.name}"))

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> Informer:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def reconnect(self, *, relist: bool = False) -> None:
        """Drops the current watch at once; the next one resumes from the last resourceVersion.

        The watchdog does this on silence; callers use it when they know the connection is bad.
        ``relist=True`` also forgets the resume point, so a full LIST and diff follows, exactly as
        after a 410: the way to re-check everything after an outage whose length is unknown.
        """
        if relist:
            self._resource_version = None
        if self._watch_task is not None:
            self._watch_task.cancel()

    async def _run(self) -> None:
        backoff = self._options.backoff_initial
        while True:
            try:
                if self._resource_version is None:
                    await self._relist()
                await self._watch_guarded()
                WATCH_RESTARTS.labels(self.name, "closed").inc()
                backoff = self._options.backoff_initial
                continue
            except ApiError as error:
                self.stats.errors += 1
                if error.gone:
                    self.stats.expired += 1
                    WATCH_RESTARTS.labels(self.name, "expired").inc()
                    log.info(
                        "watch expired, relisting",
                        extra={"informer": self.name, "error": error.message},
                    )
                    self._resource_version = None
                    self._gone_streak += 1
                    if self._gone_streak == 1:
                        continue
                    # 410 right after a fresh LIST again: back off rather than hammer full LISTs.
                else:
                    WATCH_RESTARTS.labels(self.name, "error").inc()
                    log.warning(
                        "list/watch failed, retrying",
                        extra={"informer": self.name, "code": error.code, "error": error.message},
                    )
            except Exception:
                # A bug or a mangled response must not silently end the informer: log and go on.
                self.stats.errors += 1
                log.exception("informer loop failed, retrying", extra={"informer": self.name})
            await asyncio.sleep(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, self._options.backoff_max)

    async def _watch_guarded(self) -> None:
        """Runs one watch as a child task so :meth:`reconnect` can cut it without stopping us."""
        watch = asyncio.create_task(self._watch_once())
        self._watch_task = watch
        try:
            await watch
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
        finally:
            self._watch_task = None

    def _query(self) -> Query:
        query: Query = []
        if self._label_selector:
            query.append(("labelSelector", self._label_selector))
        if self._field_selector:
            query.append(("fieldSelector", self._field_selector))
        return query

    async def _relist(self) -> None:
        fresh: dict[str, KubeObject] = {}
        token = ""
        while True:
            query = [*self._query(), ("limit", str(self._options.page_size))]
            if token:
                query.append(("continue", token))
            page = await self._transport.request(
                "GET", self._resource.path(self._namespace), query=query, verb="list"
            )
            # List items carry no kind/apiVersion; watch events do. Give every cached object both.
            kind = str(page.get("kind") or "").removesuffix("List")
            api_version = page.get("apiVersion") or ""
            for item in page.get("items") or []:
                if isinstance(item, dict):
                    item.setdefault("kind", kind)
                    item.setdefault("apiVersion", api_version)
                    obj = self._keep(item)
                    fresh[object_key(obj)] = obj
            self.stats.list_pages += 1
            meta = page.get("metadata") or {}
            token = str(meta.get("continue") or "")
            if not token:
                list_version = str(meta.get("resourceVersion") or "")
                break
        self.stats.relists += 1
        RELISTS.labels(self.name).inc()
        previous, self._cache = self._cache, fresh
        self._resource_version = list_version
        self._synced.set()
        for key, obj in fresh.items():
            old = previous.pop(key, None)
            if old is None:
                self._emit(EventType.ADDED, None, obj)
            elif _resource_version(old) != _resource_version(obj):
                self._emit(EventType.MODIFIED, old, obj)
        for old in previous.values():
            self._emit(EventType.DELETED, old, None)
        log.info(
            "listed",
            extra={"informer": self.name, "objects": len(fresh), "resource_version": list_version},
        )

    async def _watch_once(self) -> None:
        options = self._options
        query = [
            *self._query(),
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(options.watch_timeout_seconds)),
            ("resourceVersion", self._resource_version or ""),
        ]
        timeout = aiohttp.ClientTimeout(
            total=options.watch_timeout_seconds + 30,
            sock_connect=options.connect_timeout,
        )
        try:
            # A pooled keep-alive connection can be dead too: the headers must come back in time.
            async with asyncio.timeout(options.silence_timeout):
                response = await self._transport.open(
                    "GET",
                    self._resource.path(self._namespace),
                    query=query,
                    client_timeout=timeout,
                    verb="watch",
                )
        except TimeoutError:
            self._watchdog_fired()
            return
        self.stats.watches += 1
        try:
            while True:
                try:
                    async with asyncio.timeout(options.silence_timeout):
                        line = await response.content.readline()
                except TimeoutError:
                    self._watchdog_fired()
                    return
                except (aiohttp.ClientError, OSError) as exc:
                    raise connection_error("watch", exc) from exc
                if not line:
                    return
                if line.strip():
                    try:
                        event = json.loads(line)
                    except ValueError as exc:
                        # A line cut short by a dying connection: resume from the last good event.
                        raise connection_error("watch", exc) from exc
                    self._apply(event)
        finally:
            response.close()

    def _watchdog_fired(self) -> None:
        self.stats.watchdog_restarts += 1
        WATCH_RESTARTS.labels(self.name, "watchdog").inc()
        log.warning(
            "watch silent, reconnecting",
            extra={"informer": self.name, "silent_seconds": self._options.silence_timeout},
        )

    def _apply(self, event: dict[str, Any]) -> None:
        self.stats.last_event_monotonic = time.monotonic()
        self._last_event_gauge.set(time.time())
        kind = event.get("type")
        obj = event.get("object")
        if not isinstance(obj, dict):
            return
        if kind == "ERROR":
            raise error_from_status_object("watch", obj)
        self._gone_streak = 0
        version = _resource_version(obj)
        if kind != "BOOKMARK":
            # Before the resume point moves: an object the transform fails on is retried, not skipped.
            obj = self._keep(obj)
        if version:
            self._resource_version = version
        if kind == "BOOKMARK":
            return
        key = object_key(obj)
        if kind == "DELETED":
            self._cache.pop(key, None)
            self._emit(EventType.DELETED, obj, None)
            return
        old = self._cache.get(key)
        if old is not None and _resource_version(old) == version:
            return
        self._cache[key] = obj
        self._emit(EventType.ADDED if old is None else EventType.MODIFIED, old, obj)

    def _keep(self, obj: KubeObject) -> KubeObject:
        """What the cache holds of ``obj``."""
        obj = _slim(obj)
        return obj if self._transform is None else self._transform(obj)

    def _emit(self, kind: EventType, old: KubeObject | None, new: KubeObject | None) -> None:
        for handler in self._handlers:
            try:
                handler(kind, old, new)
            except Exception:
                log.exception("informer handler failed", extra={"informer": self.name})

    async def _resync_loop(self) -> None:
        period = self._options.resync_period
        assert period
        while True:
            await asyncio.sleep(period)
            if not self.has_synced:
                continue
            for obj in list(self._cache.values()):
                self._emit(EventType.RESYNC, obj, obj)

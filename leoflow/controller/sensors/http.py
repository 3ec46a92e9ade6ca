"""HTTP sensors: one pooled client session, and a queue per host that caps concurrent requests.

Every HTTP sensor in the controller shares one ``aiohttp.ClientSession``, so keep-alive connections
are reused across sensors. A thousand sensors on one slow host must not open a thousand requests
to it: each host (scheme, host and port) has a *lane*, a FIFO of sensors due for a poke drained by
at most ``per_host_limit`` worker tasks. The connector's ``limit_per_host`` is the same number, so
aiohttp never queues behind our back, and waiting sensors cost a deque slot instead of a task.

Classification of one poke: an expected status (and, with ``jsonPath``, a matching JSON value)
satisfies; another status is "not yet", except 5xx and 429 which are errors (backed off); a
connection failure or request timeout is an error; a URL aiohttp cannot use is permanent.

A sensor's own ``headers`` go with every request; ``headersFrom`` values come from Secrets through
the ``secrets`` lookup (cached there, so pokes do not read the API server each time). A request
times out after the sensor's ``requestTimeoutSeconds``, or the engine-wide ``request_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import aiohttp

from leoflow.controller.sensors import jsonpath
from leoflow.controller.sensors.outcomes import Poke
from leoflow.controller.sensors.secrets import SecretLookup, SecretUnavailable
from leoflow.spec.resources import CompiledHttpSensor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpOptions:
    per_host_limit: int = 8
    total_limit: int = 256
    request_timeout: float = 10.0
    max_body_bytes: int = 1 << 20


class HttpTarget(Protocol):
    """What the engine queues: something that is still wanted and knows what to ask."""

    @property
    def wanted(self) -> bool: ...

    @property
    def http(self) -> CompiledHttpSensor: ...

    @property
    def namespace(self) -> str: ...


T = TypeVar("T", bound=HttpTarget)


@functools.lru_cache(maxsize=4096)
def parsed_path(path: str) -> tuple[jsonpath.Step, ...]:
    return jsonpath.parse(path)


def host_of(url: str) -> str:
    """``scheme://host:port``: the lane (and connection pool) a URL belongs to."""
    scheme, _, rest = url.partition("://")
    return f"{scheme.lower()}://{rest.split('/', 1)[0].split('?', 1)[0].lower()}"


def check_url(url: str) -> None:
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest.split("/", 1)[0]:
        raise ValueError(f"URL {url!r} must be an absolute http:// or https:// URL")


class _Lane(Generic[T]):
    __slots__ = ("queue", "workers")

    def __init__(self) -> None:
        self.queue: deque[T] = deque()
        self.workers = 0


class HttpPoker(Generic[T]):
    def __init__(
        self,
        on_result: Callable[[T, Poke], None],
        options: HttpOptions | None = None,
        secrets: SecretLookup | None = None,
    ) -> None:
        self.options = options or HttpOptions()
        self._on_result = on_result
        self._secrets = secrets
        self._lanes: dict[str, _Lane[T]] = {}
        self._workers: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def queued(self, host: str | None = None) -> int:
        """Pokes waiting for a lane slot, for one host (``scheme://host:port``) or all."""
        if host is None:
            return sum(len(lane.queue) for lane in self._lanes.values())
        lane = self._lanes.get(host_of(host + "/"))
        return len(lane.queue) if lane else 0

    def submit(self, target: T) -> None:
        """Queues one poke of ``target``; the result comes back through ``on_result``."""
        host = host_of(target.http.url)
        lane = self._lanes.get(host)
        if lane is None:
            lane = self._lanes[host] = _Lane()
        lane.queue.append(target)
        if lane.workers < self.options.per_host_limit:
            lane.workers += 1
            task = asyncio.get_running_loop().create_task(self._drain(host, lane))
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)

    async def close(self) -> None:
        for task in list(self._workers):
            task.cancel()
        for task in list(self._workers):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._lanes.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.options.total_limit, limit_per_host=self.options.per_host_limit
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.options.request_timeout),
                headers={"User-Agent": "leoflow-sensor"},
            )
        return self._session

    async def _drain(self, host: str, lane: _Lane[T]) -> None:
        try:
            while lane.queue:
                target = lane.queue.popleft()
                if not target.wanted:
                    continue
                poke = await self.poke(target.http, target.namespace)
                try:
                    self._on_result(target, poke)
                except Exception:
                    log.exception("sensor result handler failed", extra={"host": host})
        finally:
            lane.workers -= 1
            if lane.workers == 0 and not lane.queue and self._lanes.get(host) is lane:
                del self._lanes[host]

    async def _headers(self, spec: CompiledHttpSensor, namespace: str) -> dict[str, str]:
        headers = dict(spec.headers)
        for name, ref in spec.headersFrom.items():
            if self._secrets is None:
                raise SecretUnavailable("this controller cannot read Secrets", permanent=True)
            headers[name] = ref.prefix + await self._secrets(namespace, ref.secret, ref.key)
        return headers

    async def poke(self, spec: CompiledHttpSensor, namespace: str) -> Poke:
        try:
            headers = await self._headers(spec, namespace)
        except SecretUnavailable as err:
            detail = f"header for {spec.url}: {err}"
            return Poke.permanent(detail) if err.permanent else Poke.error(detail)
        timeout = spec.requestTimeoutSeconds or self.options.request_timeout
        try:
            async with self._client().request(
                spec.method,
                spec.url,
                headers=headers,
                allow_redirects=True,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                status = response.status
                body = await response.content.read(self.options.max_body_bytes + 1)
        except (aiohttp.InvalidURL, ValueError) as err:
            return Poke.permanent(f"cannot request {spec.url}: {err}")
        except TimeoutError:
            return Poke.error(f"{spec.method} {spec.url} timed out after {timeout:g}s")
        except (aiohttp.ClientError, OSError) as err:
            return Poke.error(f"{spec.method} {spec.url} failed: {type(err).__name__}: {err}")
        if status not in spec.expectStatus:
            wanted = ", ".join(str(s) for s in spec.expectStatus)
            if status >= 500 or status == 429:
                return Poke.error(f"{spec.url} answered HTTP {status} (waiting for {wanted})")
            return Poke.not_yet(f"{spec.url} answered HTTP {status}, waiting for {wanted}")
        if spec.jsonPath is None:
            return Poke.satisfied(status)
        if len(body) > self.options.max_body_bytes:
            return Poke.error(f"{spec.url} sent more than {self.options.max_body_bytes} bytes")
        try:
            document = json.loads(body)
        except ValueError:
            return Poke.not_yet(f"{spec.url} answered HTTP {status} without a JSON body")
        found, value = jsonpath.lookup(document, parsed_path(spec.jsonPath))
        if not found or value is None:
            return Poke.not_yet(f"{spec.jsonPath} is not in the response of {spec.url}")
        if spec.jsonValue is not None and not jsonpath.value_matches(value, spec.jsonValue):
            return Poke.not_yet(f"{spec.jsonPath} is {value!r}, waiting for {spec.jsonValue!r}")
        return Poke.satisfied(value)

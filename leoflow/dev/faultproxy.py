"""A fault-injecting reverse proxy in front of the dev cluster's API server.

Exists so tests can prove, through a real API server, that the controller survives what a busy
production API server answers (reference/failures.md, entries 6 and 23): 429 with ``Retry-After``
from priority and fairness, 503 with ``Retry-After`` from an instance shutting down, 500 from
etcd, 409 from optimistic concurrency and quota admission, and the ambiguous case where a write
took effect but its answer was lost. Unit tests cover the writer's classification table; this
covers the whole controller against a real server.

It listens on plain HTTP on 127.0.0.1 (clients need no credentials) and forwards to the API
server over TLS with the cluster's admin certificate. Reads, including watches (streamed as they
come), always pass. Every ``every``-th write (POST, PUT, PATCH, DELETE) gets the next fault of
``kinds`` in turn, so a test that makes enough writes meets every kind, deterministically.
"""

from __future__ import annotations

import itertools
import json
import logging
import socket
import ssl
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

import aiohttp
from aiohttp import web

log = logging.getLogger(__name__)

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Hop-by-hop or recomputed by aiohttp: never copied between the two connections.
_SKIPPED_HEADERS = frozenset(
    {"host", "connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}
)


class Fault(StrEnum):
    """What a faulted write gets instead of the API server's answer."""

    TOO_MANY_REQUESTS = "429"
    """Not forwarded: 429 TooManyRequests, ``Retry-After: 1`` (API priority and fairness)."""
    UNAVAILABLE = "503"
    """Not forwarded: 503 ServiceUnavailable, ``Retry-After: 1`` (an API server shutting down)."""
    INTERNAL = "500"
    """Not forwarded: 500 InternalError from etcd."""
    LOST_ANSWER = "500-after"
    """Forwarded, so the write took effect, but the client gets a 500: the ambiguous case."""
    CONFLICT = "409"
    """Not forwarded: 409 Conflict (a concurrent modification, or quota admission's conflict)."""


_MESSAGES = {
    Fault.TOO_MANY_REQUESTS: (429, "TooManyRequests", "Too many requests, please try again later."),
    Fault.UNAVAILABLE: (503, "ServiceUnavailable", "apiserver is shutting down"),
    Fault.INTERNAL: (500, "InternalError", "etcdserver: request timed out"),
    Fault.LOST_ANSWER: (500, "InternalError", "etcdserver: leader changed"),
    Fault.CONFLICT: (
        409,
        "Conflict",
        "Operation cannot be fulfilled: the object has been modified; "
        "please apply your changes to the latest version and try again",
    ),
}


@dataclass
class FaultPolicy:
    """Which writes fail and how: every ``every``-th write, cycling through ``kinds``."""

    every: int = 3
    kinds: tuple[Fault, ...] = tuple(Fault)
    injected: Counter[Fault] = field(default_factory=Counter)
    creates_of: str | None = None
    """When set (a resource, e.g. ``pods``), only creates (POST) of that resource are faulted."""

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"FaultPolicy.every must be at least 1, got {self.every}")
        if not self.kinds:
            raise ValueError("FaultPolicy.kinds must name at least one fault")
        self._writes = itertools.count(1)
        self._next = itertools.cycle(self.kinds)

    def decide(self, method: str, path: str = "") -> Fault | None:
        if method not in WRITES:
            return None
        if self.creates_of is not None and (method != "POST" or not path.endswith(f"/{self.creates_of}")):
            return None
        if next(self._writes) % self.every:
            return None
        fault = next(self._next)
        self.injected[fault] += 1
        return fault


class FaultProxy:
    """``async with FaultProxy(upstream, ssl_context, policy) as proxy:`` then point a client at
    ``proxy.url``. ``enabled`` turns faults off (for set-up and tear-down traffic)."""

    def __init__(self, upstream: str, context: ssl.SSLContext, policy: FaultPolicy | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.policy = policy or FaultPolicy()
        self.enabled = True
        self._context = context
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> FaultProxy:
        connector = aiohttp.TCPConnector(ssl=self._context, limit=0)
        self._session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None))
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        await web.SockSite(self._runner, listener).start()
        self.url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        log.info("fault proxy listening", extra={"url": self.url, "upstream": self.upstream})
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        fault = self.policy.decide(request.method, request.path) if self.enabled else None
        if fault is not None and fault is not Fault.LOST_ANSWER:
            log.info(
                "fault injected", extra={"fault": fault.value, "method": request.method, "path": request.path}
            )
            return _status_response(fault)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _SKIPPED_HEADERS}
        body = await request.read()
        try:
            upstream = await self._session.request(
                request.method,
                f"{self.upstream}{request.rel_url}",
                headers=headers,
                data=body or None,
                allow_redirects=False,
            )
        except (aiohttp.ClientError, OSError) as exc:
            # The API server itself is unreachable: say so the way a load balancer would.
            return web.Response(status=502, text=f"fault proxy: upstream unreachable: {exc}")
        async with upstream:
            if fault is Fault.LOST_ANSWER:
                await upstream.read()
                log.info("fault injected", extra={"fault": fault.value, "method": request.method})
                return _status_response(fault)
            response = web.StreamResponse(status=upstream.status)
            for key, value in upstream.headers.items():
                if key.lower() not in _SKIPPED_HEADERS:
                    response.headers[key] = value
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
            except (aiohttp.ClientError, ConnectionResetError):
                # The client or the API server went away mid-stream (a watch ending): drop it.
                return response
            await response.write_eof()
            return response


def _status_response(fault: Fault) -> web.Response:
    code, reason, message = _MESSAGES[fault]
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    headers = {"Retry-After": "1"} if code in (429, 503) else {}
    return web.Response(status=code, text=json.dumps(body), content_type="application/json", headers=headers)

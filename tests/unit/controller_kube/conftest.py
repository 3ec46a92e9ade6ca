"""A scripted HTTP server standing in for the API server, and a clock that only moves when told.

Used for what the real API server will not do on demand (answer 429 with Retry-After, expire a
watch at a chosen moment); the code under test talks to it through a real kubernetes_asyncio
client, so the whole HTTP path is exercised.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class FakeApi:
    client: Any
    routes: dict[tuple[str, str], Route] = field(default_factory=dict)
    requests: list[tuple[str, str, str]] = field(default_factory=list)

    def on(self, method: str, path: str, route: Route) -> None:
        self.routes[(method, path)] = route


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeApi]:
    from kubernetes_asyncio.client import ApiClient, Configuration

    api = FakeApi(client=None)

    async def dispatch(request: web.Request) -> web.StreamResponse:
        api.requests.append((request.method, request.path, request.query_string))
        route = api.routes.get((request.method, request.path))
        if route is None:
            return web.json_response({"kind": "Status", "code": 404, "reason": "NotFound"}, status=404)
        return await route(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", dispatch)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    configuration = Configuration(host=f"http://127.0.0.1:{port}")
    api.client = ApiClient(configuration=configuration)
    try:
        yield api
    finally:
        await api.client.close()
        await runner.cleanup()


class FakeClock:
    """Monotonic time that advances only by the sleeps the code under test asks for."""

    def __init__(self) -> None:
        self.time = 1000.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.time += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def status(code: int, reason: str, message: str = "", headers: dict[str, str] | None = None) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason}
    body["message"] = message or reason
    return web.json_response(body, status=code, headers=headers)


@pytest.fixture
def make_status() -> Callable[..., web.Response]:
    return status

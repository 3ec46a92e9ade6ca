"""The controller's HTTP endpoints: ``/metrics`` (Prometheus), ``/healthz`` and ``/readyz``.

``/healthz`` answers while the event loop runs (a wedged loop fails the liveness probe);
``/readyz`` once the informer caches have synced, so a rollout waits for a replica that can act.
Leadership is not readiness: a standby with warm caches is ready to take over.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest


def health_app(ready: Callable[[], bool], registry: CollectorRegistry = REGISTRY) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        if ready():
            return web.Response(text="ok\n")
        return web.Response(status=503, text="caches not synced\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def start_health_server(
    host: str, port: int, ready: Callable[[], bool], registry: CollectorRegistry = REGISTRY
) -> tuple[web.AppRunner, int]:
    """Serves the endpoints on ``host:port`` (0 picks a port); returns the runner and the port."""
    runner = web.AppRunner(health_app(ready, registry), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, int(bound)

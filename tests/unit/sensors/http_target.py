"""A local aiohttp server that HTTP sensors poke: the test sets its answer and reads what it saw.

It counts requests and the most that were in flight at once (the per-host limit), keeps the
headers and arrival time of each request, and can be slow (``delay``) or accept a request and
never answer it (``hang``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from multidict import CIMultiDictProxy


class Target:
    def __init__(self) -> None:
        self.status = 200
        self.body: object = {}
        self.delay = 0.0
        self.hang = False
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.headers: list[CIMultiDictProxy[str]] = []
        self.arrivals: list[float] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        self.headers.append(request.headers)
        self.arrivals.append(time.time())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.hang:
                await asyncio.Event().wait()
            if self.delay:
                await asyncio.sleep(self.delay)
            return web.json_response(self.body, status=self.status)
        finally:
            self.in_flight -= 1


@asynccontextmanager
async def serve() -> AsyncIterator[Target]:
    """A :class:`Target` listening on 127.0.0.1 (a free port) until the block ends."""
    server = Target()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()

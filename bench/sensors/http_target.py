"""The HTTP server the sensor benchmark polls: its own process, answering every request "not yet".

Runs apart from the benchmark so the sensors' CPU is measured without the server's. Prints the port
it listens on (127.0.0.1 only), then serves until killed.
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web


async def not_yet(request: web.Request) -> web.Response:
    return web.Response(status=404, text="not yet")


async def main() -> None:
    app = web.Application()
    app.router.add_get("/{tail:.*}", not_yet)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    sys.stdout.close()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())

"""Running the webhook: the HTTPS site, the certificate watch, and a graceful stop on SIGTERM.

``/readyz`` turns ready once the site listens and unready as soon as a stop begins, so a load
balancer drains the replica before in-flight reviews are cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from leoflow.webhook.serving import READY, WebhookConfig, build_app
from leoflow.webhook.tls import ReloadingCertificate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeOptions:
    cert_file: Path
    key_file: Path
    host: str = "127.0.0.1"
    port: int = 8443
    cert_check_interval: float = 10.0
    shutdown_timeout: float = 5.0


async def serve(options: ServeOptions, config: WebhookConfig, *, stop: asyncio.Event | None = None) -> None:
    """Serves until ``stop`` is set or the process gets SIGTERM/SIGINT."""
    certificate = ReloadingCertificate(
        options.cert_file,
        options.key_file,
        on_reload=config.metrics.certificate_reloads.inc,
        on_handshake=config.metrics.tls_handshakes.inc,
    )
    app = build_app(config)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=options.shutdown_timeout)
    await runner.setup()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    watch = asyncio.create_task(certificate.watch(options.cert_check_interval))
    try:
        site = web.TCPSite(runner, options.host, options.port, ssl_context=certificate.context, backlog=1024)
        await site.start()
        app[READY][0] = True
        log.info("webhook serving", extra={"address": f"https://{options.host}:{options.port}"})
        await stop.wait()
        app[READY][0] = False
        log.info("webhook stopping")
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
        await runner.cleanup()

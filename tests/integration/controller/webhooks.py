"""The real agent-injecting webhook, in process, registered for one test namespace only.

Tests that need injected pods (the agent's init container, the agent reaching the controller)
serve ``leoflow.webhook`` over TLS on 127.0.0.1 with a throwaway CA and register a
MutatingWebhookConfiguration by URL; it is in effect once a dry-run pod comes back injected.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import ssl
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web

from leoflow.agent_inject.settings import InjectionSettings
from leoflow.certs.authority import issue_serving, new_ca
from leoflow.dev import images
from leoflow.webhook import registration
from leoflow.webhook.serving import WebhookConfig, build_app
from tests.integration.controller.conftest import Harness


@asynccontextmanager
async def injecting_webhook(harness: Harness, injection: InjectionSettings) -> AsyncIterator[None]:
    now = datetime.datetime.now(datetime.UTC)
    ca = new_ca(common_name="leoflow-webhook-test", now=now, validity=datetime.timedelta(hours=1))
    pair = issue_serving(
        ca, dns_names=(), ip_addresses=("127.0.0.1",), now=now, validity=datetime.timedelta(hours=1)
    )
    with tempfile.TemporaryDirectory(prefix="leoflow-webhook-") as tmp:
        (Path(tmp) / "tls.crt").write_bytes(pair.cert_pem)
        (Path(tmp) / "tls.key").write_bytes(pair.key_pem)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(Path(tmp) / "tls.crt", Path(tmp) / "tls.key")
    runner = web.AppRunner(build_app(WebhookConfig(injection=injection), ready=True), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    name = f"leoflow-test-{uuid.uuid4().hex[:8]}"
    configuration = registration.webhook_configuration(
        name,
        url=f"https://127.0.0.1:{port}/mutate-pods",
        ca_bundle=ca.cert_pem,
        namespace_selector=registration.only_namespaces([harness.namespace]),
    )
    try:
        await asyncio.to_thread(harness.cluster.kubectl, "create", "-f", "-", input=json.dumps(configuration))
        await _until_injected(harness)
        yield
    finally:
        await asyncio.to_thread(
            harness.cluster.kubectl,
            "delete",
            "mutatingwebhookconfiguration",
            name,
            "--ignore-not-found",
            check=False,
        )
        await runner.cleanup()


async def _until_injected(harness: Harness) -> None:
    """The API server takes a new configuration up after a moment: dry-run until it injects."""
    probe = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe", "labels": {"leoflow.io/inject": "true"}},
        "spec": {"containers": [{"name": "main", "image": images.BASE_IMAGE, "command": ["true"]}]},
    }
    for _ in range(150):
        out = await harness.kubectl(
            "create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(probe), check=False
        )
        if out.strip() and json.loads(out)["spec"].get("initContainers"):
            return
        await asyncio.sleep(0.2)
    raise AssertionError("the webhook configuration never took effect")

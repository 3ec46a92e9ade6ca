"""The in-cluster loop that applies :mod:`leoflow.certs.rotation` decisions.

Each round reads the Secret, asks ``rotate`` what it should hold, patches ``caBundle`` on our
MutatingWebhookConfiguration first (so the API server trusts a new CA before any pod serves a
certificate it signed), then writes the Secret with optimistic concurrency. A conflict or any API
error only costs a round: the next one starts again from what is stored. The same round repairs
drift, e.g. a ``kubectl apply`` that reset ``caBundle``. Run it in one replica (the leader).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from leoflow.certs import rotation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """Where the certificates live and who must trust them."""

    namespace: str
    secret_name: str
    webhook_configuration: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...] = ()


async def sync_once(
    api: client.ApiClient,
    target: Target,
    *,
    policy: rotation.RotationPolicy,
    now: datetime.datetime | None = None,
) -> rotation.Rotation:
    core = client.CoreV1Api(api)
    admission = client.AdmissionregistrationV1Api(api)
    now = now or datetime.datetime.now(datetime.UTC)

    existing: Any = None
    try:
        existing = await core.read_namespaced_secret(target.secret_name, target.namespace)
    except ApiException as err:
        if err.status != 404:
            raise
    result = rotation.rotate(
        rotation.state_from_secret_data(existing.data if existing is not None else None),
        dns_names=target.dns_names,
        ip_addresses=target.ip_addresses,
        now=now,
        policy=policy,
    )

    configuration = api.sanitize_for_serialization(
        await admission.read_mutating_webhook_configuration(target.webhook_configuration)
    )
    ops = rotation.ca_bundle_patch(configuration, rotation.ca_bundle(result.state))
    if ops:
        await admission.patch_mutating_webhook_configuration(target.webhook_configuration, ops)
        log.info("caBundle updated", extra={"configuration": target.webhook_configuration})

    if result.changed:
        body = client.V1Secret(
            metadata=client.V1ObjectMeta(
                name=target.secret_name,
                namespace=target.namespace,
                labels={"app.kubernetes.io/part-of": "leoflow"},
                resource_version=existing.metadata.resource_version if existing is not None else None,
            ),
            type="kubernetes.io/tls",
            data=rotation.secret_data(result.state),
        )
        if existing is None:
            await core.create_namespaced_secret(target.namespace, body)
        else:
            await core.replace_namespaced_secret(target.secret_name, target.namespace, body)
        log.info(
            "webhook certificates rotated",
            extra={
                "secret": f"{target.namespace}/{target.secret_name}",
                "reasons": "; ".join(result.reasons),
            },
        )
    return result


async def keep_certificates(
    api: client.ApiClient,
    target: Target,
    *,
    policy: rotation.RotationPolicy,
    interval: float = 300.0,
    retry_interval: float = 10.0,
) -> None:
    """Runs :func:`sync_once` forever: every ``interval`` seconds, sooner after a failure."""
    while True:
        delay = interval
        try:
            await sync_once(api, target, policy=policy)
        except ApiException as err:
            delay = retry_interval
            log.warning(
                "certificate sync failed",
                extra={"status": err.status, "reason": err.reason, "retry_in": retry_interval},
            )
        except (aiohttp.ClientError, TimeoutError) as err:
            delay = retry_interval
            log.warning("API server unreachable", extra={"error": repr(err), "retry_in": retry_interval})
        await asyncio.sleep(delay)

"""The in-cluster loop that applies :mod:`leoflow.certs.rotation` decisions to each target.

Two targets share it: the webhook's Secret (trusted through the MutatingWebhookConfiguration's
``caBundle``) and the controller's agent-endpoint Secret (trusted through its own ``ca.crt``,
which the controller copies to the agents). Each round reads a target's Secret, asks ``rotate``
what it should hold, patches ``caBundle`` first when the target has one (so the API server
trusts a new CA before any pod serves a certificate it signed), then writes the Secret with
optimistic concurrency. A conflict or any API error only costs a round: the next one starts
again from what is stored. The same round repairs drift, e.g. a ``kubectl apply`` that reset
``caBundle``. A Secret cert-manager issues is left alone: two issuers would undo each other.
Run it in one replica.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from leoflow.certs import rotation

log = logging.getLogger(__name__)


# cert-manager marks every Secret it issues with the name of its Certificate.
CERT_MANAGER_ANNOTATION = "cert-manager.io/certificate-name"


@dataclass(frozen=True)
class Target:
    """Where the certificates live and who must trust them.

    ``webhook_configuration`` None: clients trust the Secret's own ``ca.crt``, which then holds
    the whole trust bundle.
    """

    namespace: str
    secret_name: str
    webhook_configuration: str | None
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...] = ()
    ca_common_name: str = rotation.CA_COMMON_NAME


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
    state = rotation.state_from_secret_data(existing.data if existing is not None else None)
    if existing is not None and CERT_MANAGER_ANNOTATION in (existing.metadata.annotations or {}):
        log.debug("Secret issued by cert-manager; left alone", extra={"secret": target.secret_name})
        return rotation.Rotation(state, ())
    result = rotation.rotate(
        state,
        dns_names=target.dns_names,
        ip_addresses=target.ip_addresses,
        now=now,
        policy=policy,
        ca_common_name=target.ca_common_name,
    )

    if target.webhook_configuration is not None:
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
            data=rotation.secret_data(result.state, bundle_in_ca_crt=target.webhook_configuration is None),
        )
        if existing is None:
            await core.create_namespaced_secret(target.namespace, body)
        else:
            await core.replace_namespaced_secret(target.secret_name, target.namespace, body)
        log.info(
            "certificates rotated",
            extra={
                "secret": f"{target.namespace}/{target.secret_name}",
                "reasons": "; ".join(result.reasons),
            },
        )
    return result


async def keep_certificates(
    api: client.ApiClient,
    targets: Sequence[Target],
    *,
    policy: rotation.RotationPolicy,
    interval: float = 300.0,
    retry_interval: float = 10.0,
) -> None:
    """Runs :func:`sync_once` for every target forever: every ``interval`` seconds, sooner after a
    failure. One target failing does not hold up the others."""
    while True:
        delay = interval
        for target in targets:
            try:
                await sync_once(api, target, policy=policy)
            except ApiException as err:
                delay = retry_interval
                log.warning(
                    "certificate sync failed",
                    extra={
                        "secret": target.secret_name,
                        "status": err.status,
                        "reason": err.reason,
                        "retry_in": retry_interval,
                    },
                )
            except (aiohttp.ClientError, TimeoutError) as err:
                delay = retry_interval
                log.warning(
                    "API server unreachable",
                    extra={"secret": target.secret_name, "error": repr(err), "retry_in": retry_interval},
                )
        await asyncio.sleep(delay)

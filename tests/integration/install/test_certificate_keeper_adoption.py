"""The certificate keeper against the real API server takes over no Secret it should not: one
`leoflow install --print` wrote (no CA key) is adopted as it is, one cert-manager issued is left
alone even when due, and the controller's Secret is created in the trust-bundle form."""

from __future__ import annotations

import base64
import datetime
import json
from typing import Any

import pytest

from leoflow.certs import authority, rotation, syncing
from leoflow.dev.testing import ClusterHandle
from leoflow.install import rendering

pytestmark = pytest.mark.cluster

NOW = datetime.datetime.now(datetime.UTC)
POLICY = rotation.RotationPolicy()


def target(namespace: str) -> syncing.Target:
    return syncing.Target(
        namespace=namespace,
        secret_name=rendering.CONTROLLER_SECRET,
        webhook_configuration=None,
        dns_names=authority.service_dns_names(rendering.CONTROLLER_SERVICE, namespace),
        ca_common_name=rendering.CONTROLLER_CA_COMMON_NAME,
    )


def printed_secret(namespace: str) -> dict[str, Any]:
    """Secret leoflow-controller-tls exactly as `leoflow install --print` renders it."""
    objects = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}]
    objects.append(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": rendering.WEBHOOK_CONFIGURATION},
            "webhooks": [],
        }
    )
    rendered = rendering.with_certificates(objects, rendering.generate_certificates(namespace, now=NOW))
    return next(o for o in rendered if o["metadata"]["name"] == rendering.CONTROLLER_SECRET)


def stored(cluster: ClusterHandle, namespace: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        cluster.kubectl("get", "secret", rendering.CONTROLLER_SECRET, "-n", namespace, "-o", "json").stdout
    )
    return result


async def test_a_secret_from_install_print_is_adopted_as_it_is(
    cluster: ClusterHandle, namespace: str, kube: Any
) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(printed_secret(namespace)))
    before = stored(cluster, namespace)
    result = await syncing.sync_once(kube, target(namespace), policy=POLICY)
    assert not result.changed
    assert stored(cluster, namespace)["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]

    # Once its serving certificate is due, a keeper CA takes over and trusts the printed one meanwhile.
    later = NOW + datetime.timedelta(days=2500)
    taken_over = await syncing.sync_once(kube, target(namespace), policy=POLICY, now=later)
    assert taken_over.changed and taken_over.state.ca is not None
    data = stored(cluster, namespace)["data"]
    assert base64.b64decode(data["ca.crt"]) == base64.b64decode(before["data"]["ca.crt"]) + (
        taken_over.state.ca.cert_pem
    )


async def test_a_secret_cert_manager_issued_is_left_alone_even_when_due(
    cluster: ClusterHandle, namespace: str, kube: Any
) -> None:
    secret = printed_secret(namespace)
    secret["metadata"]["annotations"] = {syncing.CERT_MANAGER_ANNOTATION: "leoflow-controller"}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(secret))
    before = stored(cluster, namespace)
    later = NOW + datetime.timedelta(days=3000)
    result = await syncing.sync_once(kube, target(namespace), policy=POLICY, now=later)
    assert not result.changed
    assert stored(cluster, namespace)["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


async def test_the_controller_secret_is_created_with_the_bundle_in_ca_crt(
    cluster: ClusterHandle, namespace: str, kube: Any
) -> None:
    first = await syncing.sync_once(kube, target(namespace), policy=POLICY)
    assert first.reasons[0] == "no CA"
    secret = stored(cluster, namespace)
    assert secret["type"] == "kubernetes.io/tls"
    assert set(secret["data"]) == {"ca.crt", "ca.key", "tls.crt", "tls.key"}
    assert rotation.state_from_secret_data(secret["data"]) == first.state
    assert not (await syncing.sync_once(kube, target(namespace), policy=POLICY)).changed

"""``leoflow install --print``: the base manifests with certificates filled in, for a plain apply.

Without cert-manager the webhook keeps its own certificates (Secret ``leoflow-webhook-tls`` and the
``caBundle``), but only once it runs; until then ``failurePolicy: Fail`` refuses every labelled
pod. Rendering the certificates here makes the install usable from the first ``kubectl apply``:
the webhook Secret is written in exactly the form the webhook's rotation keeps (so the webhook
adopts it and renews it later), the ``caBundle`` trusts its CA, and the controller's agent
endpoint gets a serving certificate whose CA agents trust through the ``leoflow-ca`` ConfigMap.

Pure apart from key generation: objects in, objects out; ``now`` is a parameter.
"""

from __future__ import annotations

import base64
import copy
import datetime
from collections.abc import Iterable
from dataclasses import dataclass

from leoflow import kubeyaml
from leoflow.certs import authority, rotation
from leoflow.install.manifests import CLUSTER_SCOPED, Manifest, ManifestError, sort_objects

WEBHOOK_SERVICE = "leoflow-webhook"
WEBHOOK_SECRET = "leoflow-webhook-tls"
WEBHOOK_CONFIGURATION = "leoflow-agent-injector"
CONTROLLER_SERVICE = "leoflow-controller"
CONTROLLER_SECRET = "leoflow-controller-tls"
CA_CONFIGMAP = "leoflow-ca"
CONFIG_CONFIGMAP = "leoflow-config"
CONTROLLER_CA_COMMON_NAME = "leoflow-agent-ca"

_LABELS = {"app.kubernetes.io/part-of": "leoflow"}


@dataclass(frozen=True)
class InstallCertificates:
    """The webhook's rotation state and the controller's agent-endpoint CA and certificate."""

    webhook: rotation.CertState
    controller_ca: authority.CertificatePair
    controller_serving: authority.CertificatePair


def generate_certificates(
    namespace: str, *, now: datetime.datetime, policy: rotation.RotationPolicy | None = None
) -> InstallCertificates:
    policy = policy or rotation.RotationPolicy()
    webhook = rotation.rotate(
        rotation.CertState(),
        dns_names=authority.service_dns_names(WEBHOOK_SERVICE, namespace),
        ip_addresses=(),
        now=now,
        policy=policy,
    ).state
    controller_ca = authority.new_ca(
        common_name=CONTROLLER_CA_COMMON_NAME, now=now, validity=policy.ca_validity
    )
    controller_serving = authority.issue_serving(
        controller_ca,
        dns_names=authority.service_dns_names(CONTROLLER_SERVICE, namespace),
        ip_addresses=(),
        now=now,
        validity=policy.ca_validity,
    )
    return InstallCertificates(webhook, controller_ca, controller_serving)


def base_namespace(objects: Iterable[Manifest]) -> str:
    names = [obj["metadata"]["name"] for obj in objects if obj["kind"] == "Namespace"]
    if len(names) != 1:
        raise ManifestError(f"the manifests must hold exactly one Namespace, found {len(names)}")
    return str(names[0])


def retarget_namespace(objects: Iterable[Manifest], namespace: str) -> list[Manifest]:
    """The objects moved from their Namespace to ``namespace``, with every reference to it."""
    objects = [copy.deepcopy(obj) for obj in objects]
    old = base_namespace(objects)
    for obj in objects:
        metadata = obj.setdefault("metadata", {})
        kind = obj["kind"]
        if kind == "Namespace":
            metadata["name"] = namespace
        elif kind not in CLUSTER_SCOPED:
            metadata["namespace"] = namespace
        for subject in obj.get("subjects") or []:
            if subject.get("kind") == "ServiceAccount" and subject.get("namespace") == old:
                subject["namespace"] = namespace
        for webhook in obj.get("webhooks") or []:
            service = (webhook.get("clientConfig") or {}).get("service") or {}
            if service.get("namespace") == old:
                service["namespace"] = namespace
            selector = webhook.get("namespaceSelector") or {}
            for expression in selector.get("matchExpressions") or []:
                expression["values"] = [namespace if v == old else v for v in expression.get("values") or []]
    return objects


@dataclass(frozen=True)
class ImageChoice:
    """Which images the install runs, for registries other than the default (or none at all)."""

    image: str | None = None
    agent_image: str | None = None
    pull_policy: str | None = None


def with_images(objects: Iterable[Manifest], choice: ImageChoice) -> list[Manifest]:
    """The Deployments' image and pull policy, and the agent image the webhook injects."""
    objects = [copy.deepcopy(obj) for obj in objects]
    for obj in objects:
        if obj["kind"] == "Deployment":
            pod = obj["spec"]["template"]["spec"]
            for container in [*pod.get("initContainers", []), *pod["containers"]]:
                if choice.image:
                    container["image"] = choice.image
                if choice.pull_policy:
                    container["imagePullPolicy"] = choice.pull_policy
    if choice.agent_image:
        _find(objects, "ConfigMap", CONFIG_CONFIGMAP)["data"]["LEOFLOW_AGENT_IMAGE"] = choice.agent_image
    return objects


def _find(objects: list[Manifest], kind: str, name: str) -> Manifest:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise ManifestError(f"the manifests hold no {kind} {name}")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def with_certificates(objects: Iterable[Manifest], certificates: InstallCertificates) -> list[Manifest]:
    """Adds the certificate Secrets and the agent CA ConfigMap, and fills ``caBundle``."""
    objects = [copy.deepcopy(obj) for obj in objects]
    namespace = base_namespace(objects)
    configuration = _find(objects, "MutatingWebhookConfiguration", WEBHOOK_CONFIGURATION)
    bundle = _b64(rotation.ca_bundle(certificates.webhook))
    for webhook in configuration.get("webhooks") or []:
        webhook.setdefault("clientConfig", {})["caBundle"] = bundle

    def metadata(name: str) -> dict[str, object]:
        return {"name": name, "namespace": namespace, "labels": dict(_LABELS)}

    objects.append(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": metadata(WEBHOOK_SECRET),
            "type": "kubernetes.io/tls",
            "data": rotation.secret_data(certificates.webhook),
        }
    )
    objects.append(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": metadata(CONTROLLER_SECRET),
            "type": "kubernetes.io/tls",
            "data": {
                "tls.crt": _b64(certificates.controller_serving.cert_pem),
                "tls.key": _b64(certificates.controller_serving.key_pem),
                "ca.crt": _b64(certificates.controller_ca.cert_pem),
            },
        }
    )
    objects.append(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(CA_CONFIGMAP),
            "data": {"ca.crt": certificates.controller_ca.cert_pem.decode()},
        }
    )
    return sort_objects(objects)


def render_install(
    objects: Iterable[Manifest],
    *,
    namespace: str | None,
    now: datetime.datetime,
    images: ImageChoice | None = None,
) -> list[Manifest]:
    objects = list(objects)
    if images is not None:
        objects = with_images(objects, images)
    if namespace is not None:
        objects = retarget_namespace(objects, namespace)
    return with_certificates(objects, generate_certificates(base_namespace(objects), now=now))


def dump(objects: Iterable[Manifest]) -> str:
    """Multi-document YAML for ``kubectl apply -f -``."""
    return kubeyaml.dump_all(objects, width=80)

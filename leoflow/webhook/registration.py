"""The MutatingWebhookConfiguration for a webhook reached by URL (a webhook run outside the cluster).

The cluster-admin install declares the same webhook in ``manifests/base`` behind a Service; the demo
and the tests run ``leoflow webhook serve`` on the host and register it by URL. Building that object
in one place keeps both on the same contract as the manifests: labelled pods only, CREATE only,
``failurePolicy: Fail``, ``sideEffects: None``, a short timeout, AdmissionReview v1.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

from leoflow.agent_inject.names import INJECT_LABEL
from leoflow.webhook.serving import DEFAULT_EXCLUDED_NAMESPACES

WEBHOOK_NAME = "inject.agent.leoflow.io"
_NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def _namespace_names(operator: str, namespaces: Iterable[str]) -> dict[str, Any]:
    return {"key": _NAMESPACE_NAME_LABEL, "operator": operator, "values": list(namespaces)}


def only_namespaces(namespaces: Iterable[str]) -> dict[str, Any]:
    """A namespaceSelector matching exactly ``namespaces`` (a demo that touches nothing else)."""
    return {"matchExpressions": [_namespace_names("In", namespaces)]}


def except_namespaces(namespaces: Iterable[str] = DEFAULT_EXCLUDED_NAMESPACES) -> dict[str, Any]:
    """A namespaceSelector matching every namespace but ``namespaces`` (the system ones by default)."""
    return {"matchExpressions": [_namespace_names("NotIn", namespaces)]}


def webhook_configuration(
    name: str,
    *,
    url: str,
    ca_bundle: bytes,
    namespace_selector: dict[str, Any],
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if labels:
        metadata["labels"] = dict(labels)
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": metadata,
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "timeoutSeconds": 5,
                "reinvocationPolicy": "Never",
                "matchPolicy": "Equivalent",
                "rules": [
                    {
                        "operations": ["CREATE"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
                "objectSelector": {"matchLabels": {INJECT_LABEL: "true"}},
                "namespaceSelector": namespace_selector,
                "clientConfig": {"url": url, "caBundle": base64.b64encode(ca_bundle).decode()},
            }
        ],
    }

"""AdmissionReview bodies and response decoding shared by the webhook tests."""

from __future__ import annotations

import base64
import json
from typing import Any

from leoflow.agent_inject import InjectionSettings

SETTINGS = InjectionSettings(agent_image="registry.local/leoflow-agent:1", controller_addr="10.0.0.1:9443")


def pod(*, labelled: bool = True, command: list[str] | None = None, **metadata: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "busybox:1.37"}
    if command is not None:
        container["command"] = command
    labels = {"leoflow.io/inject": "true"} if labelled else {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "labels": labels, **metadata},
        "spec": {"containers": [container]},
    }


def review(
    obj: dict[str, Any] | None,
    *,
    uid: str = "705ab4f5-6393-11e8-b7cc-42010a800002",
    kind: str = "Pod",
    operation: str = "CREATE",
    namespace: str = "work",
    dry_run: bool = False,
) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": kind},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": operation,
            "namespace": namespace,
            "object": obj,
            "dryRun": dry_run,
        },
    }


def decoded_patch(response: dict[str, Any]) -> list[dict[str, Any]]:
    assert response["patchType"] == "JSONPatch"
    patch: list[dict[str, Any]] = json.loads(base64.b64decode(response["patch"]))
    return patch

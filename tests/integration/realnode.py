"""Pods that truly run on the session cluster's real node, as the tests write them: one manifest
and one wait, so every real-node test places its pods, and waits for them, the same way."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from leoflow.dev.images import BASE_IMAGE
from leoflow.dev.testing import ClusterHandle

Pod = dict[str, Any]
REAL_NODE_SELECTOR = {"leoflow.io/node-type": "real"}


def container(command: str, name: str = "main", **extra: Any) -> dict[str, Any]:
    """A ``sh -c COMMAND`` container from the imported base image (never pulled)."""
    return {
        "name": name,
        "image": BASE_IMAGE,
        "imagePullPolicy": "Never",
        "command": ["sh", "-c", command],
        **extra,
    }


def real_node_pod(
    name: str, containers: list[dict[str, Any]], *, labels: Mapping[str, str] | None = None, **spec: Any
) -> Pod:
    """A pod for the real node that runs once and stops quickly when deleted."""
    metadata: dict[str, Any] = {"name": name}
    if labels:
        metadata["labels"] = dict(labels)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "nodeSelector": dict(REAL_NODE_SELECTOR),
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 2,
            "containers": containers,
            **spec,
        },
    }


def get_pod(cluster: ClusterHandle, namespace: str, name: str) -> Pod | None:
    result = cluster.kubectl("get", "pod", name, "-n", namespace, "-o", "json", check=False)
    if result.returncode != 0:
        if "NotFound" in result.stderr:
            return None
        raise AssertionError(f"kubectl get pod {name}: {result.stderr}")
    pod: Pod = json.loads(result.stdout)
    return pod


def finished(pod: Pod) -> bool:
    return pod.get("status", {}).get("phase") in ("Succeeded", "Failed")


def wait_pod(
    cluster: ClusterHandle,
    namespace: str,
    name: str,
    *,
    done: Callable[[Pod], bool] = finished,
    what: str = "finished",
    within: float = 90,
) -> Pod:
    """Polls the pod until ``done(pod)``; the failure shows its last status."""
    deadline = time.monotonic() + within
    pod: Pod | None = None
    while time.monotonic() < deadline:
        pod = get_pod(cluster, namespace, name)
        if pod is not None and done(pod):
            return pod
        time.sleep(0.25)
    status = json.dumps((pod or {}).get("status", {}), indent=1)
    raise AssertionError(f"pod {namespace}/{name} never became {what}; last status:\n{status}")

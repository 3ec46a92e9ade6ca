"""Installing and uninstalling Leoflow on the session cluster, shared by this directory's tests.

The session cluster is shared, so an install here must leave it as it found it: no namespace, no
webhook configuration (with ``failurePolicy: Fail`` it would refuse labelled pods of other
tests), and the CRDs back if another module had installed them.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from leoflow.dev import images
from leoflow.dev.containerd import NodePaths
from leoflow.dev.node import load_image
from leoflow.dev.testing import ClusterHandle
from leoflow.install import controller_image
from tests.integration.realnode import container, real_node_pod, wait_pod

MANIFESTS = Path(__file__).resolve().parents[3] / "manifests"
NAMESPACE = "leoflow-system"
CONFIGURATION = "leoflow-agent-injector"
AGENT_BINARY = MANIFESTS.parent / "agent" / "bin" / "leoflow-agent"
AGENT_IMAGE = "leoflow.dev/agent:dev"


def wait_until_gone(cluster: ClusterHandle, *what: str, within: float = 120) -> None:
    deadline = time.monotonic() + within
    while cluster.kubectl("get", *what, "--ignore-not-found", "-o", "name").stdout.strip():
        if time.monotonic() > deadline:
            raise AssertionError(f"{' '.join(what)} still exists after {within:.0f}s")
        time.sleep(0.5)


def leoflow_crds(cluster: ClusterHandle) -> list[str]:
    names = cluster.kubectl("get", "crd", "-o", "name").stdout.split()
    return [n for n in names if n.endswith(".leoflow.io")]


def assert_not_installed(cluster: ClusterHandle) -> None:
    found = cluster.kubectl("get", "namespace", NAMESPACE, "--ignore-not-found", "-o", "name").stdout
    assert not found, f"{NAMESPACE} exists before the install test: another test left it behind"


def remove_webhook_configuration(cluster: ClusterHandle) -> None:
    cluster.kubectl("delete", "mutatingwebhookconfiguration", CONFIGURATION, "--ignore-not-found")


def uninstall(cluster: ClusterHandle) -> None:
    """`kubectl delete -k manifests/`, then waits for the namespace to be gone."""
    cluster.kubectl("delete", "-k", str(MANIFESTS), "--ignore-not-found", "--wait=true", timeout=180)
    wait_until_gone(cluster, "namespace", NAMESPACE)


def restore_crds(cluster: ClusterHandle, before: list[str]) -> None:
    if before:
        cluster.kubectl("apply", "-f", str(MANIFESTS / "crds"))


def real_node_ready(cluster: ClusterHandle) -> bool:
    listed = json.loads(
        cluster.kubectl("get", "nodes", "-l", "leoflow.io/node-type=real", "-o", "json").stdout
    )
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for node in listed["items"]
        for c in node.get("status", {}).get("conditions", [])
    )


def wait_for(
    what: str, check: Callable[[], bool], within: float, describe: Callable[[], str] | None = None
) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {within:.0f}s\n{describe() if describe else ''}")
        time.sleep(1)


def import_local_images(cluster: ClusterHandle) -> None:
    """The controller image (built without Docker) and the agent image, into the real node.

    Skips the calling test when the session has no real node or the images cannot be built here.
    """
    if not (cluster.has_real_node or real_node_ready(cluster)):
        pytest.skip("no real node is up in this session")
    if not AGENT_BINARY.is_file():
        pytest.skip(f"{AGENT_BINARY} not built yet (make agent)")
    if shutil.which("debootstrap") is None or os.geteuid() != 0:
        pytest.skip("the controller image needs debootstrap, run as root (apt-get install debootstrap)")
    built = controller_image.build_controller_image(MANIFESTS.parent)
    images.import_image(built, NodePaths(cluster.home).socket)
    load_image(cluster.home, images.agent_spec(AGENT_BINARY, AGENT_IMAGE))


def webhook_ready(cluster: ClusterHandle) -> bool:
    ready = cluster.kubectl(
        "get", "deployment", "leoflow-webhook", "-n", NAMESPACE, "-o", "jsonpath={.status.readyReplicas}"
    ).stdout
    return ready == "2"


def wait_for_webhook(cluster: ClusterHandle, within: float = 240) -> None:
    wait_for(
        "2 ready webhook replicas",
        lambda: webhook_ready(cluster),
        within,
        describe=lambda: cluster.kubectl(
            "describe", "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/name=leoflow-webhook"
        ).stdout[-3000:],
    )


def run_labelled_pod(cluster: ClusterHandle, namespace: str, name: str, script: str) -> dict[str, Any]:
    """Creates a pod opting in to injection on the real node; returns it once it has finished."""
    pod = real_node_pod(name, [container(script)], labels={"leoflow.io/inject": "true"})
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(pod))
    return wait_pod(cluster, namespace, name, within=120)

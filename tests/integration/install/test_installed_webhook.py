"""The install, run for real: the webhook Deployment from these manifests, on the real node, in the
image built without Docker, injects the agent into a labelled pod that then runs to completion.

`leoflow install --print` provides the certificates (the cluster has no cert-manager) and points
the Deployments at the locally built images. The controller image is the same one; the controller
itself is not part of this test.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

from leoflow.dev import images
from leoflow.dev.containerd import NodePaths
from leoflow.dev.node import load_image
from leoflow.dev.testing import ClusterHandle
from leoflow.install import controller_image, manifests, rendering

from .installing import (
    MANIFESTS,
    NAMESPACE,
    assert_not_installed,
    leoflow_crds,
    remove_webhook_configuration,
    restore_crds,
    uninstall,
)

pytestmark = [pytest.mark.cluster, pytest.mark.node]

REPO = MANIFESTS.parent
AGENT_BINARY = REPO / "agent" / "bin" / "leoflow-agent"
AGENT_IMAGE = "leoflow.dev/agent:dev"


def real_node_ready(cluster: ClusterHandle) -> bool:
    listed = json.loads(
        cluster.kubectl("get", "nodes", "-l", "leoflow.io/node-type=real", "-o", "json").stdout
    )
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for node in listed["items"]
        for c in node.get("status", {}).get("conditions", [])
    )


def wait_for(what: str, check: Any, within: float, describe: Any = None) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {within:.0f}s\n{describe() if describe else ''}")
        time.sleep(1)


def rendered_install() -> str:
    """What `leoflow install --print` prints with the locally built images."""
    choice = rendering.ImageChoice(controller_image.CONTROLLER_IMAGE, AGENT_IMAGE, "Never")
    objects = manifests.load_kustomization(MANIFESTS)
    now = datetime.datetime.now(datetime.UTC)
    return rendering.dump(rendering.render_install(objects, namespace=None, now=now, images=choice))


@pytest.fixture(scope="module")
def installed_with_local_images(cluster: ClusterHandle) -> Iterator[ClusterHandle]:
    if not (cluster.has_real_node or real_node_ready(cluster)):
        pytest.skip("no real node is up in this session")
    if not AGENT_BINARY.is_file():
        pytest.skip(f"{AGENT_BINARY} not built yet (make agent)")
    if shutil.which("debootstrap") is None or os.geteuid() != 0:
        pytest.skip("the controller image needs debootstrap, run as root (apt-get install debootstrap)")
    assert_not_installed(cluster)
    built = controller_image.build_controller_image(REPO)
    images.import_image(built, NodePaths(cluster.home).socket)
    load_image(cluster.home, images.agent_spec(AGENT_BINARY, AGENT_IMAGE))
    crds_before = leoflow_crds(cluster)
    try:
        cluster.kubectl("apply", "-f", "-", input=rendered_install())
        yield cluster
    finally:
        remove_webhook_configuration(cluster)
        uninstall(cluster)
        restore_crds(cluster, crds_before)


def webhook_available(cluster: ClusterHandle) -> bool:
    ready = cluster.kubectl(
        "get", "deployment", "leoflow-webhook", "-n", NAMESPACE, "-o", "jsonpath={.status.readyReplicas}"
    ).stdout
    return ready == "2"


def test_installed_webhook_injects_the_agent_and_the_pod_runs(
    installed_with_local_images: ClusterHandle, namespace: str
) -> None:
    cluster = installed_with_local_images
    wait_for(
        "2 ready webhook replicas",
        lambda: webhook_available(cluster),
        within=240,
        describe=lambda: cluster.kubectl(
            "describe", "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/name=leoflow-webhook"
        ).stdout[-3000:],
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "task", "labels": {"leoflow.io/inject": "true"}},
        "spec": {
            "nodeSelector": {"leoflow.io/node-type": "real"},
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {
                    "name": "main",
                    "image": images.BASE_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", "echo installed and injected"],
                }
            ],
        },
    }
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(pod))

    def read() -> dict[str, Any]:
        return json.loads(cluster.kubectl("get", "pod", "task", "-n", namespace, "-o", "json").stdout)

    wait_for("the task pod to finish", lambda: read()["status"].get("phase") in ("Succeeded", "Failed"), 120)
    finished = read()
    assert finished["spec"]["containers"][0]["command"][:3] == ["/leoflow/bin/leoflow-agent", "run", "--"]
    assert [c["name"] for c in finished["spec"]["initContainers"]] == ["leoflow-agent-init"]
    assert finished["status"]["phase"] == "Succeeded", finished["status"]
    assert "installed and injected" in cluster.kubectl("logs", "task", "-c", "main", "-n", namespace).stdout


def test_installed_webhook_runs_hardened(installed_with_local_images: ClusterHandle) -> None:
    cluster = installed_with_local_images
    wait_for("2 ready webhook replicas", lambda: webhook_available(cluster), within=240)
    probe = (
        "id -u; touch /probe 2>&1; touch /tmp/probe && echo tmp-writable; "
        "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/1/status"
    )
    out = cluster.kubectl("exec", "-n", NAMESPACE, "deploy/leoflow-webhook", "--", "sh", "-c", probe).stdout
    lines = out.splitlines()
    assert lines[0] == "65532"
    assert "Read-only file system" in lines[1]
    assert "tmp-writable" in lines
    status = dict(line.split(":\t") for line in lines if ":\t" in line)
    assert status == {"CapEff": "0000000000000000", "NoNewPrivs": "1", "Seccomp": "2"}

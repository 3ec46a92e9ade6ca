"""The install, run for real: the webhook Deployment from these manifests, on the real node, in the
image built without Docker, injects the agent into a labelled pod that then runs to completion.

`leoflow install --print` provides the certificates (the cluster has no cert-manager) and points
the Deployments at the locally built images. The controller image is the same one; the controller
itself is not part of this test.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest

from leoflow.dev.testing import ClusterHandle
from leoflow.install import controller_image, manifests, rendering

from .installing import (
    AGENT_IMAGE,
    MANIFESTS,
    NAMESPACE,
    assert_not_installed,
    import_local_images,
    leoflow_crds,
    remove_webhook_configuration,
    restore_crds,
    run_labelled_pod,
    uninstall,
    wait_for_webhook,
)

pytestmark = [pytest.mark.cluster, pytest.mark.node]


def rendered_install() -> str:
    """What `leoflow install --print` prints with the locally built images."""
    choice = rendering.ImageChoice(controller_image.CONTROLLER_IMAGE, AGENT_IMAGE, "Never")
    objects = manifests.load_kustomization(MANIFESTS)
    now = datetime.datetime.now(datetime.UTC)
    return rendering.dump(rendering.render_install(objects, namespace=None, now=now, images=choice))


@pytest.fixture(scope="module")
def installed_with_local_images(cluster: ClusterHandle) -> Iterator[ClusterHandle]:
    import_local_images(cluster)
    assert_not_installed(cluster)
    crds_before = leoflow_crds(cluster)
    try:
        cluster.kubectl("apply", "-f", "-", input=rendered_install())
        yield cluster
    finally:
        remove_webhook_configuration(cluster)
        uninstall(cluster)
        restore_crds(cluster, crds_before)


def test_installed_webhook_injects_the_agent_and_the_pod_runs(
    installed_with_local_images: ClusterHandle, namespace: str
) -> None:
    cluster = installed_with_local_images
    wait_for_webhook(cluster)
    finished = run_labelled_pod(cluster, namespace, "task", "echo installed and injected")
    assert finished["spec"]["containers"][0]["command"][:3] == ["/leoflow/bin/leoflow-agent", "run", "--"]
    assert [c["name"] for c in finished["spec"]["initContainers"]] == ["leoflow-agent-init"]
    assert finished["status"]["phase"] == "Succeeded", finished["status"]
    assert "installed and injected" in cluster.kubectl("logs", "task", "-c", "main", "-n", namespace).stdout


def test_installed_webhook_runs_hardened(installed_with_local_images: ClusterHandle) -> None:
    cluster = installed_with_local_images
    wait_for_webhook(cluster)
    probe = (
        "id -u; touch /probe 2>&1; touch /tmp/probe && echo tmp-writable; "
        "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/1/status; "
        "test -e /var/run/secrets/kubernetes.io/serviceaccount/token || echo no-token"
    )
    out = cluster.kubectl("exec", "-n", NAMESPACE, "deploy/leoflow-webhook", "--", "sh", "-c", probe).stdout
    lines = out.splitlines()
    assert lines[0] == "65532"
    assert "Read-only file system" in lines[1]
    assert "tmp-writable" in lines
    assert "no-token" in lines, "the webhook talks to no API and mounts no token"
    status = dict(line.split(":\t") for line in lines if ":\t" in line)
    assert status == {"CapEff": "0000000000000000", "NoNewPrivs": "1", "Seccomp": "2"}

"""`kubectl apply -k` without cert-manager and without `leoflow install --print`: the certificate
keeper issues the webhook's Secret and fills the caBundle, the webhook pods wait for the Secret,
start, and inject, with the certificates verified the way the API server verifies them.

The dev cluster has no kube-proxy, so pods cannot reach the API server's Service address; the
keeper therefore runs here on the host, as the keeper's ServiceAccount (a token from
``kubectl create token``), so it holds exactly the grants the manifests give it.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from leoflow.dev.testing import ClusterHandle

from .installing import (
    CONFIGURATION,
    MANIFESTS,
    NAMESPACE,
    assert_not_installed,
    import_local_images,
    leoflow_crds,
    remove_webhook_configuration,
    restore_crds,
    run_labelled_pod,
    uninstall,
    wait_for,
    wait_for_webhook,
)

pytestmark = [pytest.mark.cluster, pytest.mark.node]

KEEPER = "leoflow-webhook-certificates"


def service_account_kubeconfig(cluster: ClusterHandle, directory: Path) -> Path:
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    token = cluster.kubectl("create", "token", KEEPER, "-n", NAMESPACE, "--duration=1h").stdout.strip()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "dev", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": KEEPER, "user": {"token": token}}],
        "contexts": [{"name": KEEPER, "context": {"cluster": "dev", "user": KEEPER}}],
        "current-context": KEEPER,
    }
    path = directory / "keeper.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def ca_bundle(cluster: ClusterHandle) -> str:
    return cluster.kubectl(
        "get",
        "mutatingwebhookconfiguration",
        CONFIGURATION,
        "-o",
        "jsonpath={.webhooks[0].clientConfig.caBundle}",
    ).stdout


@pytest.fixture(scope="module")
def self_managed_install(
    cluster: ClusterHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ClusterHandle]:
    import_local_images(cluster)
    assert_not_installed(cluster)
    crds_before = leoflow_crds(cluster)
    keeper: subprocess.Popen[bytes] | None = None
    try:
        cluster.kubectl("apply", "-f", str(MANIFESTS / "crds"))
        cluster.kubectl("apply", "-k", str(MANIFESTS / "overlays" / "dev"))
        assert not ca_bundle(cluster), "nothing has filled the caBundle yet"
        args = json.loads(
            cluster.kubectl(
                "get",
                "deployment",
                KEEPER,
                "-n",
                NAMESPACE,
                "-o",
                "jsonpath={.spec.template.spec.containers[0].args}",
            ).stdout
        )
        args = [a.replace("$(POD_NAMESPACE)", NAMESPACE) for a in args]
        kubeconfig = service_account_kubeconfig(cluster, tmp_path_factory.mktemp("keeper"))
        keeper = subprocess.Popen(
            [sys.executable, "-m", "leoflow", *args, f"--kubeconfig={kubeconfig}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        yield cluster
    finally:
        if keeper is not None:
            keeper.terminate()
            keeper.wait(timeout=10)
        remove_webhook_configuration(cluster)
        uninstall(cluster)
        restore_crds(cluster, crds_before)


def test_keeper_issues_the_secret_and_fills_the_ca_bundle(self_managed_install: ClusterHandle) -> None:
    cluster = self_managed_install
    wait_for("the caBundle", lambda: bool(ca_bundle(cluster)), within=60)
    secret = cluster.kubectl("get", "secret", "leoflow-webhook-tls", "-n", NAMESPACE, "-o", "json").stdout
    data = json.loads(secret)["data"]
    assert base64.b64decode(data["ca.crt"]) in base64.b64decode(ca_bundle(cluster))


def test_webhook_serves_a_certificate_the_api_server_trusts(self_managed_install: ClusterHandle) -> None:
    cluster = self_managed_install
    wait_for("the caBundle", lambda: bool(ca_bundle(cluster)), within=60)
    wait_for_webhook(cluster)
    context = ssl.create_default_context(cadata=base64.b64decode(ca_bundle(cluster)).decode())
    pods = json.loads(
        cluster.kubectl(
            "get", "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/name=leoflow-webhook", "-o", "json"
        ).stdout
    )["items"]
    assert len(pods) == 2
    for pod in pods:
        with (
            socket.create_connection((pod["status"]["podIP"], 8443), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=f"leoflow-webhook.{NAMESPACE}.svc") as tls,
        ):
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
        restarts = pod["status"]["containerStatuses"][0]["restartCount"]
        assert restarts == 0, "the init container waited for the Secret; the webhook never crashed"


def test_labelled_pod_is_injected_through_the_self_managed_install(
    self_managed_install: ClusterHandle, namespace: str
) -> None:
    cluster = self_managed_install
    wait_for("the caBundle", lambda: bool(ca_bundle(cluster)), within=60)
    wait_for_webhook(cluster)
    finished = run_labelled_pod(cluster, namespace, "task", "echo self-managed")
    assert finished["spec"]["containers"][0]["command"][:3] == ["/leoflow/bin/leoflow-agent", "run", "--"]
    assert finished["status"]["phase"] == "Succeeded", finished["status"]

"""Installing and uninstalling Leoflow on the session cluster, shared by this directory's tests.

The session cluster is shared, so an install here must leave it as it found it: no namespace, no
webhook configuration (with ``failurePolicy: Fail`` it would refuse labelled pods of other
tests), and the CRDs back if another module had installed them.
"""

from __future__ import annotations

import time
from pathlib import Path

from leoflow.dev.testing import ClusterHandle

MANIFESTS = Path(__file__).resolve().parents[3] / "manifests"
NAMESPACE = "leoflow-system"
CONFIGURATION = "leoflow-agent-injector"


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

"""The CLI against the local cluster: CRDs installed once, each command run as a user runs it.

Commands run as subprocesses (``python -m leoflow``), so exit codes, stdout and stderr are the
real ones, and stdout is not a terminal (``watch`` prints plain lines).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from leoflow.dev.testing import ClusterHandle

ROOT = Path(__file__).resolve().parents[3]
CRDS = ROOT / "manifests" / "crds"
DEMO = ROOT / "examples" / "etl" / "demo"

Leoflow = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def crds(cluster: ClusterHandle) -> ClusterHandle:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    for name in ("dags.leoflow.io", "dagruns.leoflow.io"):
        cluster.kubectl("wait", "--for", "condition=Established", "--timeout=60s", f"crd/{name}")
    return cluster


@pytest.fixture
def leoflow(crds: ClusterHandle, namespace: str) -> Iterator[Leoflow]:
    """Runs ``leoflow ARGS -n <test namespace> --kubeconfig <cluster>``."""

    def run(*args: str, timeout: float = 60, connect: bool = True) -> subprocess.CompletedProcess[str]:
        extra = ["-n", namespace, "--kubeconfig", str(crds.kubeconfig)] if connect else []
        return subprocess.run(
            [sys.executable, "-m", "leoflow", *args, *extra],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    yield run


def create_run(cluster: ClusterHandle, namespace: str, name: str, dag: str, **spec: Any) -> dict[str, Any]:
    obj = {
        "apiVersion": "leoflow.io/v1alpha1",
        "kind": "DAGRun",
        "metadata": {"name": name, "labels": {"leoflow.io/dag": dag}},
        "spec": {"dagName": dag, **spec},
    }
    out = cluster.kubectl("create", "-n", namespace, "-o", "json", "-f", "-", input=json.dumps(obj)).stdout
    created: dict[str, Any] = json.loads(out)
    return created


def set_status(cluster: ClusterHandle, namespace: str, name: str, status: dict[str, Any]) -> None:
    """Writes the DAGRun status as a controller would (these tests exercise the CLI, not the controller)."""
    cluster.kubectl(
        "patch",
        "dagrun",
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


def annotations(cluster: ClusterHandle, namespace: str, name: str) -> dict[str, str]:
    out = cluster.kubectl("get", "dagrun", name, "-n", namespace, "-o", "json").stdout
    found: dict[str, str] = json.loads(out)["metadata"].get("annotations") or {}
    return found

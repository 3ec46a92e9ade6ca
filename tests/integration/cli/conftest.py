"""The CLI against the local cluster: CRDs installed once, each command run as a user runs it.

Commands run as subprocesses (``python -m leoflow``), so exit codes, stdout and stderr are the
real ones, and stdout is not a terminal (``watch`` prints plain lines).
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from leoflow.cli import demo
from leoflow.dev import images
from leoflow.dev.cluster import install_crds
from leoflow.dev.node import load_image
from leoflow.dev.processes import free_port
from leoflow.dev.testing import ClusterHandle

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "examples" / "etl" / "demo"

Leoflow = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def crds(cluster: ClusterHandle) -> ClusterHandle:
    install_crds(cluster.state)
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


@pytest.fixture
def leoflow_running(crds: ClusterHandle, namespace: str, agent_binary: Path, tmp_path: Path) -> Iterator[str]:
    """The controller and webhook for ``namespace``, started exactly as `make demo` starts them."""
    address = crds.state.node_address
    if not crds.has_real_node or address is None:
        pytest.fail("these tests need the real node", pytrace=False)
    load_image(crds.home, images.agent_spec(agent_binary))
    tls = demo.write_tls(tmp_path / "tls", ("127.0.0.1", address))
    demo.prepare_namespace(crds.state, namespace, tls)
    agent_addr = f"{address}:{free_port(address)}"
    health = free_port("127.0.0.1")
    port = free_port("127.0.0.1")
    argv = demo.controller_argv(crds.state, namespace, agent_addr, health, tls)
    with (
        demo.child("controller", argv, tmp_path) as controller,
        demo.child("webhook", demo.webhook_argv(port, agent_addr, tls), tmp_path) as webhook,
    ):
        demo.wait_ready(
            "controller", controller, f"http://127.0.0.1:{health}/readyz", None, tmp_path / "controller.log"
        )
        context = ssl.create_default_context(cafile=str(tls.ca))
        demo.wait_ready(
            "webhook", webhook, f"https://127.0.0.1:{port}/readyz", context, tmp_path / "webhook.log"
        )
        with demo.registered_webhook(crds.state, f"https://127.0.0.1:{port}/mutate-pods", tls, namespace):
            yield namespace

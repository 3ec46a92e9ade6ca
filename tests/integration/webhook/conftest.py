"""The webhook as the API server sees it: a `leoflow webhook serve` subprocess on 127.0.0.1 with
a freshly generated certificate, and a MutatingWebhookConfiguration pointing at it.

Pods are placed on the KWOK nodes with local images (``KWOK_ONLY``), so nothing is ever pulled.
The webhook runs as its own process (not on the test's event loop), because the tests call
kubectl synchronously and a blocked loop could not answer the API server. Every configuration a
test registers is cluster-scoped and removed when the test ends, whatever happens.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from leoflow.dev import images, kwok
from leoflow.dev.processes import free_port
from leoflow.dev.testing import ClusterHandle
from leoflow.webhook import registration

# The tag `leoflow dev` images use, so an injected pod on the real node finds the imported image.
AGENT_IMAGE = images.AGENT_IMAGE
CONTROLLER_ADDR = "127.0.0.1:9443"
EXCLUDED = ["kube-system", "kube-public", "kube-node-lease", "leoflow-system"]


@dataclass(frozen=True)
class Webhook:
    url: str
    ca_bundle: bytes


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("webhook-tls")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "leoflow",
            "certs",
            "generate",
            "--out",
            str(out),
            "--service",
            "leoflow-webhook",
            "--namespace",
            "leoflow-system",
            "--ip",
            "127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture(scope="module")
def webhook(tls_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webhook]:
    port = free_port()
    log = (tmp_path_factory.mktemp("webhook-log") / "webhook.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "leoflow",
            "-v",
            "webhook",
            "serve",
            "--cert-file",
            str(tls_dir / "tls.crt"),
            "--key-file",
            str(tls_dir / "tls.key"),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--agent-image",
            AGENT_IMAGE,
            "--controller-addr",
            CONTROLLER_ADDR,
            "--agent-in-image",
            f"{images.BASE_WITH_AGENT_IMAGE}={images.AGENT_IN_IMAGE_PATH}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    context = ssl.create_default_context(cafile=str(tls_dir / "ca.crt"))
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(
                f"https://127.0.0.1:{port}/readyz", context=context, timeout=2
            ) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"webhook did not become ready; log: {Path(log.name).read_text()[-2000:]}")
        time.sleep(0.1)
    try:
        yield Webhook(f"https://127.0.0.1:{port}/mutate-pods", (tls_dir / "ca.crt").read_bytes())
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def webhook_configuration(name: str, url: str, ca_bundle: bytes) -> dict[str, Any]:
    return registration.webhook_configuration(
        name,
        url=url,
        ca_bundle=ca_bundle,
        namespace_selector=registration.except_namespaces(EXCLUDED),
        labels={"app.kubernetes.io/part-of": "leoflow-tests"},
    )


Register = Callable[[str, bytes], str]

# Pods these tests create never need to run: keep them on the KWOK nodes with local images only,
# so no kubelet ever tries to pull from a registry (this machine must not reach out).
KWOK_ONLY = kwok.simulated_pod_placement()


@pytest.fixture
def register_webhook(cluster: ClusterHandle) -> Iterator[Register]:
    """Creates a MutatingWebhookConfiguration for a URL; deletes every one created, at teardown."""
    created: list[str] = []

    def register(url: str, ca_bundle: bytes) -> str:
        name = f"leoflow-test-{uuid.uuid4().hex[:8]}"
        created.append(name)
        cluster.kubectl("create", "-f", "-", input=json.dumps(webhook_configuration(name, url, ca_bundle)))
        return name

    yield register
    for name in created:
        cluster.kubectl("delete", "mutatingwebhookconfiguration", name, "--ignore-not-found", check=False)


def labelled_pod(name: str, *, labelled: bool = True, command: list[str] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": images.BASE_IMAGE, "imagePullPolicy": "Never"}
    if command is not None:
        container["command"] = command
    labels = {"leoflow.io/inject": "true", "leoflow.io/task": "t1"} if labelled else {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {**KWOK_ONLY, "containers": [container], "terminationGracePeriodSeconds": 0},
    }


def dry_run_create(
    cluster: ClusterHandle, namespace: str, obj: dict[str, Any]
) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl(
        "create",
        "--dry-run=server",
        "-o",
        "json",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps(obj),
        check=False,
    )


def is_injected(pod: dict[str, Any]) -> bool:
    inits = pod["spec"].get("initContainers") or []
    return bool(inits) and inits[0]["name"] == "leoflow-agent-init"


def poll_dry_run_create(
    cluster: ClusterHandle, namespace: str, obj: dict[str, Any], check: Callable[[Any], bool], what: str
) -> Any:
    """Polls a dry-run create of ``obj`` until ``check`` accepts the result (the parsed pod, or the
    failed process) and returns it; fails naming ``what`` never happened within 30 s."""
    deadline = time.monotonic() + 30
    while True:
        result = dry_run_create(cluster, namespace, obj)
        outcome: Any = json.loads(result.stdout) if result.returncode == 0 else result
        if check(outcome):
            return outcome
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} never happened; last: {outcome}")
        time.sleep(0.2)


def wait_until_webhook_active(cluster: ClusterHandle, namespace: str, check: Callable[[Any], bool]) -> Any:
    """The API server picks a new configuration up a few hundred ms after it is created: poll a
    dry-run create until ``check`` accepts the result (the parsed pod, or the failed process)."""
    probe = labelled_pod("probe", command=["true"])
    return poll_dry_run_create(cluster, namespace, probe, check, "the webhook configuration taking effect")


@pytest.fixture
def active_webhook(
    cluster: ClusterHandle, namespace: str, webhook: Webhook, register_webhook: Register
) -> Iterator[str]:
    """Our webhook registered, and proven in effect for ``namespace``."""
    name = register_webhook(webhook.url, webhook.ca_bundle)
    wait_until_webhook_active(cluster, namespace, lambda out: isinstance(out, dict) and is_injected(out))
    yield name

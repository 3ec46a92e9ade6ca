"""The certificate loop against the real API server: it creates the Secret, puts the CA into
``caBundle``, leaves both alone when nothing is due, and repairs a reset bundle."""

from __future__ import annotations

import base64
import datetime
import json
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest

from leoflow.certs import authority, rotation, syncing
from leoflow.dev.testing import ClusterHandle

from .conftest import webhook_configuration

pytestmark = pytest.mark.cluster


async def test_sync_creates_secret_patches_ca_bundle_and_repairs_drift(
    cluster: ClusterHandle, namespace: str, kube: Any
) -> None:
    name = f"leoflow-test-certs-{uuid.uuid4().hex[:8]}"
    configuration = webhook_configuration(name, "https://127.0.0.1:1/mutate-pods", b"")
    # Matches nothing any test creates, so the unreachable URL can never refuse a pod.
    configuration["webhooks"][0]["objectSelector"] = {"matchLabels": {"leoflow.io/never": name}}
    del configuration["webhooks"][0]["clientConfig"]["caBundle"]
    cluster.kubectl("create", "-f", "-", input=json.dumps(configuration))
    try:
        target = syncing.Target(
            namespace=namespace,
            secret_name="leoflow-webhook-tls",
            webhook_configuration=name,
            dns_names=authority.service_dns_names("leoflow-webhook", namespace),
        )
        policy = rotation.RotationPolicy()
        first = await syncing.sync_once(kube, target, policy=policy)
        assert first.changed

        def stored_bundle() -> bytes:
            mwc = json.loads(
                cluster.kubectl("get", "mutatingwebhookconfiguration", name, "-o", "json").stdout
            )
            return base64.b64decode(mwc["webhooks"][0]["clientConfig"]["caBundle"])

        assert stored_bundle() == rotation.ca_bundle(first.state)
        secret = json.loads(
            cluster.kubectl("get", "secret", "leoflow-webhook-tls", "-n", namespace, "-o", "json").stdout
        )
        assert secret["type"] == "kubernetes.io/tls"
        assert rotation.state_from_secret_data(secret["data"]) == first.state

        second = await syncing.sync_once(kube, target, policy=policy)
        assert not second.changed
        assert second.state == first.state

        cluster.kubectl(
            "patch", "mutatingwebhookconfiguration", name, "--type=json",
            "-p", json.dumps([{"op": "remove", "path": "/webhooks/0/clientConfig/caBundle"}]),
        )  # fmt: skip
        await syncing.sync_once(kube, target, policy=policy)
        assert stored_bundle() == rotation.ca_bundle(first.state)

        later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=3000)
        rotated = await syncing.sync_once(kube, target, policy=policy, now=later)
        assert "CA due for renewal" in rotated.reasons
        assert first.state.ca is not None and rotated.state.ca is not None
        assert stored_bundle() == first.state.ca.cert_pem + rotated.state.ca.cert_pem
    finally:
        cluster.kubectl("delete", "mutatingwebhookconfiguration", name, "--ignore-not-found", check=False)


def test_certs_keep_command_fills_secret_and_ca_bundle(cluster: ClusterHandle, namespace: str) -> None:
    name = f"leoflow-test-keep-{uuid.uuid4().hex[:8]}"
    configuration = webhook_configuration(name, "https://127.0.0.1:1/mutate-pods", b"")
    configuration["webhooks"][0]["objectSelector"] = {"matchLabels": {"leoflow.io/never": name}}
    cluster.kubectl("create", "-f", "-", input=json.dumps(configuration))
    keep = subprocess.Popen(
        [sys.executable, "-m", "leoflow", "certs", "keep", "--namespace", namespace, "--service", "wh",
         "--webhook-configuration", name, "--kubeconfig", str(cluster.kubeconfig), "--interval", "1"],
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            secret = cluster.kubectl(
                "get", "secret", "leoflow-webhook-tls", "-n", namespace, "-o", "json", check=False
            )
            if secret.returncode == 0:
                break
            assert keep.poll() is None, keep.stderr.read() if keep.stderr else ""
            assert time.monotonic() < deadline, "leoflow certs keep wrote no Secret"
            time.sleep(0.2)
        state = rotation.state_from_secret_data(json.loads(secret.stdout)["data"])
        mwc = json.loads(cluster.kubectl("get", "mutatingwebhookconfiguration", name, "-o", "json").stdout)
        assert base64.b64decode(mwc["webhooks"][0]["clientConfig"]["caBundle"]) == rotation.ca_bundle(state)
    finally:
        keep.terminate()
        keep.wait(10)
        cluster.kubectl("delete", "mutatingwebhookconfiguration", name, "--ignore-not-found", check=False)

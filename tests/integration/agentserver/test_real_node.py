"""On the real node: a pod wrapped by the real agent (as the webhook injects it) reports to the
AgentServer through the pod network, over TLS, with its kubelet-projected token, and the server
believes it because the API server's TokenReview binds that token to exactly this pod."""

from __future__ import annotations

import asyncio
import datetime
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from leoflow.agent_inject.mutation import Injection, inject
from leoflow.agent_inject.settings import InjectionSettings
from leoflow.certs.authority import issue_serving, new_ca
from leoflow.controller.agentserver import AgentIdentity, AgentReport, AgentServer, ServerTls
from leoflow.controller.kube.transport import Transport
from leoflow.controller.tokenreview import TokenReviewer
from leoflow.dev import images
from leoflow.dev.node import load_image
from leoflow.dev.testing import ClusterHandle
from tests.integration.realnode import container, real_node_pod

pytestmark = [pytest.mark.cluster, pytest.mark.node]


@dataclass
class RunEngine:
    reports: list[AgentReport] = field(default_factory=list)
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    async def report(self, report: AgentReport) -> None:
        self.reports.append(report)
        if report.kind == "finished":
            self.finished.set()

    async def wait_start(self, identity: AgentIdentity) -> None:
        return None


def serving_files(directory: Path, address: str) -> ServerTls:
    now = datetime.datetime.now(datetime.UTC)
    ca = new_ca(common_name="leoflow-agentserver-test", now=now, validity=datetime.timedelta(hours=1))
    pair = issue_serving(
        ca, dns_names=(), ip_addresses=(address,), now=now, validity=datetime.timedelta(hours=1)
    )
    (directory / "tls.crt").write_bytes(pair.cert_pem)
    (directory / "tls.key").write_bytes(pair.key_pem)
    (directory / "ca.crt").write_bytes(ca.cert_pem)
    return ServerTls(directory / "tls.crt", directory / "tls.key")


def task_pod(controller_addr: str) -> dict[str, Any]:
    pod = real_node_pod(
        "etl-extract-0",
        [container('printf 42 > "$LEOFLOW_OUTPUTS_DIR/answer"; exit 3')],
        labels={
            "leoflow.io/inject": "true",
            "leoflow.io/dag": "etl",
            "leoflow.io/run": "etl-1",
            "leoflow.io/task": "extract",
            "leoflow.io/attempt": "0",
        },
    )
    settings = InjectionSettings(
        agent_image=images.AGENT_IMAGE,
        controller_addr=controller_addr,
        ca_configmap="leoflow-ca",
        token_expiry_seconds=600,
        image_pull_policy="Never",
    )
    injected = inject(pod, settings)
    assert isinstance(injected, Injection), injected
    return injected.pod


async def test_a_wrapped_pod_reports_finished_with_its_projected_token(
    cluster: ClusterHandle, namespace: str, kube: Any, agent_binary: Path, tmp_path: Path
) -> None:
    address = cluster.state.node_address
    if not cluster.has_real_node or address is None:
        pytest.skip("no real node in this cluster")
    await asyncio.to_thread(load_image, cluster.home, images.agent_spec(agent_binary))
    tls = serving_files(tmp_path, address)
    cluster.kubectl(
        "create", "configmap", "leoflow-ca", "-n", namespace, f"--from-file=ca.crt={tmp_path / 'ca.crt'}"
    )
    engine = RunEngine()
    server = AgentServer(engine, TokenReviewer(Transport(kube)), tls=tls)
    port = await server.start(address, 0)
    try:
        manifest = task_pod(f"{address}:{port}")
        created = json.loads(
            cluster.kubectl(
                "create", "-n", namespace, "-o", "json", "-f", "-", input=json.dumps(manifest)
            ).stdout
        )
        deadline = time.monotonic() + 180
        while not engine.finished.is_set():
            if time.monotonic() > deadline:
                status = cluster.kubectl("get", "pod", "etl-extract-0", "-n", namespace, "-o", "json").stdout
                raise AssertionError(f"no Finished report; pod: {json.loads(status).get('status')}")
            await asyncio.sleep(0.2)
    finally:
        await server.stop(grace=0)

    identity = AgentIdentity(
        namespace, "etl-extract-0", created["metadata"]["uid"], "etl", "etl-1", "extract", 0
    )
    kinds = [r.kind for r in engine.reports]
    assert kinds[0] == "started"
    assert kinds[-1] == "finished"
    assert {r.identity for r in engine.reports} == {identity}
    done = engine.reports[-1]
    assert (done.exit_code, done.outputs, done.outputs_error, done.agent_error) == (
        3,
        {"answer": "42"},
        "",
        "",
    )

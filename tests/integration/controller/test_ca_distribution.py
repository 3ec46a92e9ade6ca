"""The agents' CA reaches a namespace that never had it: before its first task pod, the controller
copies its CA file into ConfigMap leoflow-ca there, so the injected agent verifies the controller's
TLS certificate and reports over gRPC instead of falling back to the termination message.

On the real node, with the real webhook injecting the real agent and the controller's agent
server on the node address with a certificate from a throwaway CA.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from leoflow.agent_inject.settings import InjectionSettings
from leoflow.controller.agentca import CA_COPY_LABEL
from leoflow.controller.agentserver import AgentServer
from leoflow.controller.agentsink import RunReportSink
from leoflow.controller.app import Controller
from leoflow.controller.tokenreview import TokenReviewer
from leoflow.dev import images
from leoflow.dev.node import load_image
from tests.integration.agentserver.test_real_node import serving_files
from tests.integration.controller import webhooks
from tests.integration.controller.conftest import Harness, real_node_dag_yaml

pytestmark = [pytest.mark.cluster, pytest.mark.node]


def _accepted_finished_reports(controller: Controller) -> float:
    for metric in controller.metrics.agent_reports.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels == {"kind": "finished", "result": "accepted"}:
                return sample.value
    return 0.0


async def test_run_in_a_fresh_namespace_gets_the_agent_ca_and_its_agent_reports_over_tls(
    harness: Harness, real_node: str, agent_binary: Path, tmp_path: Path
) -> None:
    address = harness.cluster.state.node_address
    assert address is not None
    await asyncio.to_thread(load_image, harness.cluster.home, images.agent_spec(agent_binary))
    tls = serving_files(tmp_path, address)
    assert not await harness.kubectl("get", "configmaps", "-o", "name", "--ignore-not-found", "leoflow-ca")

    controller = await harness.start(controller={"agent_ca_file": tmp_path / "ca.crt"})
    agents = AgentServer(
        RunReportSink(controller.reconciler),
        TokenReviewer(controller.transport),
        tls=tls,
        metrics=controller.metrics,
    )
    port = await agents.start(address, 0)
    injection = InjectionSettings(
        agent_image=images.AGENT_IMAGE,
        controller_addr=f"{address}:{port}",
        token_expiry_seconds=600,
        image_pull_policy="Never",
    )
    try:
        async with webhooks.injecting_webhook(harness, injection):
            await harness.apply_dag(real_node_dag_yaml("trusted", "  work: {command: [sh, -c, 'exit 0']}\n"))
            await harness.create_run("r1", "trusted")
            await harness.wait_phase("r1", "Succeeded", within=120)
    finally:
        await agents.stop(grace=0)

    copy = json.loads(await harness.kubectl("get", "configmap", "leoflow-ca", "-o", "json"))
    assert copy["data"] == {"ca.crt": (tmp_path / "ca.crt").read_text()}
    assert copy["metadata"]["labels"][CA_COPY_LABEL] == "true"
    # Only an agent that verified the controller's certificate gets a Finished report through.
    assert _accepted_finished_reports(controller) == 1

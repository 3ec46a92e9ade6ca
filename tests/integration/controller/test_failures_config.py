"""Pods the kubelet can never start, on the real node: the task fails at once with the kubelet's
own message, spends none of its retries, and its pod (which Kubernetes would leave Pending
forever) is deleted. And the agent's init container failing, with the real webhook injecting it:
an infrastructure failure, retried on the infrastructure budget, then named."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from leoflow.agent_inject.settings import InjectionSettings
from leoflow.controller.planner import PlanSettings
from leoflow.dev import images
from leoflow.dev.node import load_image
from leoflow.spec.compiler import compile_text
from leoflow.spec.resources import definition_hash
from tests.integration.controller import webhooks
from tests.integration.controller.conftest import Harness, real_node_dag_yaml, run_status

pytestmark = [pytest.mark.cluster, pytest.mark.node]


async def _fails_at_once(harness: Harness, dag: str, task: str) -> dict[str, Any]:
    """Runs ``dag`` and returns its failed status; the task had retries but used none of them."""
    await harness.create_run("r1", dag)
    done = await harness.wait_phase("r1", "Failed", within=90)
    detail = run_status(done)["tasks"]["0"]
    assert detail.get("attempt", 1) == 1, detail  # absent means the first
    assert not [e for e in await harness.events("r1") if e["reason"] == "TaskRetrying"]
    # Pending forever is Kubernetes' answer to both: the controller removes the pod itself.
    await harness.wait_until_no_pods("r1", within=60)
    message: str = run_status(done)["message"]
    assert message.startswith(f"task '{task}' failed: "), message
    return done


async def test_invalid_image_name_fails_the_task_at_once_with_the_kubelet_message(
    harness: Harness, real_node: str
) -> None:
    # The compiler refuses this reference, so the DAG is written as a hand-made resource would be:
    # the CRD takes any string, and the kubelet is then the one to judge it.
    tasks = "  bad: {command: [sh, -c, 'exit 0'], image: 'leoflow.dev/placeholder:1', retries: 3}\n"
    resource = compile_text(real_node_dag_yaml("badimage", tasks)).resource(harness.namespace)
    spec = resource["spec"]
    spec["profiles"][spec["tasks"][0].get("profile", 0)]["image"] = "leoflow.dev/Base:1"
    spec["definitionHash"] = definition_hash(spec)
    await harness.kubectl("apply", "-f", "-", input=json.dumps(resource))
    await harness.start()
    done = await _fails_at_once(harness, "badimage", "bad")
    message = run_status(done)["message"]
    assert "InvalidImage: main: InvalidImageName" in message
    # The kubelet's own words about the reference, verbatim.
    assert "leoflow.dev/Base:1" in message
    assert "must be lowercase" in message


@pytest.mark.parametrize(
    ("env", "kubelet_says"),
    [
        ("{DB_URL: {configMap: settings, key: url}}", 'configmap "settings" not found'),
        ("{DB_PASSWORD: {secret: creds, key: password}}", "couldn't find key password in Secret"),
    ],
    ids=["missing-configmap", "missing-secret-key"],
)
async def test_container_config_error_fails_the_task_at_once_with_the_kubelet_message(
    harness: Harness, real_node: str, env: str, kubelet_says: str
) -> None:
    # The Secret exists, without the key the task asks for.
    await harness.kubectl("create", "secret", "generic", "creds", "--from-literal=user=etl")
    tasks = f"  configured: {{command: [sh, -c, 'exit 0'], env: {env}, retries: 3}}\n"
    await harness.apply_dag(real_node_dag_yaml("badconfig", tasks))
    await harness.start()
    done = await _fails_at_once(harness, "badconfig", "configured")
    message = run_status(done)["message"]
    assert "ContainerConfigError: main: CreateContainerConfigError" in message
    assert kubelet_says in message


# Stands in for the agent binary at the path the init container runs (as `install DIR`): the
# install step fails the way a full disk would make it fail, with the real agent's stderr line.
FAILING_INSTALL = b"""#!/bin/sh
echo "leoflow-agent: install: copying to $2: no space left on device" >&2
exit 3
"""
BROKEN_AGENT_IMAGE = "leoflow.dev/agent-broken-install:1"


@pytest.fixture
async def injecting_webhook(harness: Harness) -> AsyncIterator[None]:
    """The real webhook, registered for the test's namespace only, injecting an agent image whose
    install step exits 3; proven in effect before the test goes on."""
    spec = images.ImageSpec(
        tag=BROKEN_AGENT_IMAGE,
        files={**images.busybox_files(), "leoflow-agent": images.file_entry(FAILING_INSTALL, 0o755)},
    )
    await asyncio.to_thread(load_image, harness.cluster.home, spec)
    injection = InjectionSettings(
        agent_image=BROKEN_AGENT_IMAGE, controller_addr="127.0.0.1:9443", image_pull_policy="Never"
    )
    async with webhooks.injecting_webhook(harness, injection):
        yield


async def test_agent_init_container_failing_is_retried_as_infrastructure_then_named(
    harness: Harness, real_node: str, injecting_webhook: None
) -> None:
    tasks = "  work: {command: [sh, -c, 'exit 0'], retries: 2}\n"
    await harness.apply_dag(real_node_dag_yaml("noagent", tasks))
    await harness.start(plan=PlanSettings(infra_retries=1, infra_retry_delay_seconds=0.5))
    await harness.create_run("r1", "noagent")
    done = await harness.wait_phase("r1", "Failed", within=120)
    detail = run_status(done)["tasks"]["0"]
    # Both attempts on the infrastructure budget; the user's two retries untouched.
    assert (detail["attempt"], detail["infraAttempts"]) == (2, 2), detail
    assert (detail["reason"], detail["exitCode"]) == ("AgentInitFailed", 3)
    assert run_status(done)["message"] == (
        "task 'work' failed: AgentInitFailed: leoflow-agent-init: Error: exit code 3: "
        "leoflow-agent: install: copying to /leoflow/bin: no space left on device"
    )
    pods = await harness.pods("r1")
    assert {p["spec"]["initContainers"][0]["image"] for p in pods} == {BROKEN_AGENT_IMAGE}

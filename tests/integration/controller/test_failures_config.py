"""Pods the kubelet can never start, on the real node: the task fails at once with the kubelet's
own message, spends none of its retries, and its pod (which Kubernetes would leave Pending
forever) is deleted."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.controller.conftest import Harness, real_node_dag_yaml

pytestmark = [pytest.mark.cluster, pytest.mark.node]


def _status(obj: dict[str, Any]) -> dict[str, Any]:
    status: dict[str, Any] = obj.get("status") or {}
    return status


async def _fails_at_once(harness: Harness, dag: str, task: str) -> dict[str, Any]:
    """Runs ``dag`` and returns its failed status; the task had retries but used none of them."""
    await harness.create_run("r1", dag)
    done = await harness.wait_phase("r1", "Failed", within=90)
    detail = _status(done)["tasks"]["0"]
    assert detail.get("attempt", 1) == 1, detail  # absent means the first
    assert not [e for e in await harness.events("r1") if e["reason"] == "TaskRetrying"]
    # Pending forever is Kubernetes' answer to both: the controller removes the pod itself.
    await harness.wait_until_no_pods("r1", within=60)
    message: str = _status(done)["message"]
    assert message.startswith(f"task '{task}' failed: "), message
    return done


async def test_invalid_image_name_fails_the_task_at_once_with_the_kubelet_message(
    harness: Harness, real_node: str
) -> None:
    tasks = "  bad: {command: [sh, -c, 'exit 0'], image: 'leoflow.dev/Base:1', retries: 3}\n"
    await harness.apply_dag(real_node_dag_yaml("badimage", tasks))
    await harness.start()
    done = await _fails_at_once(harness, "badimage", "bad")
    message = _status(done)["message"]
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
    message = _status(done)["message"]
    assert "ContainerConfigError: main: CreateContainerConfigError" in message
    assert kubelet_says in message

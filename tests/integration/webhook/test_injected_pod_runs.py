"""On the real node, an injected pod truly runs: the init container installs the agent (or the
image already holds it), the wrapped command runs with the agent's variables in its environment,
its output is the container's log and its exit code is the container's.

No controller listens at the injected address, which is the documented degraded mode: the agent
loses its reports but never stops the task from running.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from leoflow.dev import images
from leoflow.dev.node import load_image
from leoflow.dev.testing import ClusterHandle
from tests.integration.realnode import container, real_node_pod, wait_pod

from .conftest import AGENT_IMAGE

pytestmark = [pytest.mark.cluster, pytest.mark.node]


def test_injected_pod_runs_the_wrapped_command_with_its_output_and_exit_code(
    cluster: ClusterHandle, namespace: str, active_webhook: str, agent_binary: Path, real_node: str
) -> None:
    built = load_image(cluster.home, images.agent_spec(agent_binary))
    assert built.tag == AGENT_IMAGE
    # The variables a task reads, which the agent now fills in from the pod's identity volume.
    main = container(
        'echo hello from the task; echo "task=$LEOFLOW_TASK pod=$LEOFLOW_POD_NAME uid=$LEOFLOW_POD_UID'
        ' outputs=$LEOFLOW_OUTPUTS_DIR"; exit 3'
    )
    # The script as args rather than command: the wrapped command line must keep both.
    main["command"], main["args"] = ["sh", "-c"], main["command"][2:]
    manifest = real_node_pod("wrapped", [main], labels={"leoflow.io/inject": "true", "leoflow.io/task": "t"})
    created = json.loads(
        cluster.kubectl("create", "-n", namespace, "-o", "json", "-f", "-", input=json.dumps(manifest)).stdout
    )
    pod = wait_pod(cluster, namespace, "wrapped", within=120)

    assert pod["spec"]["containers"][0]["command"][:3] == ["/leoflow/bin/leoflow-agent", "run", "--"]
    (init,) = pod["status"]["initContainerStatuses"]
    assert init["name"] == "leoflow-agent-init"
    assert init["state"]["terminated"]["exitCode"] == 0
    (main,) = pod["status"]["containerStatuses"]
    assert main["state"]["terminated"]["exitCode"] == 3
    assert pod["status"]["phase"] == "Failed"
    logs = cluster.kubectl("logs", "wrapped", "-c", "main", "-n", namespace).stdout
    assert "hello from the task" in logs
    uid = created["metadata"]["uid"]
    assert f"task=t pod=wrapped uid={uid} outputs=/leoflow/outputs" in logs


def test_guaranteed_pod_installs_the_agent_within_the_init_containers_own_limits(
    cluster: ClusterHandle, namespace: str, active_webhook: str, agent_binary: Path, real_node: str
) -> None:
    load_image(cluster.home, images.agent_spec(agent_binary))
    main = container("echo guaranteed", resources={"limits": {"cpu": "200m", "memory": "64Mi"}})
    labels = {"leoflow.io/inject": "true", "leoflow.io/task": "t"}
    manifest = real_node_pod("guaranteed", [main], labels=labels)
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(manifest))
    pod = wait_pod(cluster, namespace, "guaranteed", within=120)

    assert pod["status"]["qosClass"] == "Guaranteed"
    (init,) = pod["spec"]["initContainers"]
    assert init["resources"]["limits"] == {"cpu": "100m", "memory": "32Mi"}
    (installed,) = pod["status"]["initContainerStatuses"]
    assert installed["state"]["terminated"]["exitCode"] == 0
    (ran,) = pod["status"]["containerStatuses"]
    assert ran["state"]["terminated"]["exitCode"] == 0


def test_pod_whose_image_holds_the_agent_runs_without_an_init_container(
    cluster: ClusterHandle, namespace: str, active_webhook: str, agent_binary: Path, real_node: str
) -> None:
    built = load_image(cluster.home, images.base_with_agent_spec(agent_binary))
    main = container("echo hello from the agent in the image; exit 4", image=built.tag)
    manifest = real_node_pod("in-image", [main], labels={"leoflow.io/inject": "true", "leoflow.io/task": "t"})
    manifest["metadata"]["annotations"] = {"leoflow.io/agent-path": images.AGENT_IN_IMAGE_PATH}
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(manifest))
    pod = wait_pod(cluster, namespace, "in-image", within=120)

    assert pod["spec"]["containers"][0]["command"][:3] == [images.AGENT_IN_IMAGE_PATH, "run", "--"]
    assert "initContainers" not in pod["spec"]
    assert "initContainerStatuses" not in pod["status"]
    (main,) = pod["status"]["containerStatuses"]
    assert main["state"]["terminated"]["exitCode"] == 4
    # The agent's termination message: the image's own agent, not the bare shell, ran the command.
    assert json.loads(main["state"]["terminated"]["message"])["exitCode"] == 4
    assert pod["status"]["phase"] == "Failed"
    logs = cluster.kubectl("logs", "in-image", "-c", "main", "-n", namespace).stdout
    assert "hello from the agent in the image" in logs

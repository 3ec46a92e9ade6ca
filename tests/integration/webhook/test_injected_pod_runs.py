"""On the real node, an injected pod truly runs: the init container installs the agent, the
wrapped command runs, its output is the container's log and its exit code is the container's.

No controller listens at the injected address, which is the documented degraded mode: the agent
loses its reports but never stops the task from running.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from leoflow.dev import images
from leoflow.dev.node import load_image
from leoflow.dev.testing import ClusterHandle

from .conftest import AGENT_IMAGE

pytestmark = [pytest.mark.cluster, pytest.mark.node]



def finished(pod: dict[str, Any]) -> bool:
    return pod.get("status", {}).get("phase") in ("Succeeded", "Failed")


def test_injected_pod_runs_the_wrapped_command_with_its_output_and_exit_code(
    cluster: ClusterHandle, namespace: str, active_webhook: str, agent_binary: Path, real_node: str
) -> None:
    built = load_image(cluster.home, images.agent_spec(agent_binary))
    assert built.tag == AGENT_IMAGE
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "wrapped", "labels": {"leoflow.io/inject": "true", "leoflow.io/task": "t"}},
        "spec": {
            "nodeSelector": {"leoflow.io/node-type": "real"},
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {
                    "name": "main",
                    "image": images.BASE_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c"],
                    "args": ["echo hello from the task; exit 3"],
                }
            ],
        },
    }
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(manifest))
    deadline = time.monotonic() + 120
    while True:
        pod = json.loads(cluster.kubectl("get", "pod", "wrapped", "-n", namespace, "-o", "json").stdout)
        if finished(pod):
            break
        assert time.monotonic() < deadline, json.dumps(pod.get("status"), indent=1)
        time.sleep(0.5)

    assert pod["spec"]["containers"][0]["command"][:3] == ["/leoflow/bin/leoflow-agent", "run", "--"]
    (init,) = pod["status"]["initContainerStatuses"]
    assert init["name"] == "leoflow-agent-init"
    assert init["state"]["terminated"]["exitCode"] == 0
    (main,) = pod["status"]["containerStatuses"]
    assert main["state"]["terminated"]["exitCode"] == 3
    assert pod["status"]["phase"] == "Failed"
    logs = cluster.kubectl("logs", "wrapped", "-c", "main", "-n", namespace).stdout
    assert "hello from the task" in logs

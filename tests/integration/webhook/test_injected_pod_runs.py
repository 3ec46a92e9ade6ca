"""On the real node, an injected pod truly runs: the init container installs the agent, the
wrapped command runs, its output is the container's log and its exit code is the container's.

No controller listens at the injected address, which is the documented degraded mode: the agent
loses its reports but never stops the task from running.

The real node is started by tests/integration/node's session fixture; this test uses it when it
is up (as in a full run, where those tests come first) and skips otherwise.
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

AGENT_BINARY = Path(__file__).resolve().parents[3] / "agent" / "bin" / "leoflow-agent"


def real_node_ready(cluster: ClusterHandle) -> bool:
    listed = cluster.kubectl("get", "nodes", "-l", "leoflow.io/node-type=real", "-o", "json")
    nodes = json.loads(listed.stdout)
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for node in nodes["items"]
        for c in node.get("status", {}).get("conditions", [])
    )


def finished(pod: dict[str, Any]) -> bool:
    return pod.get("status", {}).get("phase") in ("Succeeded", "Failed")


@pytest.mark.skipif(not AGENT_BINARY.is_file(), reason=f"{AGENT_BINARY} not built yet (make agent)")
def test_injected_pod_runs_the_wrapped_command_with_its_output_and_exit_code(
    cluster: ClusterHandle, namespace: str, active_webhook: str
) -> None:
    if not (cluster.has_real_node or real_node_ready(cluster)):
        pytest.skip("no real node is up in this session")
    built = load_image(cluster.home, images.agent_spec(AGENT_BINARY))
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

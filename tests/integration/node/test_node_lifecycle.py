"""start_real_node is idempotent and stop_real_node leaves nothing behind: no process, container,
mount, cgroup or bridge. Uses a second node with its own home against the session's control plane."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from leoflow.dev.binaries import ensure_binaries
from leoflow.dev.containerd import NodePaths
from leoflow.dev.images import BASE_IMAGE
from leoflow.dev.node import NodeEnvironment, NodeError, real_node_pids, start_real_node, stop_real_node
from leoflow.dev.pki import Pki
from leoflow.dev.testing import ClusterHandle

pytestmark = [pytest.mark.cluster, pytest.mark.node]

SECOND_NODE = "leoflow-node-lifecycle"


@pytest.fixture
def short_home() -> Iterator[Path]:
    """pytest's tmp_path is too deep for the kubelet's unix sockets."""
    home = Path(tempfile.mkdtemp(prefix="lf-node-", dir="/tmp"))
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _pids(home: Path) -> dict[str, str]:
    run = NodePaths(home).root / "run"
    return {p.stem: p.read_text() for p in run.glob("*.pid")} if run.exists() else {}


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if text in cmdline and state != "Z":
                found.append(f"{proc.name}: {cmdline}")
    return found


def test_second_start_is_a_no_op_and_stop_removes_processes_mounts_cgroups_and_bridge(
    cluster: ClusterHandle, namespace: str, real_node: str, short_home: Path
) -> None:
    home = short_home
    pki = Pki(cluster.home / "pki")
    env = NodeEnvironment(
        home=home,
        bin_dir=ensure_binaries().kubernetes_dir,
        kubeconfig=cluster.kubeconfig,
        apiserver_url=cluster.state.apiserver_url,
        ca_cert=pki.ca_cert,
        ca_key=pki.ca_key,
        node_name=SECOND_NODE,
        log_dir=home / "logs",
    )
    paths = NodePaths(home)
    try:
        start_real_node(env)
        first_pids = _pids(home)
        assert set(first_pids) == {"containerd", "kubelet"}
        start_real_node(env)
        assert _pids(home) == first_pids

        # A running pod gives the node a sandbox, a network namespace, mounts and cgroups to clean.
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "sleeper"},
            "spec": {
                "nodeName": SECOND_NODE,
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "main",
                        "image": BASE_IMAGE,
                        "imagePullPolicy": "Never",
                        "command": ["sleep", "600"],
                    }
                ],
            },
        }
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(pod))
        deadline = time.monotonic() + 60
        while cluster.kubectl(
            "get", "pod", "sleeper", "-n", namespace, "-o", "jsonpath={.status.phase}"
        ).stdout != ("Running"):
            assert time.monotonic() < deadline, "pod on the second node never ran"
            time.sleep(0.25)
        mountinfo = Path("/proc/self/mountinfo").read_text()
        assert str(paths.root) in mountinfo
    finally:
        stop_real_node(home)
        cluster.kubectl("delete", "node", SECOND_NODE, "--ignore-not-found", check=False)

    assert _processes_mentioning(str(paths.root)) == []
    assert str(paths.root) not in Path("/proc/self/mountinfo").read_text()
    assert not Path(f"/sys/class/net/{paths.bridge}").exists()
    assert not list(Path("/sys/fs/cgroup").glob(f"*/{paths.cgroup_root.lstrip('/')}"))


def test_a_kubelet_that_fails_to_start_is_reported_with_its_error_line_and_cleaned_up(
    cluster: ClusterHandle, short_home: Path
) -> None:
    # A kubelet binary that fails the way a misconfigured one does; containerd is the real one.
    bin_dir = short_home / "bin"
    bin_dir.mkdir()
    broken = bin_dir / "kubelet"
    broken.write_text(
        "#!/bin/sh\n"
        "echo 'I1124 00:00:00.000000 1 server.go:1] \"starting\"'\n"
        'echo \'E1124 00:00:00.000001 1 run.go:72] "command failed" '
        'err="failed to run Kubelet: broken on purpose"\'\n'
        "exit 1\n"
    )
    broken.chmod(0o755)
    pki = Pki(cluster.home / "pki")
    env = NodeEnvironment(
        home=short_home,
        bin_dir=bin_dir,
        kubeconfig=cluster.kubeconfig,
        apiserver_url=cluster.state.apiserver_url,
        ca_cert=pki.ca_cert,
        ca_key=pki.ca_key,
        node_name="leoflow-node-broken",
        log_dir=short_home / "logs",
    )
    with pytest.raises(NodeError, match="broken on purpose") as failure:
        start_real_node(env)
    assert "kubelet exited during start-up" in str(failure.value)
    assert "starting" not in str(failure.value)
    assert real_node_pids(short_home) == {"containerd": None, "kubelet": None}
    assert _processes_mentioning(str(NodePaths(short_home).root)) == []

"""The local control plane behaves like a real cluster: scheduling, KWOK lifecycles, GC, namespaces."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from leoflow.dev import cluster, etcdspace, kwok
from leoflow.dev.processes import Layout, pid_of, port_in_use
from leoflow.dev.testing import ClusterHandle

pytestmark = pytest.mark.cluster


def simulated_pod(name: str, annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            **kwok.simulated_pod_placement(),
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "leoflow.dev/base:1"}],
        },
    }


async def wait_for_pod(
    core: client.CoreV1Api, namespace: str, name: str, done: Any, within: float = 30
) -> Any:
    deadline = time.monotonic() + within
    while True:
        pod = await core.read_namespaced_pod(name, namespace)
        if done(pod):
            return pod
        if time.monotonic() > deadline:
            raise AssertionError(f"pod {name} never reached the expected state: {pod.status}")
        await asyncio.sleep(0.2)


async def test_kwok_pod_is_scheduled_and_succeeds(kube: Any, namespace: str) -> None:
    core = client.CoreV1Api(kube)
    await core.create_namespaced_pod(
        namespace, simulated_pod("ok", {"kwok.leoflow.io/succeed-after": "500ms"})
    )
    pod = await wait_for_pod(core, namespace, "ok", lambda p: p.status.phase == "Succeeded")
    assert pod.spec.node_name.startswith("kwok-"), "the kube-scheduler placed it on a KWOK node"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0


@pytest.mark.parametrize(
    ("reason", "exit_code"), [("Error", "3"), ("OOMKilled", "137")], ids=["user-error", "oom"]
)
async def test_kwok_pod_fails_with_requested_reason_and_exit_code(
    kube: Any, namespace: str, reason: str, exit_code: str
) -> None:
    core = client.CoreV1Api(kube)
    annotations = {
        "kwok.leoflow.io/fail-after": "300ms",
        "kwok.leoflow.io/fail-reason": reason,
        "kwok.leoflow.io/exit-code": exit_code,
    }
    await core.create_namespaced_pod(namespace, simulated_pod("bad", annotations))
    pod = await wait_for_pod(core, namespace, "bad", lambda p: p.status.phase == "Failed")
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.reason, terminated.exit_code) == (reason, int(exit_code))


async def test_kwok_pod_sits_in_image_pull_backoff(kube: Any, namespace: str) -> None:
    core = client.CoreV1Api(kube)
    await core.create_namespaced_pod(
        namespace, simulated_pod("pull", {"kwok.leoflow.io/image-pull": "ImagePullBackOff"})
    )
    pod = await wait_for_pod(core, namespace, "pull", lambda p: bool(p.status.container_statuses))
    assert pod.status.phase == "Pending"
    assert pod.status.container_statuses[0].state.waiting.reason == "ImagePullBackOff"


async def test_deleting_owner_garbage_collects_its_pods(kube: Any, namespace: str) -> None:
    core = client.CoreV1Api(kube)
    owner = await core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    pod = simulated_pod("owned", {})
    pod["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    ]
    await core.create_namespaced_pod(namespace, pod)
    await core.delete_namespaced_config_map("owner", namespace)
    deadline = time.monotonic() + 60
    while (await core.list_namespaced_pod(namespace)).items:
        assert time.monotonic() < deadline, "the garbage collector never deleted the owned pod"
        await asyncio.sleep(0.2)


async def test_deleting_a_namespace_completes(kube: Any, cluster: ClusterHandle) -> None:
    core = client.CoreV1Api(kube)
    doomed = f"doomed-{uuid.uuid4().hex[:6]}"
    cluster.create_namespace(doomed)
    await core.create_namespaced_pod(doomed, simulated_pod("p", {}))
    await core.delete_namespace(doomed)
    deadline = time.monotonic() + 90
    while any(ns.metadata.name == doomed for ns in (await core.list_namespace()).items):
        assert time.monotonic() < deadline, "namespace deletion never completed"
        await asyncio.sleep(0.5)


async def test_thousand_kwok_pods_all_complete(kube: Any, namespace: str) -> None:
    core = client.CoreV1Api(kube)
    limit = asyncio.Semaphore(32)

    async def create(i: int) -> None:
        async with limit:
            await core.create_namespaced_pod(
                namespace, simulated_pod(f"p-{i}", {"kwok.leoflow.io/succeed-after": "100ms"})
            )

    await asyncio.gather(*(create(i) for i in range(1000)))
    deadline = time.monotonic() + 300
    while True:
        pods = (await core.list_namespaced_pod(namespace)).items
        succeeded = sum(p.status.phase == "Succeeded" for p in pods)
        if succeeded == 1000:
            break
        assert time.monotonic() < deadline, f"only {succeeded}/1000 pods completed"
        await asyncio.sleep(1)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leoflow", *args], capture_output=True, text=True, timeout=300, check=False
    )


def test_dev_down_leaves_no_process_or_port(tmp_path: Path) -> None:
    home = tmp_path / "second"
    result = run_cli("dev", "up", "--home", str(home), "--kwok-nodes", "1", "--no-real-node")
    assert result.returncode == 0, result.stderr
    state = cluster.ClusterState.load(home)
    assert state is not None
    pids = [pid_of(Layout(home), name) for name in cluster.CONTROL_PLANE]
    assert all(pids), f"not everything started: {pids}"

    again = run_cli("dev", "up", "--home", str(home), "--kwok-nodes", "1", "--no-real-node")
    assert again.returncode == 0, "up twice is safe"
    assert [pid_of(Layout(home), name) for name in cluster.CONTROL_PLANE] == pids, "up twice restarted"

    down = run_cli("dev", "down", "--home", str(home))
    assert down.returncode == 0, down.stderr
    assert all(pid_of(Layout(home), name) is None for name in cluster.CONTROL_PLANE)
    assert not [p for p in state.ports.values() if port_in_use(p)]
    for pid in pids:
        assert pid is not None
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_occupied_apiserver_port_is_a_clear_error(cluster: ClusterHandle, tmp_path: Path) -> None:
    taken = cluster.state.ports.apiserver
    result = run_cli("dev", "up", "--home", str(tmp_path / "clash"), "--apiserver-port", str(taken))
    assert result.returncode == 1
    assert f"127.0.0.1:{taken} is already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_flag_is_a_usage_error_not_a_traceback() -> None:
    result = run_cli("dev", "up", "--kwok-nodes", "many")
    assert result.returncode == 2
    assert "--kwok-nodes: expected a whole number, got 'many'" in result.stderr
    assert "Traceback" not in result.stderr


def test_kubeconfig_prints_the_admin_kubeconfig_path(cluster: ClusterHandle) -> None:
    result = run_cli("dev", "kubeconfig", "--home", str(cluster.home))
    assert result.returncode == 0
    config = Path(result.stdout.strip())
    assert config == cluster.kubeconfig
    assert json.loads(cluster.kubectl("get", "--raw", "/version").stdout)["gitVersion"].startswith("v1.")


def _etcd_alarm(handle: ClusterHandle, action: str) -> None:
    base = f"http://127.0.0.1:{handle.state.ports.etcd}"
    member = etcdspace.call(base, "/v3/maintenance/status", {})["header"]["member_id"]
    etcdspace.call(base, "/v3/maintenance/alarm", {"action": action, "memberID": member, "alarm": "NOSPACE"})


def test_up_lifts_an_etcd_space_alarm_so_a_long_lived_cluster_takes_writes_again(
    cluster: ClusterHandle,
) -> None:
    name = f"space-{uuid.uuid4().hex[:6]}"
    _etcd_alarm(cluster, "ACTIVATE")
    try:
        refused = cluster.kubectl("create", "configmap", name, "-n", "default", check=False)
        assert "database space exceeded" in refused.stderr
        apiserver = pid_of(Layout(cluster.home), "kube-apiserver")
        result = run_cli("dev", "up", "--home", str(cluster.home))
        assert result.returncode == 0, result.stderr
        assert pid_of(Layout(cluster.home), "kube-apiserver") == apiserver, "kept, not restarted"
        cluster.kubectl("create", "configmap", name, "-n", "default")
    finally:
        _etcd_alarm(cluster, "DEACTIVATE")
        cluster.kubectl("delete", "configmap", name, "-n", "default", "--ignore-not-found", check=False)

"""Pods on the real node truly run: logs, exit codes, OOM kills, pull errors, init containers,
graceful deletion and termination messages all come from the kubelet and runc, not a simulation."""

from __future__ import annotations

import functools
import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from leoflow.dev import images
from leoflow.dev.containerd import NodePaths
from leoflow.dev.node import cri_answers, load_image
from leoflow.dev.testing import ClusterHandle
from tests.integration.realnode import Pod, container, finished, real_node_pod, wait_pod

pytestmark = [pytest.mark.cluster, pytest.mark.node]

# Node tests run without the default ServiceAccount token: nothing here talks to the API.
pod_manifest = functools.partial(real_node_pod, automountServiceAccountToken=False)


def create(cluster: ClusterHandle, namespace: str, manifest: Pod) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))


def main_state(pod: Pod) -> dict[str, Any]:
    statuses = pod["status"].get("containerStatuses", [])
    state: dict[str, Any] = next(s for s in statuses if s["name"] == "main")["state"]
    return state


def test_shell_command_runs_and_its_logs_are_readable_through_the_api(
    cluster: ClusterHandle, namespace: str, real_node: str
) -> None:
    create(
        cluster, namespace, pod_manifest("echo", [container("echo hello from $(hostname); echo line two")])
    )
    pod = wait_pod(cluster, namespace, "echo", done=finished, what="finished")
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["spec"]["nodeName"] == real_node
    logs = cluster.kubectl("logs", "echo", "-n", namespace).stdout
    assert logs == "hello from echo\nline two\n"


def test_exit_code_3_shows_as_terminated_exit_code_and_phase_failed(
    cluster: ClusterHandle, namespace: str, real_node: str
) -> None:
    create(cluster, namespace, pod_manifest("exit3", [container("echo failing; exit 3")]))
    pod = wait_pod(cluster, namespace, "exit3", done=finished, what="finished")
    assert pod["status"]["phase"] == "Failed"
    terminated = main_state(pod)["terminated"]
    assert terminated["exitCode"] == 3
    assert terminated["reason"] == "Error"


def test_container_over_its_memory_limit_is_oom_killed(
    cluster: ClusterHandle, namespace: str, real_node: str
) -> None:
    # `tail` keeps the last lines of a stream; /dev/zero has no newline, so it buffers without end.
    hog = container("tail /dev/zero", resources={"limits": {"memory": "32Mi"}})
    create(cluster, namespace, pod_manifest("hog", [hog]))
    pod = wait_pod(cluster, namespace, "hog", done=finished, what="finished")
    terminated = main_state(pod)["terminated"]
    assert terminated["reason"] == "OOMKilled"
    assert terminated["exitCode"] == 137
    assert pod["status"]["phase"] == "Failed"


def test_missing_image_gives_err_image_pull_and_no_network_pull(
    cluster: ClusterHandle, namespace: str, real_node: str
) -> None:
    missing = {
        **container("true"),
        "image": "leoflow.dev/does-not-exist:1",
        "imagePullPolicy": "IfNotPresent",
    }
    create(cluster, namespace, pod_manifest("missing", [missing]))

    def pull_failed(pod: Pod) -> bool:
        statuses = pod.get("status", {}).get("containerStatuses", [])
        reason = statuses[0]["state"].get("waiting", {}).get("reason") if statuses else None
        return reason in ("ErrImagePull", "ImagePullBackOff")

    pod = wait_pod(cluster, namespace, "missing", done=pull_failed, what="ErrImagePull/ImagePullBackOff")
    waiting = main_state(pod)["waiting"]
    assert (
        "leoflow.dev/does-not-exist:1" in waiting.get("message", "")
        or waiting["reason"] == "ImagePullBackOff"
    )
    events = cluster.kubectl(
        "get", "events", "-n", namespace, "--field-selector", "involvedObject.name=missing", "-o", "json"
    ).stdout
    messages = " ".join(e.get("message", "") for e in json.loads(events)["items"])
    assert "failed to pull" in messages.lower() or "failed to resolve" in messages.lower()


def test_init_containers_run_before_containers_and_share_an_empty_dir(
    cluster: ClusterHandle, namespace: str, real_node: str
) -> None:
    mount = [{"name": "work", "mountPath": "/work"}]
    manifest = pod_manifest(
        "init",
        [container("echo main >> /work/order; cat /work/order", volumeMounts=mount)],
        initContainers=[
            container("echo first >> /work/order", name="first", volumeMounts=mount),
            container("echo second >> /work/order", name="second", volumeMounts=mount),
        ],
        volumes=[{"name": "work", "emptyDir": {}}],
    )
    create(cluster, namespace, manifest)
    pod = wait_pod(cluster, namespace, "init", done=finished, what="finished")
    assert pod["status"]["phase"] == "Succeeded"
    assert cluster.kubectl("logs", "init", "-c", "main", "-n", namespace).stdout == "first\nsecond\nmain\n"
    inits = pod["status"]["initContainerStatuses"]
    assert [s["state"]["terminated"]["exitCode"] for s in inits] == [0, 0]


def test_deleted_running_pod_gets_sigterm_then_sigkill_after_its_grace_period(
    cluster: ClusterHandle, namespace: str, real_node: str, tmp_path: Path
) -> None:
    out = tmp_path / "signals"
    out.mkdir()
    # The trap records SIGTERM and carries on ticking: only SIGKILL can end this container.
    script = (
        "trap 'echo TERM >> /out/events' TERM; echo started >> /out/events; "
        "while :; do echo tick >> /out/events; sleep 0.2; done"
    )
    manifest = pod_manifest(
        "stubborn",
        [container(script, volumeMounts=[{"name": "out", "mountPath": "/out"}])],
        volumes=[{"name": "out", "hostPath": {"path": str(out), "type": "Directory"}}],
        terminationGracePeriodSeconds=3,
    )
    create(cluster, namespace, manifest)
    wait_pod(
        cluster, namespace, "stubborn", done=lambda p: p["status"].get("phase") == "Running", what="Running"
    )
    events_file = out / "events"
    deadline = time.monotonic() + 30
    while "tick" not in (events_file.read_text() if events_file.exists() else ""):
        assert time.monotonic() < deadline, "container never started ticking"
        time.sleep(0.1)

    cluster.kubectl("delete", "pod", "stubborn", "-n", namespace, "--wait=true", "--timeout=60s")

    events = events_file.read_text().split()
    assert "TERM" in events, f"no SIGTERM recorded: {events}"
    after_term = events[events.index("TERM") + 1 :]
    assert "tick" in after_term, "the container stopped on SIGTERM although it ignores it"
    settled = events_file.read_text()
    time.sleep(1)
    assert events_file.read_text() == settled, "the container still runs after the pod was deleted"


def test_termination_message_written_by_the_container_appears_in_the_status(
    cluster: ClusterHandle, namespace: str, real_node: str
) -> None:
    write = container("echo 'task result: 42' > /dev/termination-log; exit 1")
    create(cluster, namespace, pod_manifest("message", [write]))
    pod = wait_pod(cluster, namespace, "message", done=finished, what="finished")
    terminated = main_state(pod)["terminated"]
    assert terminated["message"] == "task result: 42\n"
    assert terminated["exitCode"] == 1


def test_pod_network_has_no_route_out_of_the_machine(
    cluster: ClusterHandle, namespace: str, real_node: str
) -> None:
    probe = container(
        "ip route; if ip route | grep -q default; then exit 10; fi; ping -c 1 -W 1 192.0.2.1 2>&1; true"
    )
    create(cluster, namespace, pod_manifest("netprobe", [probe]))
    pod = wait_pod(cluster, namespace, "netprobe", done=finished, what="finished")
    logs = cluster.kubectl("logs", "netprobe", "-n", namespace).stdout
    assert pod["status"]["phase"] == "Succeeded", logs
    assert "Network is unreachable" in logs


def test_image_built_from_a_directory_runs_on_the_real_node(
    cluster: ClusterHandle, namespace: str, real_node: str, tmp_path: Path
) -> None:
    context = tmp_path / "ctx"
    (context / "app").mkdir(parents=True)
    (context / "app" / "task.sh").write_text("echo task ran with $GREETING\n")
    spec = images.ImageSpec(
        tag=f"leoflow.dev/test-{namespace[-6:]}:1",
        files={**images.busybox_files(), **images.files_from_directory(context)},
        cmd=("sh", "/app/task.sh"),
        env=(images.PATH_ENV, "GREETING=hello"),
    )
    built = load_image(cluster.home, spec)
    manifest = pod_manifest("fromdir", [{"name": "main", "image": built.tag, "imagePullPolicy": "Never"}])
    create(cluster, namespace, manifest)
    pod = wait_pod(cluster, namespace, "fromdir", done=finished, what="finished")
    assert pod["status"]["phase"] == "Succeeded"
    assert cluster.kubectl("logs", "fromdir", "-n", namespace).stdout == "task ran with hello\n"


def test_agent_image_installs_the_agent_into_a_shared_volume(
    cluster: ClusterHandle, namespace: str, real_node: str, agent_binary: Path
) -> None:
    built = load_image(cluster.home, images.agent_spec(agent_binary))
    mount = [{"name": "agent", "mountPath": "/opt/leoflow"}]
    install = {
        "name": "install",
        "image": built.tag,
        "imagePullPolicy": "Never",
        "command": ["/leoflow-agent", "install", "/opt/leoflow"],
        "volumeMounts": mount,
    }
    manifest = pod_manifest(
        "agent",
        [container("test -x /opt/leoflow/leoflow-agent && echo installed", volumeMounts=mount)],
        initContainers=[install],
        volumes=[{"name": "agent", "emptyDir": {}}],
    )
    create(cluster, namespace, manifest)
    pod = wait_pod(cluster, namespace, "agent", done=finished, what="finished")
    assert pod["status"]["phase"] == "Succeeded", json.dumps(pod["status"], indent=1)
    assert cluster.kubectl("logs", "agent", "-n", namespace).stdout == "installed\n"


@pytest.fixture
def host_server() -> Iterator[Callable[[str], int]]:
    """Starts tiny HTTP servers on the host (the test process) at a given address; returns the port."""
    servers: list[http.server.HTTPServer] = []

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"hello from the host\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    def serve(address: str) -> int:
        server = http.server.HTTPServer((address, 0), Hello)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return int(server.server_address[1])

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_host_network_pod_reaches_a_server_on_the_host_loopback(
    cluster: ClusterHandle, namespace: str, real_node: str, host_server: Callable[[str], int]
) -> None:
    port = host_server("127.0.0.1")
    fetch = container(f"timeout 20 wget -q -O - http://127.0.0.1:{port}/")
    create(cluster, namespace, pod_manifest("hostnet", [fetch], hostNetwork=True))
    pod = wait_pod(cluster, namespace, "hostnet", done=finished, what="finished")
    logs = cluster.kubectl("logs", "hostnet", "-n", namespace).stdout
    assert pod["status"]["phase"] == "Succeeded", logs
    assert logs == "hello from the host\n"


def test_pod_network_pod_reaches_a_host_server_on_the_node_address(
    cluster: ClusterHandle, namespace: str, real_node: str, host_server: Callable[[str], int]
) -> None:
    node = json.loads(cluster.kubectl("get", "node", real_node, "-o", "json").stdout)
    node_ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    port = host_server(node_ip)
    fetch = container(f"timeout 20 wget -q -O - http://{node_ip}:{port}/")
    create(cluster, namespace, pod_manifest("podnet", [fetch]))
    pod = wait_pod(cluster, namespace, "podnet", done=finished, what="finished")
    logs = cluster.kubectl("logs", "podnet", "-n", namespace).stdout
    assert pod["status"]["phase"] == "Succeeded", logs
    assert logs == "hello from the host\n"
    assert pod["status"]["podIP"] != node_ip


def test_containerds_cri_answers_as_the_kubelet_first_asks_and_a_missing_socket_does_not(
    cluster: ClusterHandle, real_node: str, tmp_path: Path
) -> None:
    # The start waits for this answer, not only ctr's, before it starts the kubelet.
    assert cri_answers(NodePaths(cluster.home).socket)
    assert not cri_answers(tmp_path / "no-containerd.sock", timeout=0.5)

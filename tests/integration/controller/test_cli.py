"""``leoflow controller run`` as a process and ``leoflow trigger``: a triggered run completes,
the health endpoints answer, SIGTERM stops it cleanly and a SIGKILL loses nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from leoflow.dev.processes import free_port
from leoflow.dev.testing import ClusterHandle
from leoflow.spec.compiler import compile_text
from tests.integration.controller.conftest import dag_yaml

CHAIN = (
    "  extract: {command: [extract]}\n"
    "  transform: {after: [extract], command: [transform]}\n"
    "  load: {after: [transform], command: [load]}\n"
)


def _leoflow(cluster: ClusterHandle, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leoflow", *args, "--kubeconfig", str(cluster.kubeconfig)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class ControllerProcess:
    def __init__(self, cluster: ClusterHandle, namespace: str, log: Path, *extra: str) -> None:
        self.port = free_port()
        argv = [
            sys.executable, "-m", "leoflow", "controller", "run",
            "--kubeconfig", str(cluster.kubeconfig), "--namespace", namespace,
            "--no-leader-elect", "--no-agent-server", "--metrics-address", f"127.0.0.1:{self.port}",
            *extra,
        ]  # fmt: skip
        self.log = log
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log.open("a"))

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, ""
        except OSError:
            return 0, ""

    def wait_ready(self, within: float = 60) -> None:
        deadline = time.monotonic() + within
        while self.get("/readyz")[0] != 200:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"controller never became ready:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=30)


@pytest.fixture
def processes() -> Iterator[list[ControllerProcess]]:
    started: list[ControllerProcess] = []
    yield started
    for process in started:
        process.stop(signal.SIGKILL)


def _run(cluster: ClusterHandle, namespace: str, name: str) -> dict[str, object]:
    out = cluster.kubectl("get", "dagrun", name, "-n", namespace, "-o", "json").stdout
    data: dict[str, object] = json.loads(out)
    return data


def _wait_status(cluster: ClusterHandle, namespace: str, name: str, key: str, *values: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        status = _run(cluster, namespace, name).get("status") or {}
        assert isinstance(status, dict)
        if status.get(key) in values:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"run {name}: {key} never became one of {values}; status {status}")
        time.sleep(0.3)


def _apply(cluster: ClusterHandle, namespace: str, text: str) -> None:
    resource = compile_text(text).resource(namespace)
    cluster.kubectl("apply", "-f", "-", input=json.dumps(resource))


def test_triggered_run_completes_under_the_controller_process(
    crds: ClusterHandle, namespace: str, processes: list[ControllerProcess], tmp_path: Path
) -> None:
    text = dag_yaml("chain", CHAIN).replace("tasks:", "params: {day: {default: today}}\ntasks:")
    _apply(crds, namespace, text)
    controller = ControllerProcess(
        crds,
        namespace,
        tmp_path / "controller.log",
        "--pod-annotation",
        "kwok.leoflow.io/succeed-after=200ms",
    )
    processes.append(controller)
    controller.wait_ready()
    triggered = _leoflow(crds, "trigger", "chain", "-n", namespace, "--param", "day=monday")
    assert triggered.returncode == 0, triggered.stderr
    name = triggered.stdout.strip()
    assert name.startswith("chain-")
    assert _run(crds, namespace, name)["spec"] == {"dagName": "chain", "params": {"day": "monday"}}
    _wait_status(crds, namespace, name, "phase", "Succeeded")
    status, metrics = controller.get("/metrics")
    assert status == 200
    assert 'leoflow_pods_created_total{result="created"} 3.0' in metrics
    assert controller.get("/healthz")[0] == 200
    assert controller.stop(signal.SIGTERM) == 0


def test_trigger_refuses_an_unknown_param_and_a_missing_dag(crds: ClusterHandle, namespace: str) -> None:
    _apply(crds, namespace, dag_yaml("chain", CHAIN))
    unknown = _leoflow(crds, "trigger", "chain", "-n", namespace, "--param", "dya=monday")
    assert unknown.returncode == 2
    assert "DAG 'chain' has no param dya (its params: none)" in unknown.stderr
    missing = _leoflow(crds, "trigger", "nowhere", "-n", namespace)
    assert missing.returncode == 1
    assert "DAG 'nowhere' not found" in missing.stderr


def test_sigkilled_controller_restarted_completes_the_run_without_duplicate_pods(
    crds: ClusterHandle, namespace: str, processes: list[ControllerProcess], tmp_path: Path
) -> None:
    _apply(crds, namespace, dag_yaml("chain", CHAIN))
    args = ("--cleanup", "keep-all", "--pod-annotation", "kwok.leoflow.io/succeed-after=5s")
    first = ControllerProcess(crds, namespace, tmp_path / "first.log", *args)
    processes.append(first)
    first.wait_ready()
    crds.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps({
        "apiVersion": "leoflow.io/v1alpha1", "kind": "DAGRun",
        "metadata": {"name": "r1"}, "spec": {"dagName": "chain"},
    }))  # fmt: skip
    _wait_status(crds, namespace, "r1", "taskStates", "Sr.", "Sq.")
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    second = ControllerProcess(crds, namespace, tmp_path / "second.log", *args)
    processes.append(second)
    _wait_status(crds, namespace, "r1", "phase", "Succeeded")
    pods = json.loads(
        crds.kubectl("get", "pods", "-n", namespace, "-l", "leoflow.io/run=r1", "-o", "json").stdout
    )
    per_task = Counter(p["metadata"]["labels"]["leoflow.io/task"] for p in pods["items"])
    assert per_task == {"extract": 1, "transform": 1, "load": 1}
    assert all("leoflow.io/result" not in (p["metadata"].get("finalizers") or []) for p in pods["items"])
    second.stop()

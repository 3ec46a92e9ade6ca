"""Kubernetes and DAG-run sensors against the real local control plane."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from leoflow.controller.sensors import (
    CommandRequest,
    Outcome,
    Reason,
    Result,
    SensorEngine,
    SensorMetrics,
    SensorState,
    WatchHub,
)
from leoflow.controller.sensors.definitions import SnapshotTaskIndex
from leoflow.controller.sensors.pods import PodCommandLauncher
from leoflow.dev import kwok
from leoflow.dev.cluster import install_crds
from leoflow.dev.testing import ClusterHandle
from leoflow.spec.compiler import compile_text
from leoflow.spec.resources import API_VERSION, CompiledSensor
from leoflow.spec.snapshots import snapshot_configmap
from tests.integration.sensors.objects import kwok_job
from tests.unit.sensors.manual_clock import until

pytestmark = pytest.mark.cluster


class Recorder:
    def __init__(self) -> None:
        self.outcomes: dict[str, Outcome] = {}

    def __call__(self, key: str, outcome: Outcome) -> None:
        self.outcomes[key] = outcome


@pytest.fixture
async def sensors(kube: Any) -> AsyncIterator[tuple[SensorEngine, WatchHub, Recorder]]:
    hub = WatchHub(kube)
    done = Recorder()
    engine = SensorEngine(
        done, metrics=SensorMetrics(CollectorRegistry()), watches=hub, task_index=SnapshotTaskIndex(kube)
    )
    await engine.start()
    yield engine, hub, done
    await engine.close()
    await hub.close()


def kubernetes_sensor(**fields: Any) -> CompiledSensor:
    return CompiledSensor.model_validate({"kubernetes": fields, "timeoutSeconds": 120})


def apply(cluster: ClusterHandle, namespace: str, obj: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(obj))


async def test_configmap_key_appearing_satisfies_a_sensor(
    cluster: ClusterHandle, namespace: str, sensors: tuple[SensorEngine, WatchHub, Recorder]
) -> None:
    engine, _, done = sensors
    spec = kubernetes_sensor(apiVersion="v1", kind="ConfigMap", name="signal", jsonPath="data['ready.flag']")
    engine.add("run/wait", spec, namespace)
    cluster.kubectl("create", "configmap", "signal", "-n", namespace, "--from-literal=other=1")
    await until(lambda: engine.state("run/wait").attempts >= 1, "the sensor saw the ConfigMap")  # type: ignore[union-attr]
    assert done.outcomes == {}, "a ConfigMap without the key does not satisfy it"
    cluster.kubectl("patch", "configmap", "signal", "-n", namespace, "-p", '{"data": {"ready.flag": "go"}}')
    await until(lambda: "run/wait" in done.outcomes, "the key appeared")
    assert done.outcomes["run/wait"].result is Result.SATISFIED
    assert done.outcomes["run/wait"].value == "go"


async def test_job_completing_on_kwok_satisfies_a_sensor(
    cluster: ClusterHandle, namespace: str, sensors: tuple[SensorEngine, WatchHub, Recorder]
) -> None:
    engine, _, done = sensors
    engine.add(
        "run/job",
        kubernetes_sensor(apiVersion="batch/v1", kind="Job", name="work", condition="Complete"),
        namespace,
    )
    job = kwok_job("work", succeed_after="1s")
    apply(cluster, namespace, job)
    await until(lambda: "run/job" in done.outcomes, "the Job completed", limit=90)
    assert done.outcomes["run/job"].result is Result.SATISFIED


async def test_sensors_on_one_resource_type_share_one_watch(
    cluster: ClusterHandle, namespace: str, sensors: tuple[SensorEngine, WatchHub, Recorder]
) -> None:
    engine, hub, done = sensors
    for name in ("first", "second", "third"):
        engine.add(f"run/{name}", kubernetes_sensor(apiVersion="v1", kind="ConfigMap", name=name), namespace)
    for name in ("first", "second", "third"):
        cluster.kubectl("create", "configmap", name, "-n", namespace)
    await until(lambda: len(done.outcomes) == 3, "all three ConfigMaps seen")
    assert hub.watches_opened == 1
    assert hub.open_watches == 0, "the watch stopped with its last sensor"


async def test_sensor_added_after_the_object_exists_is_satisfied_from_the_cache(
    cluster: ClusterHandle, namespace: str, sensors: tuple[SensorEngine, WatchHub, Recorder]
) -> None:
    engine, hub, done = sensors
    cluster.kubectl("create", "configmap", "early", "-n", namespace, "--from-literal=k=v")
    engine.add("run/keep", kubernetes_sensor(apiVersion="v1", kind="ConfigMap", name="never"), namespace)
    engine.add("run/early", kubernetes_sensor(apiVersion="v1", kind="ConfigMap", name="early"), namespace)
    await until(lambda: "run/early" in done.outcomes, "satisfied by the listed object")
    state = engine.state("run/keep")
    assert state is not None
    engine.resume(
        "run/late", kubernetes_sensor(apiVersion="v1", kind="ConfigMap", name="early"), namespace, state
    )
    await until(lambda: "run/late" in done.outcomes, "a resumed sensor sees the cached object")
    assert hub.watches_opened == 1


async def test_unknown_kind_fails_the_sensor_with_a_reason(
    namespace: str, sensors: tuple[SensorEngine, WatchHub, Recorder]
) -> None:
    engine, _, done = sensors
    engine.add("run/nope", kubernetes_sensor(apiVersion="v1", kind="Widget", name="w"), namespace)
    engine.add(
        "run/gone", kubernetes_sensor(apiVersion="nowhere.example/v1", kind="Widget", name="w"), namespace
    )
    await until(lambda: len(done.outcomes) == 2, "both failed")
    assert done.outcomes["run/nope"].reason is Reason.PERMANENT_ERROR
    assert "kind Widget does not exist in v1" in done.outcomes["run/nope"].message
    assert "not served" in done.outcomes["run/gone"].message


async def test_resumed_sensor_times_out_from_its_original_start(
    namespace: str, sensors: tuple[SensorEngine, WatchHub, Recorder]
) -> None:
    engine, _, done = sensors
    started = time.time() - 200
    spec = CompiledSensor.model_validate(
        {
            "kubernetes": {"apiVersion": "v1", "kind": "ConfigMap", "name": "x"},
            "timeoutSeconds": 100,
            "softFail": True,
        }
    )
    engine.resume("run/old", spec, namespace, SensorState(started, started))
    await until(lambda: "run/old" in done.outcomes, "timed out at once")
    assert (done.outcomes["run/old"].result, done.outcomes["run/old"].reason) == (
        Result.SKIPPED,
        Reason.TIMED_OUT,
    )


DAG_FILE = """
dag: upstream
image: leoflow.dev/base:1
tasks:
  extract:
    command: [sh, -c, "true"]
  load:
    command: [sh, -c, "true"]
    after: [extract]
"""


async def test_dag_run_and_task_state_sensors(
    cluster: ClusterHandle, namespace: str, sensors: tuple[SensorEngine, WatchHub, Recorder]
) -> None:
    engine, hub, done = sensors
    install_crds(cluster.state)
    dag = compile_text(DAG_FILE)
    apply(cluster, namespace, snapshot_configmap("upstream", dag.spec))
    date = "2026-01-01T00:00:00Z"

    def run_sensor(**fields: Any) -> CompiledSensor:
        return CompiledSensor.model_validate({"dagRun": {"dag": "upstream", "logicalDate": date, **fields}})

    engine.add("down/run", run_sensor(), namespace)
    engine.add("down/load", run_sensor(task="load"), namespace)
    engine.add("down/other-date", run_sensor(), namespace)
    engine.remove("down/other-date")
    run = {
        "apiVersion": API_VERSION,
        "kind": "DAGRun",
        "metadata": {"name": "upstream-1", "labels": {"leoflow.io/dag": "upstream"}},
        "spec": {"dagName": "upstream", "logicalDate": date},
    }
    apply(cluster, namespace, run)
    load = dag.spec.task_index()["load"]
    states = ["r", "r"]
    states[load] = "."

    def set_status(phase: str, codes: list[str]) -> None:
        status = {
            "status": {
                "phase": phase,
                "definitionHash": dag.spec.definitionHash,
                "taskStates": "".join(codes),
            }
        }
        cluster.kubectl(
            "patch",
            "dagrun",
            "upstream-1",
            "-n",
            namespace,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps(status),
        )

    set_status("Running", states)
    await until(lambda: engine.state("down/load").attempts >= 1, "the task sensor saw the run")  # type: ignore[union-attr]
    assert done.outcomes == {}
    states = ["S", "S"]
    set_status("Running", states)
    await until(lambda: "down/load" in done.outcomes, "the task succeeded")
    assert "down/run" not in done.outcomes
    set_status("Succeeded", states)
    await until(lambda: "down/run" in done.outcomes, "the run succeeded")
    assert done.outcomes["down/run"].value == "upstream-1"
    assert hub.watches_opened == 1


async def test_command_sensor_runs_a_pod_per_poke_until_exit_zero(
    cluster: ClusterHandle, namespace: str, kube: Any
) -> None:
    hub = WatchHub(kube)
    done = Recorder()

    def build_pod(request: CommandRequest) -> dict[str, Any]:
        fate = (
            {"kwok.leoflow.io/fail-after": "300ms", "kwok.leoflow.io/exit-code": "3"}
            if request.attempt == 1
            else {"kwok.leoflow.io/succeed-after": "300ms"}
        )
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"probe-{request.attempt}", "annotations": fate},
            "spec": {
                **kwok.simulated_pod_placement(),
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "main",
                        "image": "leoflow.dev/base:1",
                        "command": [*request.command, *request.args],
                    }
                ],
            },
        }

    engine = SensorEngine(
        done,
        metrics=SensorMetrics(CollectorRegistry()),
        watches=hub,
        commands=PodCommandLauncher(kube, hub, build_pod),
    )
    await engine.start()
    try:
        spec = CompiledSensor.model_validate(
            {
                "command": {"command": ["test", "-e", "/ready"]},
                "pokeIntervalSeconds": 1,
                "timeoutSeconds": 120,
            }
        )
        engine.add("run/probe", spec, namespace)
        await until(lambda: "run/probe" in done.outcomes, "the second pod exited 0", limit=60)
        outcome = done.outcomes["run/probe"]
        assert (outcome.result, outcome.attempts) == (Result.SATISFIED, 2)
        assert hub.open_watches == 0, "the pod watch ends with the last poke"
        pods = json.loads(cluster.kubectl("get", "pods", "-n", namespace, "-o", "json").stdout)["items"]
        assert all(pod["metadata"].get("deletionTimestamp") for pod in pods), "finished poke pods are deleted"
    finally:
        await engine.close()
        await hub.close()

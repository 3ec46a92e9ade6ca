"""Each kind of sensor task, end to end through the controller: a DAGRun waits on it and goes on.

The controller runs in the test process (the Harness), so an aiohttp server on 127.0.0.1 is what
its HTTP sensors reach; Kubernetes, DAG-run and command sensors use the real local control
plane, and pods (a Job's, a command sensor's pokes) run on the KWOK nodes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from leoflow.controller.sensortasks import POKE_LABEL
from tests.integration.controller.conftest import SUCCEED, Harness, KwokScript, dag_yaml, fail, run_status
from tests.integration.sensors.objects import kwok_job
from tests.unit.sensors.http_target import Target, serve

pytestmark = pytest.mark.cluster


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    async with serve() as server:
        yield server


async def create_run(harness: Harness, name: str, dag: str, logical_date: str) -> None:
    run = {
        "apiVersion": "leoflow.io/v1alpha1",
        "kind": "DAGRun",
        "metadata": {"name": name, "namespace": harness.namespace},
        "spec": {"dagName": dag, "logicalDate": logical_date},
    }
    await harness.kubectl("create", "-f", "-", input=json.dumps(run))


async def test_http_sensor_task_waits_for_the_expected_run_status(harness: Harness, target: Target) -> None:
    target.status = 404
    tasks = (
        f"  wait: {{sensor: {{http: {{url: '{target.url}/ready/{{{{ run_id }}}}'}}, pokeInterval: 1s}}}}\n"
        "  work: {after: [wait], command: [work]}\n"
    )
    await harness.apply_dag(dag_yaml("http-status", tasks))
    await harness.start()
    await harness.create_run("r1", "http-status")
    await harness.wait_run("r1", lambda o: run_status(o).get("taskStates") == "r." and target.requests >= 2)
    target.status = 200
    done = await harness.wait_phase("r1", "Succeeded")
    assert run_status(done)["taskStates"] == "SS"
    assert target.requests >= 3


async def test_http_sensor_task_sends_its_headers_and_waits_for_a_json_value(
    harness: Harness, target: Target
) -> None:
    await harness.kubectl("create", "secret", "generic", "exports-api", "--from-literal=token=s3cret")
    target.body = {"job": {"state": "running"}}
    tasks = f"""\
  wait:
    sensor:
      http:
        url: {target.url}/status
        jsonPath: job.state
        jsonValue: done
        headers: {{X-Run: "{{{{ run_id }}}}"}}
        headersFrom: {{Authorization: {{secret: exports-api, key: token, prefix: "Bearer "}}}}
        requestTimeout: 5s
      pokeInterval: 1s
  work: {{after: [wait], command: [work]}}
"""
    await harness.apply_dag(dag_yaml("http-json", tasks))
    await harness.start()
    await harness.create_run("r1", "http-json")
    await harness.wait_run("r1", lambda _o: target.requests >= 2)
    assert run_status(await harness.run_object("r1"))["taskStates"] == "r.", "'running' is not 'done'"
    target.body = {"job": {"state": "done"}}
    done = await harness.wait_phase("r1", "Succeeded")
    assert run_status(done)["taskStates"] == "SS"
    assert {h["Authorization"] for h in target.headers} == {"Bearer s3cret"}
    assert {h["X-Run"] for h in target.headers} == {"r1"}


async def test_kubernetes_sensor_task_waits_for_a_configmap_key(harness: Harness) -> None:
    tasks = (
        "  wait:\n"
        "    sensor:\n"
        "      kubernetes: {apiVersion: v1, kind: ConfigMap, name: '{{ run_id }}-signal',"
        " jsonPath: \"data['ready']\", jsonValue: 'yes'}\n"
        "  work: {after: [wait], command: [work]}\n"
    )
    await harness.apply_dag(dag_yaml("cm-key", tasks))
    await harness.start()
    await harness.create_run("r1", "cm-key")
    await harness.wait_run("r1", lambda o: run_status(o).get("taskStates") == "r.")
    await harness.kubectl("create", "configmap", "r1-signal", "--from-literal=other=1")
    await asyncio.sleep(1)
    assert run_status(await harness.run_object("r1"))["taskStates"] == "r.", "no key yet"
    await harness.kubectl("patch", "configmap", "r1-signal", "-p", '{"data": {"ready": "yes"}}')
    done = await harness.wait_phase("r1", "Succeeded")
    assert run_status(done)["taskStates"] == "SS"


async def test_kubernetes_sensor_task_waits_for_a_job_to_complete_on_kwok(harness: Harness) -> None:
    tasks = (
        "  wait:\n"
        "    sensor: {kubernetes: {apiVersion: batch/v1, kind: Job, name: export, condition: Complete}}\n"
        "  work: {after: [wait], command: [work]}\n"
    )
    await harness.apply_dag(dag_yaml("job-done", tasks))
    await harness.start()
    await harness.create_run("r1", "job-done")
    await harness.wait_run("r1", lambda o: run_status(o).get("taskStates") == "r.")
    job = {**kwok_job("export", succeed_after="1s")}
    await harness.kubectl("apply", "-f", "-", input=json.dumps(job))
    done = await harness.wait_phase("r1", "Succeeded", within=90)
    assert run_status(done)["taskStates"] == "SS"


async def test_dag_run_sensor_task_waits_for_another_dags_run_and_task(harness: Harness) -> None:
    date = "2026-03-01T00:00:00Z"
    await harness.apply_dag(
        dag_yaml("upstream", "  extract: {command: [x]}\n  load: {after: [extract], command: [x]}\n")
    )
    downstream = (
        "  run-done: {sensor: {dagRun: {dag: upstream}, pokeInterval: 1s}}\n"
        "  extract-done: {sensor: {dagRun: {dag: upstream, task: extract}}}\n"
        "  report: {after: [run-done, extract-done], command: [report]}\n"
    )
    await harness.apply_dag(dag_yaml("downstream", downstream))
    await harness.start()
    await create_run(harness, "down-1", "downstream", date)
    await harness.wait_run("down-1", lambda o: run_status(o).get("phase") == "Running")
    await create_run(harness, "up-other-day", "upstream", "2026-02-28T00:00:00Z")
    await harness.wait_phase("up-other-day", "Succeeded")
    await asyncio.sleep(1)
    assert run_status(await harness.run_object("down-1"))["phase"] == "Running", (
        "another date's run is not it"
    )
    await create_run(harness, "up-1", "upstream", date)
    done = await harness.wait_phase("down-1", "Succeeded")
    upstream = await harness.run_object("up-1")
    assert run_status(upstream)["phase"] == "Succeeded"
    assert run_status(done)["taskStates"] == "SSS"


async def test_dag_run_sensor_in_another_namespace(harness: Harness) -> None:
    other = f"{harness.namespace}-up"
    await asyncio.to_thread(harness.cluster.create_namespace, other)
    try:
        tasks = "  wait: {sensor: {dagRun: {dag: upstream, namespace: " + other + "}}}\n"
        await harness.apply_dag(dag_yaml("watcher", tasks))
        await harness.start()
        date = "2026-04-01T00:00:00Z"
        await create_run(harness, "w1", "watcher", date)
        await harness.wait_run("w1", lambda o: run_status(o).get("taskStates") == "r")
        run = {
            "apiVersion": "leoflow.io/v1alpha1",
            "kind": "DAGRun",
            "metadata": {"name": "upstream-1", "namespace": other, "labels": {"leoflow.io/dag": "upstream"}},
            "spec": {"dagName": "upstream", "logicalDate": date},
        }
        kubectl = harness.cluster.kubectl
        await asyncio.to_thread(kubectl, "create", "-n", other, "-f", "-", input=json.dumps(run))
        patch = json.dumps({"status": {"phase": "Succeeded"}})
        await asyncio.to_thread(
            kubectl,
            "patch",
            "dagrun",
            "upstream-1",
            "-n",
            other,
            "--subresource=status",
            "--type=merge",
            "-p",
            patch,
        )
        done = await harness.wait_phase("w1", "Succeeded")
        assert run_status(done)["taskStates"] == "S"
    finally:
        await asyncio.to_thread(
            harness.cluster.kubectl,
            "delete",
            "namespace",
            other,
            "--wait=false",
            "--ignore-not-found",
            check=False,
        )


class RecordingScript(KwokScript):
    """The KWOK script that also keeps every pod the controller asked it about."""

    def __init__(self, tasks: dict[str, Any]) -> None:
        super().__init__(tasks)
        self.pods: list[Mapping[str, Any]] = []

    def __call__(self, pod: Mapping[str, Any]) -> Mapping[str, str]:
        self.pods.append(pod)
        return super().__call__(pod)


async def test_command_sensor_task_runs_a_pod_per_poke_until_one_exits_zero(harness: Harness) -> None:
    tasks = (
        "  probe: {sensor: {command: {command: [test, -e, '/ready/{{ run_id }}']}, pokeInterval: 1s}}\n"
        "  work: {after: [probe], command: [work]}\n"
    )
    script = RecordingScript({"probe": {1: fail(exit_code=1), 2: fail(exit_code=3), 3: SUCCEED}})
    harness.script = script
    await harness.apply_dag(dag_yaml("probing", tasks))
    await harness.start()
    await harness.create_run("r1", "probing")
    done = await harness.wait_phase("r1", "Succeeded")
    assert run_status(done)["taskStates"] == "SS"
    pokes = [p for p in script.pods if p["metadata"]["labels"].get(POKE_LABEL) == "true"]
    assert [p["metadata"]["labels"]["leoflow.io/attempt"] for p in pokes] == ["1", "2", "3"]
    assert {tuple(p["spec"]["containers"][0]["command"]) for p in pokes} == {("test", "-e", "/ready/r1")}
    names = {p["metadata"]["name"] for p in pokes}
    assert len(names) == 3, "one pod per poke, each with its own name"
    deadline = asyncio.get_running_loop().time() + 30
    while left := [p for p in await harness.pods("r1") if p["metadata"]["name"] in names]:
        assert all(p["metadata"].get("deletionTimestamp") for p in left) or (
            asyncio.get_running_loop().time() < deadline
        ), "finished poke pods are deleted"
        if all(p["metadata"].get("deletionTimestamp") for p in left):
            break
        await asyncio.sleep(0.3)

"""The DAG and DAGRun CRDs on the real API server: install, explain, apply, round-trip, reject."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from leoflow.dev.cluster import install_crds
from leoflow.dev.testing import ClusterHandle
from leoflow.spec import resources as res
from leoflow.spec.compiler import compile_path, compile_text
from tests.unit.spec.dagfiles import Edges, acyclic_graphs, dag_file

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "etl" / "leoflow.yaml"

# Every field of the file, so a field the CRD schema forgot would be pruned and fail the round trip.
EVERY_FIELD = """\
dag: every-field
image: registry.example.com/all:1
description: uses every field
schedule:
  {cron: "*/5 * * * *", timezone: Europe/Paris, catchup: true, concurrencyPolicy: Replace, maxActiveRuns: 3}
params:
  day: {type: string, default: "{{ logical_date }}", description: the day}
  limit: {type: integer, default: 10}
  ratio: {type: number, default: 0.5}
  dry: {type: boolean, default: false}
defaults:
  retries: 2
  retryDelay: 45s
  retryBackoff: 3.0  # whole number: the API server returns 3, the hash must not change
  maxRetryDelay: 10m
  timeout: 1h
  resources: {cpu: 500m, memory: 512Mi, ephemeralStorage: 1Gi, limits: {cpu: 2}}
  env: {MODE: prod}
  nodeSelector: {pool: batch}
  tolerations: [{key: batch, operator: Equal, value: "yes", effect: NoSchedule, tolerationSeconds: 60}]
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms: [{matchExpressions: [{key: zone, operator: In, values: [a, b]}]}]
  serviceAccountName: runner
  podLabels: {team: data, cost-center: "42"}
  podAnnotations: {sidecar.istio.io/inject: "false"}
tasks:
  list:
    command: [ls, "--limit={{ params.limit }}"]
    args: ["--run={{ run_id }}"]
    outputs: [files]
    image: registry.example.com/lister:2
    resources: {gpu: 1}
    podLabels: {team: listing}
    podAnnotations: {leoflow.io/agent-path: /usr/local/bin/leoflow-agent}
  each:
    after: [list]
    command: [process, "{{ item }}"]
    fanOut: {items: "{{ tasks.list.outputs.files }}", maxParallel: 4}
    env:
      MODE: test
      PASSWORD: {secret: db, key: password}
      CONFIG: {configMap: settings, key: config.json, optional: true}
  regions:
    command: [sync, "{{ item }}"]
    fanOut: {items: [eu, us]}
    trigger: all_done
  wait-file:
    sensor:
      http:
        url: "https://example.com/ready"
        expectStatus: [200]
        jsonPath: $.ok
        jsonValue: "true"
        headers: {Accept: application/json}
        headersFrom: {Authorization: {secret: api, key: token, prefix: "Bearer "}}
        requestTimeout: 5s
      pokeBackoff: 1.5
  wait-time:
    sensor: {time: {delay: 5m}, pokeInterval: 10s, softFail: true}
  wait-job:
    sensor: {kubernetes: {apiVersion: batch/v1, kind: Job, name: prep, condition: Complete}, timeout: 2h}
  wait-dag:
    sensor: {dagRun: {dag: upstream-dag, task: publish, namespace: other-team}}
  wait-cmd:
    sensor: {command: {command: [test, -f, /data/ready]}, maxPokeInterval: 5m}
  report:
    after: [each, regions, wait-file, wait-time, wait-job, wait-dag, wait-cmd]
    trigger: one_failed
    command: [report]
    retries: 0
    timeout: 90s
"""


@pytest.fixture(scope="module")
def crds(cluster: ClusterHandle) -> Iterator[ClusterHandle]:
    install_crds(cluster.state)
    yield cluster


def _apply(cluster: ClusterHandle, obj: dict[str, Any], *, check: bool = True) -> Any:
    return cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(obj), check=check)


def _get(cluster: ClusterHandle, kind: str, name: str, namespace: str) -> dict[str, Any]:
    out = cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout
    data: dict[str, Any] = json.loads(out)
    return data


def _retry(action: Any, within: float = 60) -> Any:
    deadline = time.monotonic() + within
    while True:
        result = action()
        if result.returncode == 0 or time.monotonic() > deadline:
            return result
        time.sleep(1)


def test_crds_are_established_with_short_names(crds: ClusterHandle) -> None:
    resources = crds.kubectl("api-resources", "--api-group=leoflow.io", "-o", "wide").stdout
    assert "lfdag" in resources and "lfrun" in resources


def test_kubectl_explain_dag_spec_tasks(crds: ClusterHandle) -> None:
    result = _retry(lambda: crds.kubectl("explain", "dag.spec.tasks", check=False))
    assert result.returncode == 0, result.stderr
    for field in ("upstreams", "profile", "command", "trigger", "fanOut", "sensor"):
        assert field in result.stdout


def test_compiled_example_applies_and_round_trips_unchanged(crds: ClusterHandle, namespace: str) -> None:
    dag = compile_path(EXAMPLE)
    _apply(crds, dag.resource(namespace))
    stored = _get(crds, "dag", "etl", namespace)
    assert stored["spec"] == dag.data
    assert res.DagSpec.model_validate(stored["spec"]) == dag.spec


def test_every_field_survives_the_api_server(crds: ClusterHandle, namespace: str) -> None:
    dag = compile_text(EVERY_FIELD)
    _apply(crds, dag.resource(namespace))
    stored = _get(crds, "dag", dag.name, namespace)
    assert stored["spec"] == dag.data, "a field missing from the CRD schema was pruned"
    assert res.definition_hash(stored["spec"]) == dag.spec.definitionHash


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edges=acyclic_graphs(max_tasks=15))
def test_random_dags_round_trip_through_the_api_server(
    crds: ClusterHandle, namespace: str, edges: Edges
) -> None:
    dag = compile_text(dag_file(edges))
    _apply(crds, dag.resource(namespace))
    assert _get(crds, "dag", dag.name, namespace)["spec"] == dag.data


def test_a_10000_task_dag_is_accepted_server_side(crds: ClusterHandle, namespace: str) -> None:
    sys.path.insert(0, str(ROOT / "bench" / "compile"))
    from run import big_dag

    dag = compile_text(big_dag())
    _apply(crds, dag.resource(namespace))
    stored = _get(crds, "dag", dag.name, namespace)
    assert len(stored["spec"]["tasks"]) == 10_000


def test_printer_columns(crds: ClusterHandle, namespace: str) -> None:
    _apply(crds, compile_path(EXAMPLE).resource(namespace))
    table = crds.kubectl("get", "lfdag", "-n", namespace).stdout
    assert "SCHEDULE" in table and "IMAGE" in table and "0 * * * *" in table
    run = res.dagrun_resource("etl-manual-1", res.DagRunSpec(dagName="etl"), namespace)
    _apply(crds, run)
    status = res.DagRunStatus(phase=res.RunPhase.RUNNING, taskStates="S r", progress="1/3")
    crds.kubectl(
        "patch",
        "dagrun",
        "etl-manual-1",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": res.dump(status)}),
    )
    table = crds.kubectl("get", "lfrun", "-n", namespace).stdout
    assert "PHASE" in table and "Running" in table and "1/3" in table


def test_status_is_a_subresource(crds: ClusterHandle, namespace: str) -> None:
    run = res.dagrun_resource("etl-manual-2", res.DagRunSpec(dagName="etl"), namespace)
    run["status"] = {"phase": "Succeeded"}
    _apply(crds, run)
    stored = _get(crds, "dagrun", "etl-manual-2", namespace)
    assert "status" not in stored or stored["status"].get("phase") != "Succeeded"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda spec: spec["tasks"][0].update(trigger="sometimes"), "Unsupported value"),
        (lambda spec: spec["tasks"][0].update(name="Not_A_Name"), "should match"),
        (lambda spec: spec.update(tasks="extract"), "must be of type array"),
        (lambda spec: spec["profiles"][0]["resources"]["requests"].update(cpu="lots"), "should match"),
        (lambda spec: spec.pop("definitionHash"), "Required value"),
    ],
)
def test_the_api_server_rejects_objects_that_violate_the_schema(
    crds: ClusterHandle, namespace: str, mutate: Any, expected: str
) -> None:
    resource = compile_path(EXAMPLE).resource(namespace)
    resource = yaml.safe_load(yaml.safe_dump(resource))
    mutate(resource["spec"])
    result = crds.kubectl("create", "-f", "-", input=json.dumps(resource), check=False)
    assert result.returncode != 0
    assert expected in result.stderr


def _compile_and_apply(crds: ClusterHandle, source: Path, namespace: str) -> str:
    """`leoflow compile SOURCE | kubectl apply -f -`; returns what compile printed."""
    compiled = subprocess.run(
        [sys.executable, "-m", "leoflow", "compile", str(source), "-n", namespace],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    crds.kubectl("apply", "--server-side", "-f", "-", input=compiled)
    return compiled


def test_leoflow_compile_output_pipes_into_kubectl_apply(crds: ClusterHandle, namespace: str) -> None:
    compiled = _compile_and_apply(crds, EXAMPLE, namespace)
    stored = _get(crds, "dag", "etl", namespace)
    assert stored["spec"] == yaml.safe_load(compiled)["spec"]


def test_strings_that_look_like_booleans_or_numbers_survive_compile_and_kubectl_apply(
    crds: ClusterHandle, namespace: str, tmp_path: Path
) -> None:
    # kubectl's YAML parser reads y, 1e3, 0o14 and 09 written plain as true, 1000, 12 and 9.
    looks_typed = ["y", "N", "1e3", "0o14", "09", "-.5", "0XFe"]
    source = tmp_path / "leoflow.yaml"
    source.write_text(
        "dag: look-typed\nimage: x:1\ntasks:\n"
        f"  a: {{command: {json.dumps(['run', *looks_typed])}, env: {{ANSWER: 'y', SCALE: '1e3'}}}}\n"
    )
    _compile_and_apply(crds, source, namespace)
    task = _get(crds, "dag", "look-typed", namespace)["spec"]["tasks"][0]
    assert task["command"] == ["run", *looks_typed]
    assert {e["name"]: e["value"] for e in task["env"]} == {"ANSWER": "y", "SCALE": "1e3"}

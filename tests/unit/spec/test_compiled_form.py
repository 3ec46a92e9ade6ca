"""The compiled DAG spec: structure pre-computed, settings resolved, identity hashed."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from leoflow.spec import resources as res
from leoflow.spec.compiler import compile_path, compile_text
from leoflow.spec.templates import RenderContext, render

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "etl" / "leoflow.yaml"


def _compile(text: str) -> res.DagSpec:
    return compile_text(textwrap.dedent(text)).spec


def test_etl_example_compiles_to_topological_indices() -> None:
    dag = compile_path(EXAMPLE)
    assert dag.name == "etl"
    spec = dag.spec
    assert [t.name for t in spec.tasks] == ["extract", "transform", "load"]
    assert [t.upstreams for t in spec.tasks] == [[], [0], [1]]
    assert [t.downstreams for t in spec.tasks] == [[1], [2], []]
    assert spec.schedule == res.CompiledSchedule(
        cron="0 * * * *", timezone="Europe/Paris", catchup=False, concurrencyPolicy="Forbid", maxActiveRuns=1
    )
    assert spec.params == [res.CompiledParam(name="day", type="string", default="{{ logical_date }}")]
    (profile,) = spec.profiles
    assert profile.image == "registry.example.com/etl:1.4.2"
    assert (profile.retries, profile.retryDelaySeconds, profile.retryBackoff) == (2, 30, 2.0)
    assert (profile.maxRetryDelaySeconds, profile.timeoutSeconds) == (600, 3600)
    assert profile.resources.requests == {"cpu": "500m", "memory": "512Mi"}
    assert profile.resources.limits == {"memory": "512Mi"}
    assert [t.templated for t in spec.tasks] == [True, True, False]


def test_topological_order_puts_upstreams_first_even_when_written_last() -> None:
    spec = _compile(
        """\
        dag: d
        image: i
        tasks:
          c: {command: [x], after: [b]}
          b: {command: [x], after: [a]}
          a: {command: [x]}
          z: {command: [x]}
        """
    )
    assert [t.name for t in spec.tasks] == ["a", "b", "c", "z"], "ready tasks go in file order"
    for i, task in enumerate(spec.tasks):
        assert all(u < i for u in task.upstreams)


def test_tasks_share_profiles_and_overrides_get_their_own() -> None:
    spec = _compile(
        """\
        dag: d
        image: base:1
        defaults:
          env: {MODE: prod, REGION: eu}
          resources: {cpu: 1, memory: 1Gi}
        tasks:
          a: {command: [x]}
          b: {command: [x]}
          c:
            command: [x]
            image: other:2
            resources: {memory: 2Gi}
            env: {MODE: test, PASSWORD: {secret: db, key: pw}, CONF: {configMap: cfg, key: c, optional: true}}
            nodeSelector: {disk: ssd}
            tolerations: [{key: gpu, operator: Exists, effect: NoSchedule}]
            affinity:
              nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: []}}
            serviceAccountName: etl
            retries: 4
            timeout: 90s
        """
    )
    a, b, c = spec.tasks
    assert a.profile == b.profile == 0
    assert c.profile == 1
    shared, own = spec.profiles
    assert [e.name for e in shared.env] == ["MODE", "REGION"]
    assert [e.name for e in own.env] == ["REGION"], "the inherited MODE is overridden by the task"
    assert own.image == "other:2"
    assert own.resources.requests == {"cpu": "1", "memory": "2Gi"}
    assert own.nodeSelector == {"disk": "ssd"}
    assert own.tolerations == [res.Toleration(key="gpu", operator="Exists", effect="NoSchedule")]
    assert own.affinity is not None and "nodeAffinity" in own.affinity
    assert (own.serviceAccountName, own.retries, own.timeoutSeconds) == ("etl", 4, 90)
    env = {e.name: e for e in c.env}
    assert env["MODE"].value == "test"
    assert env["PASSWORD"].valueFrom == res.EnvVarSource(
        secretKeyRef=res.EnvVarSecretKeyRef(name="db", key="pw")
    )
    assert env["CONF"].valueFrom is not None and env["CONF"].valueFrom.configMapKeyRef is not None
    assert env["CONF"].valueFrom.configMapKeyRef.optional is True


def test_fan_out_over_a_literal_list_and_over_an_upstream_output() -> None:
    spec = _compile(
        """\
        dag: d
        image: i
        tasks:
          list: {command: [ls], outputs: [files]}
          each:
            after: [list]
            command: [process, "{{ item }}"]
            fanOut: {items: "{{ tasks.list.outputs.files }}", maxParallel: 5}
          regions:
            command: [sync, "{{ item }}"]
            fanOut: {items: [eu, us, 3, true]}
        """
    )
    index = spec.task_index()
    each = spec.tasks[index["each"]]
    assert each.fanOut == res.CompiledFanOut(fromTask=index["list"], fromOutput="files", maxParallel=5)
    regions = spec.tasks[index["regions"]]
    assert regions.fanOut == res.CompiledFanOut(items=["eu", "us", "3", "true"])


def test_sensor_task_has_no_command_and_durations_in_seconds() -> None:
    spec = _compile(
        """\
        dag: d
        image: i
        tasks:
          wait:
            sensor:
              http: {url: "https://example.com/ready?day={{ logical_date }}", expectStatus: [200, 204]}
              pokeInterval: 1m
              timeout: 2h
              softFail: true
          go: {command: [x], after: [wait]}
        """
    )
    wait = spec.tasks[0]
    assert wait.command is None and wait.sensor is not None
    assert wait.sensor.http is not None and wait.sensor.http.expectStatus == [200, 204]
    sensor = wait.sensor
    assert (sensor.pokeIntervalSeconds, sensor.timeoutSeconds, sensor.softFail) == (60, 7200, True)
    assert wait.templated


def test_definition_hash_changes_with_the_definition_only() -> None:
    text = EXAMPLE.read_text()
    first = compile_text(text).spec.definitionHash
    assert compile_text("# a comment changes nothing\n" + text).spec.definitionHash == first
    assert compile_text(text.replace("etl.load", "etl.load2")).spec.definitionHash != first
    assert len(first) == 16


def test_resource_round_trips_through_json() -> None:
    dag = compile_path(EXAMPLE)
    resource = json.loads(json.dumps(dag.resource("ns")))
    assert resource["apiVersion"] == "leoflow.io/v1alpha1" and resource["kind"] == "DAG"
    assert resource["metadata"] == {"name": "etl", "namespace": "ns", "labels": {"leoflow.io/dag": "etl"}}
    assert res.DagSpec.model_validate(resource["spec"]) == dag.spec
    assert res.definition_hash(resource["spec"]) == dag.spec.definitionHash


def test_templates_render_with_run_values() -> None:
    spec = compile_path(EXAMPLE).spec
    context = RenderContext(
        logical_date="2024-05-01T10:00:00Z",
        run_id="etl-1",
        params={"day": "2024-05-01"},
        outputs={"extract": {"row_count": "42"}},
    )
    assert [render(a, context) for a in spec.tasks[0].command or []][-1] == "--day=2024-05-01"
    assert render(spec.tasks[1].env[0].value or "", context) == "42"


def test_downstreams_are_derived_on_load_and_not_stored() -> None:
    dag = compile_path(EXAMPLE)
    assert all("downstreams" not in task for task in dag.data["tasks"])
    loaded = res.DagSpec.model_validate(dag.data)
    assert [t.downstreams for t in loaded.tasks] == [[1], [2], []]


def test_a_spec_whose_upstreams_are_not_earlier_is_refused_on_load() -> None:
    data = compile_path(EXAMPLE).data
    broken = {**data, "tasks": [{**data["tasks"][0], "upstreams": [2]}, *data["tasks"][1:]]}
    with pytest.raises(ValidationError, match="not an earlier task"):
        res.DagSpec.model_validate(broken)


def test_compiled_data_is_the_dump_of_the_spec() -> None:
    dag = compile_path(EXAMPLE)
    assert res.dump(dag.spec) == dag.data


def test_whole_number_backoff_hashes_the_same_after_the_api_server_rewrites_it() -> None:
    dag = compile_text(EXAMPLE.read_text().replace("retryBackoff: 2.0", "retryBackoff: 3.0"))
    assert dag.data["profiles"][0]["retryBackoff"] == 3
    assert json.dumps(dag.data["profiles"][0]["retryBackoff"]) == "3"
    assert res.definition_hash(json.loads(json.dumps(dag.data))) == dag.spec.definitionHash


def test_compiled_example_matches_the_golden_resource() -> None:
    """The compiled form is a contract with the controller: a change here must be deliberate.

    Regenerate with: leoflow compile examples/etl/leoflow.yaml > tests/unit/spec/golden/etl.dag.yaml
    """
    golden = yaml.safe_load((Path(__file__).parent / "golden" / "etl.dag.yaml").read_text())
    assert compile_path(EXAMPLE).resource() == golden


def test_the_compiled_example_in_the_resources_doc_is_what_compile_prints_today() -> None:
    doc = (EXAMPLE.parents[2] / "docs" / "resources.md").read_text()
    block = doc.split("```yaml\napiVersion: leoflow.io/v1alpha1\nkind: DAG\n", 1)[1].split("```", 1)[0]
    shown = yaml.safe_load("apiVersion: leoflow.io/v1alpha1\nkind: DAG\n" + block)
    assert shown == compile_path(EXAMPLE).resource(None)

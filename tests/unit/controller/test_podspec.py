from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leoflow.controller.podnames import AttemptKey, attempt_pod_name, is_same_attempt
from leoflow.controller.podspec import PodBuildSettings, PodSpecError, RunIdentity, build_pod
from leoflow.spec.podmetadata import reserved_reason
from leoflow.spec.resources import CompiledFanOut, EnvVar, Profile
from leoflow.spec.templates import RenderContext

from .dags import dag

RUN = RunIdentity(dag="etl", name="etl-20261124-0700", namespace="team-a", uid="uid-1")
CONTEXT = RenderContext(
    logical_date="2026-11-24T07:00:00Z",
    run_id="etl-20261124-0700",
    params={"region": "eu"},
    outputs={"extract": {"rows": "42"}},
)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_names = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,46}[a-z0-9])?", fullmatch=True)


def test_pod_carries_identity_labels_and_attempt_annotation() -> None:
    pod = build_pod(dag({"extract": []}), RUN, 0, attempt=2, item=None, context=CONTEXT)
    meta = pod["metadata"]
    assert meta["labels"] == {
        "leoflow.io/inject": "true",
        "leoflow.io/dag": "etl",
        "leoflow.io/run": "etl-20261124-0700",
        "leoflow.io/task": "extract",
        "leoflow.io/attempt": "2",
        "app.kubernetes.io/managed-by": "leoflow",
    }
    assert meta["annotations"]["leoflow.io/attempt-id"] == "uid-1/extract//2"
    assert re.fullmatch(r"etl-20261124-0700-extract-2-[0-9a-f]{8}", meta["name"])
    assert meta["namespace"] == "team-a"


def test_pod_is_owned_by_its_dagrun_as_controller() -> None:
    pod = build_pod(dag({"a": []}), RUN, 0, attempt=1, item=None, context=CONTEXT)
    assert pod["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "leoflow.io/v1alpha1",
            "kind": "DAGRun",
            "name": RUN.name,
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def test_pod_never_restarts_and_has_a_deadline_backstop_from_the_timeout() -> None:
    pod = build_pod(
        dag({"a": []}, timeout=300),
        RUN,
        0,
        attempt=1,
        item=None,
        context=CONTEXT,
        settings=PodBuildSettings(deadline_margin_seconds=60),
    )
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["activeDeadlineSeconds"] == 360


def test_pod_without_timeout_has_no_deadline() -> None:
    pod = build_pod(dag({"a": []}), RUN, 0, attempt=1, item=None, context=CONTEXT)
    assert "activeDeadlineSeconds" not in pod["spec"]


def test_params_outputs_dates_and_item_are_templated_into_command_args_and_env() -> None:
    spec = dag(
        {"extract": [], "load": ["extract"]},
        commands={"load": ["load", "--region={{ params.region }}", "{{tasks.extract.outputs.rows}}"]},
        env=[EnvVar(name="WHEN", value="{{ logical_date }}/{{ run_id }}/{{ item }}")],
    )
    context = RenderContext(CONTEXT.logical_date, CONTEXT.run_id, CONTEXT.params, CONTEXT.outputs, item="b")
    pod = build_pod(spec, RUN, 1, attempt=1, item=1, context=context)
    container = pod["spec"]["containers"][0]
    assert container["name"] == "main"
    assert container["command"] == ["load", "--region=eu", "42"]
    assert container["env"] == [{"name": "WHEN", "value": "2026-11-24T07:00:00Z/etl-20261124-0700/b"}]
    assert pod["metadata"]["labels"]["leoflow.io/item"] == "1"


def test_missing_upstream_output_is_a_clear_error_naming_the_task() -> None:
    spec = dag(
        {"extract": [], "load": ["extract"]}, commands={"load": ["load", "{{ tasks.extract.outputs.path }}"]}
    )
    with pytest.raises(PodSpecError, match=r"task 'load' command: task 'extract' reported no output 'path'"):
        build_pod(spec, RUN, 1, attempt=1, item=None, context=CONTEXT)


def test_template_text_is_never_executed() -> None:
    spec = dag({"a": []}, commands={"a": ["echo", "{{ params.__class__ }}"]})
    with pytest.raises(PodSpecError, match="param '__class__' has no value"):
        build_pod(spec, RUN, 0, attempt=1, item=None, context=CONTEXT)


def test_profile_settings_reach_the_pod() -> None:
    spec = dag({"a": []}, nodeSelector={"disk": "ssd"}, serviceAccountName="etl")
    pod = build_pod(spec, RUN, 0, attempt=1, item=None, context=CONTEXT)
    assert pod["spec"]["nodeSelector"] == {"disk": "ssd"}
    assert pod["spec"]["serviceAccountName"] == "etl"
    assert pod["spec"]["containers"][0]["image"] == Profile(image="registry.local/app:1").image


def test_adoption_accepts_the_same_attempt_and_refuses_a_collision() -> None:
    pod = build_pod(dag({"a": []}), RUN, 0, attempt=3, item=None, context=CONTEXT)
    assert is_same_attempt(pod, AttemptKey("uid-1", "a", None, 3))
    assert not is_same_attempt(pod, AttemptKey("uid-2", "a", None, 3))
    assert not is_same_attempt({"metadata": None}, AttemptKey("uid-1", "a", None, 3))


def test_names_that_read_alike_still_differ() -> None:
    assert attempt_pod_name("r", AttemptKey("u", "x-0", None, 1)) != attempt_pod_name(
        "r", AttemptKey("u", "x", 0, 1)
    )
    assert attempt_pod_name("a-b", AttemptKey("u", "c", None, 1)) != attempt_pod_name(
        "a", AttemptKey("u", "b-c", None, 1)
    )
    assert attempt_pod_name("r", AttemptKey("u", "x-0", None, 1)).startswith("r-x-0-1-")
    assert attempt_pod_name("r", AttemptKey("u1", "t", None, 1)) != attempt_pod_name(
        "r", AttemptKey("u2", "t", None, 1)
    )


@given(run=_names, task=_names, item=st.none() | st.integers(0, 999), attempt=st.integers(1, 1000))
def test_pod_names_are_dns_labels_of_at_most_63_characters(
    run: str, task: str, item: int | None, attempt: int
) -> None:
    name = attempt_pod_name(run, AttemptKey("u", task, item, attempt))
    assert len(name) <= 63
    assert DNS_LABEL.match(name), name


@given(run=_names, task=_names, item=st.none() | st.integers(0, 999), attempt=st.integers(1, 999))
def test_pod_names_differ_between_attempts_and_items(
    run: str, task: str, item: int | None, attempt: int
) -> None:
    key = AttemptKey("u", task, item, attempt)
    name = attempt_pod_name(run, key)
    assert name == attempt_pod_name(run, key)
    assert name != attempt_pod_name(run, AttemptKey("u", task, item, attempt + 1))
    other_item = 0 if item is None else item + 1
    assert name != attempt_pod_name(run, AttemptKey("u", task, other_item, attempt))


def test_dag_pod_labels_and_annotations_reach_the_pod_under_leoflows_own() -> None:
    spec = dag(
        {"a": []},
        podLabels={"team": "data", "leoflow.io/task": "spoofed"},
        podAnnotations={"sidecar.istio.io/inject": "false", "leoflow.io/attempt-id": "spoofed"},
    )
    meta = build_pod(spec, RUN, 0, attempt=1, item=None, context=CONTEXT)["metadata"]
    assert meta["labels"]["team"] == "data"
    assert meta["labels"]["leoflow.io/task"] == "a"
    assert meta["annotations"]["sidecar.istio.io/inject"] == "false"
    assert meta["annotations"]["leoflow.io/attempt-id"] == "uid-1/a//1"
    assert meta["annotations"]["leoflow.io/definition-hash"] == spec.definitionHash


def test_every_key_leoflow_sets_on_a_pod_is_one_the_compiler_refuses() -> None:
    spec = dag({"a": []}, fan_out={"a": CompiledFanOut(items=["x"])})
    meta = build_pod(spec, RUN, 0, attempt=1, item=0, context=CONTEXT)["metadata"]
    assert all(reserved_reason(key, "label") for key in meta["labels"])
    assert all(reserved_reason(key, "annotation") for key in meta["annotations"])

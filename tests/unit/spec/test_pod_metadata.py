"""podLabels and podAnnotations: merged over the defaults key by key, refused where the API server
or Leoflow would refuse them, each refusal naming the task (or defaults), the field and the key."""

from __future__ import annotations

import textwrap

import pytest

from leoflow.spec.compiler import compile_text
from leoflow.spec.podmetadata import MAX_POD_ANNOTATIONS_BYTES, annotations_bytes
from tests.unit.spec.dagfiles import HEAD, only_problem, problems


def _profile_of(text: str, task: str) -> tuple[dict[str, str], dict[str, str]]:
    spec = compile_text(textwrap.dedent(text)).spec
    profile = spec.profiles[spec.tasks[spec.task_index()[task]].profile]
    return profile.podLabels, profile.podAnnotations


def test_task_maps_merge_over_the_defaults_key_by_key() -> None:
    text = HEAD + textwrap.dedent(
        """\
        defaults:
          podLabels: {team: data, cost-center: "42"}
          podAnnotations:
            sidecar.istio.io/inject: "false"
            cluster-autoscaler.kubernetes.io/safe-to-evict: "false"
        tasks:
          plain: {command: [x]}
          own:
            command: [x]
            podLabels: {team: ml, example.com/tier: gold}
            podAnnotations: {sidecar.istio.io/inject: "true"}
        """
    )
    assert _profile_of(text, "plain") == (
        {"team": "data", "cost-center": "42"},
        {"sidecar.istio.io/inject": "false", "cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
    )
    assert _profile_of(text, "own") == (
        {"team": "ml", "cost-center": "42", "example.com/tier": "gold"},
        {"sidecar.istio.io/inject": "true", "cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
    )


def test_without_pod_metadata_the_compiled_dag_is_unchanged() -> None:
    data = compile_text(HEAD + "tasks: {a: {command: [x]}}\n").data
    assert "podLabels" not in data["profiles"][0] and "podAnnotations" not in data["profiles"][0]


@pytest.mark.parametrize(
    "annotation",
    ["leoflow.io/agent-path: /usr/local/bin/leoflow-agent", "leoflow.io/entrypoint: '[\"/init\"]'"],
)
def test_the_webhooks_user_annotations_may_be_set(annotation: str) -> None:
    _, annotations = _profile_of(
        HEAD + f"tasks:\n  a:\n    command: [x]\n    podAnnotations: {{{annotation}}}\n", "a"
    )
    assert len(annotations) == 1


def test_annotation_keys_are_checked_ignoring_case_as_the_api_server_does() -> None:
    _, annotations = _profile_of(
        HEAD + "tasks:\n  a:\n    command: [x]\n    podAnnotations: {Example.COM/Key: v}\n", "a"
    )
    assert annotations == {"Example.COM/Key": "v"}


@pytest.mark.parametrize(
    ("where", "key", "reason"),
    [
        ("defaults", "leoflow.io/dag", "leoflow.io/ labels are Leoflow's: the controller sets them"),
        ("tasks.a", "leoflow.io/team", "leoflow.io/ labels are Leoflow's: the controller sets them"),
        ("tasks.a", "app.kubernetes.io/managed-by", "the controller sets it to 'leoflow' on every task pod"),
    ],
)
def test_labels_leoflow_sets_are_refused_naming_where_and_why(where: str, key: str, reason: str) -> None:
    body = f"podLabels: {{{key}: x}}"
    text = HEAD + (
        f"defaults: {{{body}}}\ntasks: {{a: {{command: [x]}}}}\n"
        if where == "defaults"
        else f"tasks: {{a: {{command: [x], {body}}}}}\n"
    )
    p = only_problem(text)
    assert p.path == f"{where}.podLabels.{key}"
    assert p.message.startswith(f"label key '{key}' is reserved: {reason}")


@pytest.mark.parametrize(
    "key", ["leoflow.io/containers", "leoflow.io/attempt-id", "LEOFLOW.IO/agent-version"]
)
def test_leoflow_annotations_other_than_the_webhooks_user_ones_are_refused(key: str) -> None:
    p = only_problem(HEAD + f"tasks:\n  a:\n    command: [x]\n    podAnnotations: {{{key}: x}}\n")
    assert (p.mark.line, p.path) == (6, f"tasks.a.podAnnotations.{key}")
    assert p.message == (
        f"annotation key '{key}' is reserved: leoflow.io/ annotations are Leoflow's (the controller and the "
        "webhook set them); only leoflow.io/agent-path and leoflow.io/entrypoint may be set"
    )


def test_the_managed_by_key_is_only_reserved_as_a_label() -> None:
    _, annotations = _profile_of(
        HEAD + "tasks:\n  a:\n    command: [x]\n    podAnnotations: {app.kubernetes.io/managed-by: me}\n", "a"
    )
    assert annotations == {"app.kubernetes.io/managed-by": "me"}


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("a/b/c", "it has more than one '/'"),
        ("/name", "its prefix before '/' is empty"),
        ("example.com/", "its name part is empty"),
        ("Example.com/name", "its prefix 'Example.com' is not a DNS subdomain"),
        ("-name", "its name part must be letters, digits, '-', '_' and '.', starting and ending"),
        ("n" * 64, "its name part is 64 characters long; the maximum is 63"),
        ("under_score.io/x", "its prefix 'under_score.io' is not a DNS subdomain"),
    ],
)
def test_label_keys_must_be_kubernetes_qualified_names(key: str, problem: str) -> None:
    p = only_problem(HEAD + f"tasks:\n  a:\n    command: [x]\n    podLabels: {{'{key}': x}}\n")
    assert p.path == f"tasks.a.podLabels.{key}"
    assert p.message.startswith(f"label key '{key}' is not a Kubernetes qualified name: {problem}")


def test_annotation_keys_must_be_qualified_names_too() -> None:
    p = only_problem(HEAD + "defaults:\n  podAnnotations: {'has space': x}\ntasks: {a: {command: [x]}}\n")
    assert (p.mark.line, p.path) == (4, "defaults.podAnnotations.has space")
    assert p.message.startswith("annotation key 'has space' is not a Kubernetes qualified name")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "-x",
            "must be empty or letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
        ),
        ("a b", "must be empty or letters, digits"),
        ("v" * 64, "is 64 characters long; the maximum is 63"),
    ],
)
def test_label_values_follow_the_kubernetes_syntax(value: str, message: str) -> None:
    p = only_problem(HEAD + f"tasks:\n  a:\n    command: [x]\n    podLabels: {{team: '{value}'}}\n")
    assert (p.mark.line, p.path) == (6, "tasks.a.podLabels.team")
    assert p.message.startswith(f"label value '{value}' {message}")


def test_empty_and_63_character_label_values_are_valid() -> None:
    labels, _ = _profile_of(
        HEAD + f"tasks:\n  a:\n    command: [x]\n    podLabels: {{empty: '', long: {'v' * 63}}}\n", "a"
    )
    assert labels == {"empty": "", "long": "v" * 63}


def test_an_unquoted_boolean_value_gets_the_quoting_hint() -> None:
    p = only_problem(
        HEAD + "tasks:\n  a:\n    command: [x]\n    podAnnotations: {sidecar.istio.io/inject: false}\n"
    )
    assert p.path == "tasks.a.podAnnotations.sidecar.istio.io/inject"
    assert "quote it" in p.message


def test_annotations_over_the_size_limit_are_refused_on_the_defaults() -> None:
    big = "v" * MAX_POD_ANNOTATIONS_BYTES
    p = only_problem(HEAD + f"defaults:\n  podAnnotations: {{k: {big}}}\ntasks: {{a: {{command: [x]}}}}\n")
    assert (p.mark.line, p.path) == (4, "defaults.podAnnotations")
    assert p.message.startswith(f"the pod's annotations are {MAX_POD_ANNOTATIONS_BYTES + 1} bytes")
    assert "the API server refuses more than 262144" in p.message


def test_annotation_size_counts_the_defaults_merged_into_each_task() -> None:
    half = "v" * (MAX_POD_ANNOTATIONS_BYTES // 2)
    text = HEAD + (
        f"defaults:\n  podAnnotations: {{d: {half}}}\n"
        f"tasks:\n  small: {{command: [x], podAnnotations: {{t: v}}}}\n"
        f"  large: {{command: [x], podAnnotations: {{t: {half}}}}}\n"
    )
    found = problems(text)
    assert [p.path for p in found] == ["tasks.large.podAnnotations"]
    assert "annotations (merged over defaults.podAnnotations) are" in found[0].message


def test_annotation_size_is_counted_in_utf8_bytes_like_the_api_server() -> None:
    assert annotations_bytes({"k": "é"}) == 3

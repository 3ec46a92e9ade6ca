"""``affinity`` goes to the pod as written, so it is held to the Kubernetes ``Affinity`` schema: the
API server would drop a misspelled field without a word, and refuse a wrong type only mid-run."""

from __future__ import annotations

import textwrap

from leoflow.spec.compiler import compile_text
from tests.unit.spec.dagfiles import HEAD, only_problem, problems


def test_misspelled_affinity_field_is_refused_with_the_closest_name() -> None:
    p = only_problem(HEAD + "tasks:\n  a: {command: [x], affinity: {nodeAfinity: {}}}\n")
    assert (p.mark.line, p.mark.column, p.path) == (4, 32, "tasks.a.affinity.nodeAfinity")
    assert p.message == "unknown field 'nodeAfinity'; did you mean 'nodeAffinity'?"


def test_nested_affinity_mistakes_are_each_named_with_their_path() -> None:
    text = HEAD + textwrap.dedent(
        """\
        defaults:
          affinity:
            podAntiAffinity:
              preferredDuringSchedulingIgnoredDuringExecution:
                - weight: "100"
                  podAffinityTerm: {labelSelector: {matchLabels: {app: 1}}}
        tasks:
          a:
            command: [x]
            affinity:
              nodeAffinity:
                requiredDuringSchedulingIgnoredDuringExecution:
                  nodeSelectorTerms: [{matchExpressions: [{key: zone, operatr: In, values: [a]}]}]
              podAffinity: [1]
        """
    )
    term = "defaults.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0]"
    expression = (
        "tasks.a.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
        ".nodeSelectorTerms[0].matchExpressions[0]"
    )
    assert [(p.path, p.message) for p in problems(text)] == [
        (f"{term}.weight", "wrong type: expected an integer, got a string"),
        (f"{term}.podAffinityTerm", "missing required field 'topologyKey'"),
        (
            f"{term}.podAffinityTerm.labelSelector.matchLabels.app",
            "wrong type: expected a string, got an integer (quote it)",
        ),
        (expression, "missing required field 'operator'"),
        (f"{expression}.operatr", "unknown field 'operatr'; did you mean 'operator'?"),
        ("tasks.a.affinity.podAffinity", "wrong type: expected a mapping, got a list"),
    ]


def test_valid_affinity_reaches_the_profile_as_written() -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                ]
            }
        },
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 50, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname"}}
            ]
        },
    }
    spec = compile_text(HEAD + f"tasks:\n  a: {{command: [x], affinity: {affinity}}}\n").spec
    assert spec.profiles[spec.tasks[0].profile].affinity == affinity

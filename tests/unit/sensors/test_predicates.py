from __future__ import annotations

from typing import Any

import pytest

from leoflow.controller.sensors import jsonpath
from leoflow.controller.sensors.outcomes import PokeKind
from leoflow.controller.sensors.predicates import ObjectCondition, PredicateError, RunCondition


@pytest.mark.parametrize(
    ("path", "steps"),
    [
        ("status.succeeded", ("status", "succeeded")),
        (".status.conditions[0].type", ("status", "conditions", 0, "type")),
        ("$.items[-1].id", ("items", -1, "id")),
        ("data['app.conf']", ("data", "app.conf")),
        ("{.status.phase}", ("status", "phase")),
    ],
)
def test_json_path_dialect(path: str, steps: tuple[object, ...]) -> None:
    assert jsonpath.parse(path) == steps


@pytest.mark.parametrize("path", ["", "a..b", "a[x]", "a b"])
def test_bad_json_path_is_reported_with_a_hint(path: str) -> None:
    with pytest.raises(jsonpath.JsonPathError, match="JSON path"):
        jsonpath.parse(path)


def test_lookup_distinguishes_missing_from_present() -> None:
    doc = {"a": [{"b": 0}], "n": None}
    assert jsonpath.lookup(doc, ("a", 0, "b")) == (True, 0)
    assert jsonpath.lookup(doc, ("a", 3, "b")) == (False, None)
    assert jsonpath.lookup(doc, ("a", "b")) == (False, None)


@pytest.mark.parametrize(
    ("found", "expected", "match"),
    [
        ("3", "3", True),
        (3, "3", True),
        (True, "true", True),
        (1, "true", False),
        ({"a": 1}, '{"a": 1}', True),
        ("x", "y", False),
        (2, "x", False),
    ],
)
def test_json_values_compare_like_an_author_expects(found: object, expected: str, match: bool) -> None:
    assert jsonpath.value_matches(found, expected) is match


def job(*conditions: tuple[str, str]) -> dict[str, Any]:
    return {
        "kind": "Job",
        "metadata": {"name": "j"},
        "status": {"conditions": [{"type": t, "status": s, "message": "boom"} for t, s in conditions]},
    }


def test_job_complete_condition() -> None:
    complete = ObjectCondition.parse("Job", "Complete", None, None)
    assert complete.evaluate(None).kind is PokeKind.NOT_YET
    assert complete.evaluate(job()).kind is PokeKind.NOT_YET
    assert complete.evaluate(job(("Complete", "True"))).kind is PokeKind.SATISFIED


def test_failed_job_can_no_longer_complete() -> None:
    poke = ObjectCondition.parse("Job", "Complete", None, None).evaluate(job(("Failed", "True")))
    assert poke.kind is PokeKind.PERMANENT_ERROR
    assert "Failed=True" in poke.detail and "boom" in poke.detail


def test_condition_with_explicit_status() -> None:
    condition = ObjectCondition.parse("Pod", "Ready=False", None, None)
    assert condition.evaluate(job(("Ready", "False"))).kind is PokeKind.SATISFIED
    assert condition.evaluate(job(("Ready", "True"))).kind is PokeKind.NOT_YET


def test_configmap_key_present_and_equal() -> None:
    present = ObjectCondition.parse("ConfigMap", None, "data['ready.flag']", None)
    equal = ObjectCondition.parse("ConfigMap", None, "data.state", "done")
    configmap: dict[str, Any] = {"data": {"state": "running"}}
    assert present.evaluate(configmap).kind is PokeKind.NOT_YET
    assert equal.evaluate(configmap).kind is PokeKind.NOT_YET
    configmap["data"].update({"ready.flag": "yes", "state": "done"})
    assert present.evaluate(configmap).value == "yes"
    assert equal.evaluate(configmap).kind is PokeKind.SATISFIED


def test_object_existence_is_enough_without_condition_or_path() -> None:
    exists = ObjectCondition.parse("Secret", None, None, None)
    assert exists.evaluate({"metadata": {"name": "s"}}).kind is PokeKind.SATISFIED


@pytest.mark.parametrize(
    ("condition", "path", "value"), [("Ready=Maybe", None, None), ("=True", None, None), (None, None, "x")]
)
def test_malformed_conditions_are_rejected(
    condition: str | None, path: str | None, value: str | None
) -> None:
    with pytest.raises(PredicateError):
        ObjectCondition.parse("Job", condition, path, value)


def run(phase: str, task_states: str = "", dag: str = "up", date: str = "2026-01-01") -> dict[str, Any]:
    return {
        "metadata": {"name": f"{dag}-1"},
        "spec": {"dagName": dag, "logicalDate": date},
        "status": {"phase": phase, "taskStates": task_states},
    }


def test_dag_run_condition_selects_by_dag_and_logical_date() -> None:
    wait = RunCondition("up", "2026-01-01", "Succeeded", None)
    assert wait.selects(run("Running"))
    assert not wait.selects(run("Running", dag="other"))
    assert not wait.selects(run("Running", date="2026-01-02"))


def test_dag_run_phase() -> None:
    wait = RunCondition("up", "2026-01-01", "Succeeded", None)
    assert wait.evaluate(run("Running"), None).kind is PokeKind.NOT_YET
    assert wait.evaluate(run("Succeeded"), None).value == "up-1"
    assert wait.evaluate(run("Failed"), None).kind is PokeKind.PERMANENT_ERROR


def test_dag_run_task_state() -> None:
    wait = RunCondition("up", "2026-01-01", "Succeeded", "load")
    assert wait.evaluate(run("Running", "Sr."), None).kind is PokeKind.NOT_YET
    assert wait.evaluate(run("Running", "Sr."), 1).kind is PokeKind.NOT_YET
    assert wait.evaluate(run("Running", "SS."), 1).kind is PokeKind.SATISFIED
    assert wait.evaluate(run("Failed", "SF."), 1).kind is PokeKind.PERMANENT_ERROR
    assert wait.evaluate(run("Running", "S"), 1).kind is PokeKind.NOT_YET

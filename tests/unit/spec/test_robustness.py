"""Whatever the file holds, the compiler answers with a result or with CompileError, never a traceback."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from leoflow.spec.compiler import compile_text
from leoflow.spec.fields import MAX_RESOURCE_BYTES
from leoflow.spec.problems import CompileError
from tests.unit.spec.dagfiles import HEAD, only_problem

KEYS = [
    "dag",
    "image",
    "schedule",
    "cron",
    "timezone",
    "params",
    "type",
    "default",
    "defaults",
    "tasks",
    "command",
    "args",
    "after",
    "trigger",
    "env",
    "outputs",
    "fanOut",
    "items",
    "sensor",
    "http",
    "url",
    "time",
    "delay",
    "retries",
    "retryDelay",
    "timeout",
    "resources",
    "cpu",
    "memory",
    "secret",
    "key",
    "a",
    "b",
    "extract",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=False, width=16),
    st.sampled_from(
        ["x", "a", "b", "30s", "500m", "{{ params.a }}", "{{ tasks.a.outputs.x }}", "{{", "@daily"]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), values, max_size=8))
def test_any_document_compiles_or_fails_with_problems(document: dict[str, Any]) -> None:
    text = yaml.safe_dump(document)
    try:
        compile_text(text)
    except CompileError as err:
        assert err.problems
        assert all(p.mark.line >= 1 and p.message for p in err.problems)


def test_dag_name_too_long_for_run_and_pod_names() -> None:
    p = only_problem("dag: " + "d" * 41 + "\nimage: x\ntasks: {a: {command: [x]}}\n")
    assert (p.mark.line, p.path) == (1, "dag")
    assert "is 41 characters long; the maximum is 40" in p.message


def test_compiled_resource_beyond_the_size_limit() -> None:
    big = "y" * 16_000
    tasks = "".join(f"  t{i}: {{command: [x, {big}]}}\n" for i in range(100))
    p = only_problem(HEAD + "tasks:\n" + tasks)
    assert p.path == "tasks" and p.mark.line == 4
    assert f"the limit is {MAX_RESOURCE_BYTES}" in p.message

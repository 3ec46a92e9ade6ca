"""Building leoflow.yaml texts for the spec tests."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
import yaml
from hypothesis import strategies as st

from leoflow.spec.compiler import compile_text
from leoflow.spec.problems import CompileError, Problem

HEAD = """\
dag: etl
image: registry.example.com/etl:1.4.2
"""


def problems(text: str) -> list[Problem]:
    with pytest.raises(CompileError) as caught:
        compile_text(textwrap.dedent(text), "leoflow.yaml")
    return caught.value.problems


def only_problem(text: str) -> Problem:
    found = problems(text)
    assert len(found) == 1, [str(p) for p in found]
    return found[0]


Edges = dict[str, list[str]]


@st.composite
def acyclic_graphs(draw: st.DrawFn, max_tasks: int = 25) -> Edges:
    count = draw(st.integers(min_value=1, max_value=max_tasks))
    names = [f"t{i}" for i in range(count)]
    edges = {
        name: sorted(draw(st.sets(st.sampled_from(names[:i]), max_size=4))) if i else []
        for i, name in enumerate(names)
    }
    order = draw(st.permutations(names))
    return {name: edges[name] for name in order}


def dag_file(edges: Edges) -> str:
    tasks: dict[str, Any] = {}
    for name, after in edges.items():
        task: dict[str, Any] = {"command": ["run", name]}
        if after:
            task["after"] = after
        tasks[name] = task
    return yaml.safe_dump({"dag": "random", "image": "img:1", "tasks": tasks}, sort_keys=False)

"""Property tests over random DAGs: valid graphs always compile, deterministically; every cycle is found."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leoflow.spec.compiler import compile_text
from leoflow.spec.problems import CompileError
from tests.unit.spec.dagfiles import Edges, acyclic_graphs, dag_file


@st.composite
def graphs(draw: st.DrawFn) -> Edges:
    """Any directed graph, cycles and self-loops included."""
    count = draw(st.integers(min_value=1, max_value=12))
    names = [f"t{i}" for i in range(count)]
    return {name: sorted(draw(st.sets(st.sampled_from(names), max_size=3))) for name in names}


def _reach(edges: Edges) -> dict[str, set[str]]:
    reach = {}
    for start in edges:
        seen: set[str] = set()
        frontier = list(edges[start])
        while frontier:
            node = frontier.pop()
            if node not in seen:
                seen.add(node)
                frontier.extend(edges[node])
        reach[start] = seen
    return reach


def _cyclic_components(edges: Edges) -> set[frozenset[str]]:
    """Oracle: u and v share a cycle iff each reaches the other (independent of the compiler's Tarjan)."""
    reach = _reach(edges)
    return {frozenset(v for v in edges if v in reach[u] and u in reach[v]) for u in edges if u in reach[u]}


@settings(max_examples=150, deadline=None)
@given(acyclic_graphs())
def test_every_acyclic_graph_compiles_with_consistent_indices(edges: Edges) -> None:
    spec = compile_text(dag_file(edges)).spec
    index = spec.task_index()
    assert set(index) == set(edges)
    for i, task in enumerate(spec.tasks):
        assert task.upstreams == sorted(index[u] for u in edges[task.name])
        assert all(u < i for u in task.upstreams)
        for u in task.upstreams:
            assert i in spec.tasks[u].downstreams
    assert sum(len(t.downstreams) for t in spec.tasks) == sum(len(a) for a in edges.values())


@settings(max_examples=100, deadline=None)
@given(acyclic_graphs())
def test_compiling_is_deterministic(edges: Edges) -> None:
    text = dag_file(edges)
    first, second = compile_text(text).resource(), compile_text(text).resource()
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


@settings(max_examples=200, deadline=None)
@given(graphs())
def test_every_cycle_is_found_and_each_reported_cycle_is_real(edges: Edges) -> None:
    expected = _cyclic_components(edges)
    if not expected:
        compile_text(dag_file(edges))
        return
    with pytest.raises(CompileError) as caught:
        compile_text(dag_file(edges))
    cycles = [p.message.removeprefix("cycle: ").split(" -> ") for p in caught.value.problems]
    assert all(p.message.startswith("cycle: ") for p in caught.value.problems)
    covered = [next(comp for comp in expected if set(cycle) <= comp) for cycle in cycles]
    assert sorted(map(sorted, covered)) == sorted(map(sorted, expected)), "one cycle per cyclic component"
    for cycle in cycles:
        assert cycle[0] == cycle[-1]
        for node, upstream in itertools.pairwise(cycle):
            assert upstream in edges[node], f"{node} does not run after {upstream}"

"""Compiled DAG specs for controller tests, built straight from the resource models."""

from __future__ import annotations

from typing import Any

from leoflow.spec.resources import CompiledFanOut, CompiledTask, DagSpec, Profile


def dag(
    edges: dict[str, list[str]],
    *,
    retries: int = 0,
    timeout: int | None = None,
    triggers: dict[str, str] | None = None,
    fan_out: dict[str, CompiledFanOut] | None = None,
    outputs: dict[str, list[str]] | None = None,
    commands: dict[str, list[str]] | None = None,
    prestart: frozenset[str] = frozenset(),
    **profile: Any,
) -> DagSpec:
    """Tasks in the insertion order of ``edges`` (which must be topological): name -> upstream names."""
    names = list(edges)
    index = {name: i for i, name in enumerate(names)}
    downstreams: dict[str, list[int]] = {name: [] for name in names}
    for name, ups in edges.items():
        for up in ups:
            downstreams[up].append(index[name])
    tasks = [
        CompiledTask(
            name=name,
            upstreams=sorted(index[u] for u in ups),
            downstreams=sorted(downstreams[name]),
            trigger=(triggers or {}).get(name, "all_success"),  # type: ignore[arg-type]
            command=(commands or {}).get(name, ["sh", "-c", f"echo {name}"]),
            outputs=(outputs or {}).get(name, []),
            fanOut=(fan_out or {}).get(name),
            prestart=name in prestart,
        )
        for name, ups in edges.items()
    ]
    base = Profile(image="registry.local/app:1", retries=retries, timeoutSeconds=timeout, **profile)
    return DagSpec(image=base.image, profiles=[base], tasks=tasks, definitionHash="0123456789abcdef")

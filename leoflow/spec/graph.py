"""Drawing a compiled DAG: plain text, Graphviz dot, or Mermaid.

Works on the compiled spec, so the picture shows exactly what the controller will run, in
topological order.
"""

from __future__ import annotations

from typing import Literal

from leoflow.spec.resources import CompiledTask, DagSpec

Format = Literal["text", "dot", "mermaid"]


def _label(task: CompiledTask) -> str:
    extras: list[str] = []
    if task.trigger != "all_success":
        extras.append(task.trigger)
    if task.fanOut is not None:
        extras.append("fan-out")
    if task.sensor is not None:
        extras.append("sensor")
    return f"{task.name} ({', '.join(extras)})" if extras else task.name


def render(name: str, spec: DagSpec, fmt: Format) -> str:
    tasks = spec.tasks
    if fmt == "dot":
        lines = [f'digraph "{name}" {{', "  rankdir=LR;"]
        lines += [f'  "{t.name}" [label="{_label(t)}"];' for t in tasks]
        lines += [f'  "{tasks[u].name}" -> "{t.name}";' for t in tasks for u in t.upstreams]
        return "\n".join([*lines, "}"]) + "\n"
    if fmt == "mermaid":
        lines = ["flowchart LR"]
        lines += [f'  t{i}["{_label(t)}"]' for i, t in enumerate(tasks)]
        lines += [f"  t{u} --> t{i}" for i, t in enumerate(tasks) for u in t.upstreams]
        return "\n".join(lines) + "\n"
    width = len(str(len(tasks) - 1)) if tasks else 1
    lines = [f"{name}: {len(tasks)} tasks, definition {spec.definitionHash}"]
    for i, task in enumerate(tasks):
        after = ", ".join(tasks[u].name for u in task.upstreams)
        lines.append(f"{i:>{width}}  {_label(task)}" + (f"  <- {after}" if after else ""))
    return "\n".join(lines) + "\n"

"""Checks that need the whole file: the task graph, templates, schedule, params, env names.

They run on the raw parsed document, not on the validated model, so they still report their
findings when other parts of the file are malformed: the author sees every problem in one pass.
"""

from __future__ import annotations

import difflib
from decimal import Decimal
from typing import Any

from leoflow.spec import kubeschema
from leoflow.spec.fields import ENV_NAME, quantity_value
from leoflow.spec.podmetadata import ANNOTATIONS_LIMIT_BYTES, MAX_POD_ANNOTATIONS_BYTES, annotations_bytes
from leoflow.spec.problems import Path, Problem
from leoflow.spec.schedule import ScheduleError, check_cron, check_timezone
from leoflow.spec.source import Document
from leoflow.spec.templates import Reference, TemplateError, has_template, references


def check(doc: Document) -> list[Problem]:
    """Every cross-field problem in ``doc``."""
    return [
        *_check_graph(doc),
        *_check_schedule(doc),
        *_check_params(doc),
        *_check_env_names(doc),
        *_check_annotation_sizes(doc),
        *_check_prestart(doc),
        *_check_affinity(doc),
        *_check_resources(doc),
    ]


def _pod_settings(doc: Document) -> list[tuple[Path, dict[str, Any]]]:
    """``defaults`` and every task, each with its path: where the task settings are written."""
    defaults = doc.data.get("defaults")
    holders: list[tuple[Path, dict[str, Any]]] = []
    if isinstance(defaults, dict):
        holders.append((("defaults",), defaults))
    return holders + [(("tasks", name), task) for name, task in _raw_tasks(doc).items()]


def _check_affinity(doc: Document) -> list[Problem]:
    problems = []
    for path, holder in _pod_settings(doc):
        affinity = holder.get("affinity")
        if isinstance(affinity, dict):
            for found in kubeschema.check(affinity, "V1Affinity"):
                where = (*path, "affinity", *found.path)
                problems.append(doc.problem(where, found.message, key=found.on_key))
    return problems


def _raw_tasks(doc: Document) -> dict[str, dict[str, Any]]:
    tasks = doc.data.get("tasks")
    if not isinstance(tasks, dict):
        return {}
    return {k: v for k, v in tasks.items() if isinstance(k, str) and isinstance(v, dict)}


def _defaults_env(doc: Document) -> dict[str, Any]:
    defaults = doc.data.get("defaults")
    env = defaults.get("env") if isinstance(defaults, dict) else None
    return env if isinstance(env, dict) else {}


def _raw_after(task: dict[str, Any]) -> list[tuple[int, str]]:
    after = task.get("after")
    if not isinstance(after, list):
        return []
    return [(i, name) for i, name in enumerate(after) if isinstance(name, str)]


def _check_graph(doc: Document) -> list[Problem]:
    tasks = _raw_tasks(doc)
    problems: list[Problem] = []
    edges: dict[str, list[str]] = {name: [] for name in tasks}
    for name, task in tasks.items():
        seen: set[str] = set()
        for i, upstream in _raw_after(task):
            where: Path = ("tasks", name, "after", i)
            if upstream in seen:
                problems.append(doc.problem(where, f"'{upstream}' is listed twice"))
            elif upstream not in tasks:
                close = difflib.get_close_matches(upstream, list(tasks), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                problems.append(doc.problem(where, f"unknown task '{upstream}'{hint}"))
            else:
                edges[name].append(upstream)
            seen.add(upstream)
    cycles = find_cycles(edges)
    for cycle in cycles:
        problems.append(
            doc.problem(("tasks", cycle[0], "after"), "cycle: " + " -> ".join([*cycle, cycle[0]]))
        )
    if not cycles:
        problems.extend(_check_templates(doc, tasks, edges))
    return problems


def find_cycles(edges: dict[str, list[str]]) -> list[list[str]]:
    """One concrete cycle per strongly connected component that has one (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            successors = edges[node]
            if child < len(successors):
                work.append((node, child + 1))
                nxt = successors[child]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges[node]:
                    components.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    order = {name: i for i, name in enumerate(edges)}
    return sorted((_cycle_in(c, edges, order) for c in components), key=lambda c: order[c[0]])


def _cycle_in(component: list[str], edges: dict[str, list[str]], order: dict[str, int]) -> list[str]:
    members = set(component)
    start = min(component, key=order.__getitem__)
    path = [start]
    seen = {start}
    node = start
    while True:
        successors = [n for n in edges[node] if n in members]
        if start in successors:
            return path
        nxt = next((n for n in successors if n not in seen), None)
        if nxt is None:
            # A dead end inside an SCC cannot happen; a BFS back to start is the general answer.
            return _shortest_cycle(start, edges, members)
        path.append(nxt)
        seen.add(nxt)
        node = nxt


def _shortest_cycle(start: str, edges: dict[str, list[str]], members: set[str]) -> list[str]:
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in edges[node]:
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return path[::-1]
                if nxt in members and nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    return [start]


class _Ancestry:
    """Is one task upstream of another, directly or transitively? Searched only when asked.

    A full transitive closure of a 10,000-task DAG costs tens of millions of set entries; templates
    name an upstream output only now and then, and the upstream is usually a direct one.
    """

    def __init__(self, edges: dict[str, list[str]]) -> None:
        self.edges = edges
        self.memo: dict[tuple[str, str], bool] = {}

    def is_upstream(self, ancestor: str, task: str) -> bool:
        if ancestor in self.edges.get(task, ()):
            return True
        key = (ancestor, task)
        if key not in self.memo:
            seen = {task}
            frontier = [task]
            found = False
            while frontier and not found:
                following = []
                for node in frontier:
                    for upstream in self.edges[node]:
                        if upstream == ancestor:
                            found = True
                        elif upstream not in seen:
                            seen.add(upstream)
                            following.append(upstream)
                frontier = following
            self.memo[key] = found
        return self.memo[key]


def _strings(value: Any, path: Path) -> list[tuple[Path, str]]:
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(v, (*path, k))]
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in _strings(v, (*path, i))]
    return []


def _env_strings(env: Any, path: Path, skip: Any = ()) -> list[tuple[Path, str]]:
    if not isinstance(env, dict):
        return []
    return [((*path, k), v) for k, v in env.items() if isinstance(v, str) and k not in skip]


def _templated_strings(doc: Document, name: str, task: dict[str, Any]) -> list[tuple[Path, str]]:
    """The strings rendered when the task runs (the model refuses a template anywhere else),
    with the ``defaults.env`` values the task inherits if it runs a pod: rendered there too."""
    base: Path = ("tasks", name)
    found = [s for f in ("command", "args", "sensor") for s in _strings(task.get(f), (*base, f))]
    found += _env_strings(task.get("env"), (*base, "env"))
    fan_out = task.get("fanOut")
    if isinstance(fan_out, dict) and isinstance(fan_out.get("items"), str):
        found.append(((*base, "fanOut", "items"), fan_out["items"]))
    sensor = task.get("sensor")
    if not isinstance(sensor, dict) or "command" in sensor:
        own = task.get("env")
        found += _env_strings(_defaults_env(doc), ("defaults", "env"), own if isinstance(own, dict) else ())
    return found


def _check_templates(
    doc: Document, tasks: dict[str, dict[str, Any]], edges: dict[str, list[str]]
) -> list[Problem]:
    params = doc.data.get("params")
    param_names = set(params) if isinstance(params, dict) else set()
    ancestry = _Ancestry(edges)
    problems: list[Problem] = []
    for name, task in tasks.items():
        fan_out = task.get("fanOut")
        for path, text in _templated_strings(doc, name, task):
            if not has_template(text):
                continue
            try:
                refs = references(text)
            except TemplateError as err:
                problems.append(doc.problem(path, str(err)))
                continue
            for ref in refs:
                message = _unresolved(
                    ref,
                    task=name,
                    tasks=tasks,
                    ancestry=ancestry,
                    params=param_names,
                    fan_out=fan_out is not None,
                )
                if message:
                    problems.append(doc.problem(path, message))
        if isinstance(fan_out, dict) and isinstance(fan_out.get("items"), str):
            problems.extend(_check_fan_out_source(doc, name, fan_out["items"]))
    return problems


def _unresolved(
    ref: Reference,
    *,
    task: str,
    tasks: dict[str, dict[str, Any]],
    ancestry: _Ancestry,
    params: set[str],
    fan_out: bool,
) -> str | None:
    if ref.kind == "param" and ref.name not in params:
        close = difflib.get_close_matches(ref.name, sorted(params), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"'{{{{ {ref.expression} }}}}' refers to no param '{ref.name}'{hint}"
    if ref.kind == "item" and not fan_out:
        return "'{{ item }}' is only bound in a task with a 'fanOut' block"
    if ref.kind != "output":
        return None
    if ref.task not in tasks:
        return f"'{{{{ {ref.expression} }}}}' refers to no task '{ref.task}'"
    if not ancestry.is_upstream(ref.task, task):
        return (
            f"'{{{{ {ref.expression} }}}}' refers to task '{ref.task}', which is not upstream of '{task}': "
            f"add it to 'after'"
        )
    declared = tasks[ref.task].get("outputs")
    if not isinstance(declared, list) or ref.name not in declared:
        return f"'{{{{ {ref.expression} }}}}': task '{ref.task}' declares no output '{ref.name}' in 'outputs'"
    return None


def _check_fan_out_source(doc: Document, task: str, text: str) -> list[Problem]:
    path: Path = ("tasks", task, "fanOut", "items")
    try:
        refs = references(text)
    except TemplateError:
        return []
    stripped = text.strip()
    whole = stripped.startswith("{{") and stripped.endswith("}}")
    if len(refs) != 1 or refs[0].kind != "output" or not whole:
        return [
            doc.problem(path, "fan-out 'items' must be a list or exactly one '{{ tasks.TASK.outputs.NAME }}'")
        ]
    return []


def _check_schedule(doc: Document) -> list[Problem]:
    schedule = doc.data.get("schedule")
    if not isinstance(schedule, dict):
        return []
    problems = []
    cron, zone = schedule.get("cron"), schedule.get("timezone")
    # A template in either is the model's to report: it is not rendered.
    try:
        if isinstance(cron, str) and not has_template(cron):
            check_cron(cron)
    except ScheduleError as err:
        problems.append(doc.problem(("schedule", "cron"), str(err)))
    try:
        if isinstance(zone, str) and not has_template(zone):
            check_timezone(zone)
    except ScheduleError as err:
        problems.append(doc.problem(("schedule", "timezone"), str(err)))
    return problems


_PARAM_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def _check_params(doc: Document) -> list[Problem]:
    params = doc.data.get("params")
    if not isinstance(params, dict):
        return []
    problems = []
    for name, param in params.items():
        if not isinstance(param, dict) or "default" not in param:
            continue
        default, kind = param["default"], param.get("type", "string")
        path: Path = ("params", name, "default")
        expected = _PARAM_TYPES.get(kind) if isinstance(kind, str) else None
        if expected is None or not isinstance(default, str | int | float | bool):
            continue
        bad_bool = isinstance(default, bool) and kind != "boolean"
        if bad_bool or not isinstance(default, expected):
            problems.append(doc.problem(path, f"default {default!r} is not of type {kind}"))
        elif isinstance(default, str):
            try:
                refs = references(default)
            except TemplateError as err:
                problems.append(doc.problem(path, str(err)))
                continue
            for ref in refs:
                if ref.kind not in ("logical_date", "run_id"):
                    problems.append(
                        doc.problem(
                            path,
                            f"a param default may use only logical_date and run_id, not '{ref.expression}'",
                        )
                    )
    return problems


def _check_env_names(doc: Document) -> list[Problem]:
    problems = []
    holders: list[tuple[Path, Any]] = [(("defaults", "env"), _defaults_env(doc))]
    holders += [(("tasks", n, "env"), t.get("env")) for n, t in _raw_tasks(doc).items()]
    for path, env in holders:
        if not isinstance(env, dict):
            continue
        for key in env:
            # A key YAML did not read as a string is the model's to report (quote it).
            if isinstance(key, str) and not ENV_NAME.match(key):
                problems.append(
                    doc.problem((*path, key), f"'{key}' is not a valid environment variable name", key=True)
                )
    return problems


def _check_prestart(doc: Document) -> list[Problem]:
    """A task that asks for ``prestart: true`` itself and cannot have it is told why."""
    problems = []
    for name, task in _raw_tasks(doc).items():
        if task.get("prestart") is not True:
            continue
        where: Path = ("tasks", name, "prestart")
        if "sensor" in task:
            problems.append(doc.problem(where, "a sensor task runs no pod to create ahead"))
        elif "fanOut" in task:
            problems.append(
                doc.problem(where, "a fan-out task's pods are created when it starts: remove 'prestart'")
            )
        elif task.get("trigger", "all_success") != "all_success":
            problems.append(
                doc.problem(
                    where,
                    f"only an 'all_success' task is created ahead; a '{task.get('trigger')}' task's pod "
                    "would mostly be thrown away: remove 'prestart'",
                )
            )
        elif not task.get("after"):
            problems.append(
                doc.problem(
                    where,
                    "a task with no upstream ('after') starts with the run, so there is nothing to "
                    "create its pod ahead of: remove 'prestart'",
                )
            )
        strings = [s for f in ("command", "args", "env") for s in _strings(task.get(f), ("tasks", name, f))]
        own_env = task.get("env")
        skip = own_env if isinstance(own_env, dict) else ()
        strings += _env_strings(_defaults_env(doc), ("defaults", "env"), skip)
        for path, text in strings:
            try:
                refs = references(text)
            except TemplateError:
                continue
            ref = next((r for r in refs if r.kind == "output"), None)
            if ref is not None:
                template, at = f"'{{{{ {ref.expression} }}}}'", path
                if path[0] == "defaults":
                    # Inherited, so this task's problem: point at its prestart and name the source.
                    template, at = f"its env {path[-1]} (from defaults.env) is {template}, which", where
                problems.append(
                    doc.problem(
                        at,
                        f"{template} is known only once '{ref.task}' has finished, so "
                        "this task's pod cannot be created ahead: remove 'prestart: true'",
                    )
                )
                break
    return problems


def _raw_annotations(holder: Any) -> dict[str, str]:
    annotations = holder.get("podAnnotations") if isinstance(holder, dict) else None
    if not isinstance(annotations, dict):
        return {}
    return {k: v for k, v in annotations.items() if isinstance(k, str) and isinstance(v, str)}


def _check_annotation_sizes(doc: Document) -> list[Problem]:
    """A pod carries the task's annotations merged over the defaults', so the sum is what counts."""
    inherited = _raw_annotations(doc.data.get("defaults"))
    size = annotations_bytes(inherited)
    if size > MAX_POD_ANNOTATIONS_BYTES:
        return [doc.problem(("defaults", "podAnnotations"), _too_large(size, ""))]
    problems = []
    for name, task in _raw_tasks(doc).items():
        own = _raw_annotations(task)
        if not own:
            continue
        size = annotations_bytes({**inherited, **own})
        if size > MAX_POD_ANNOTATIONS_BYTES:
            merged = " (merged over defaults.podAnnotations)" if inherited else ""
            problems.append(doc.problem(("tasks", name, "podAnnotations"), _too_large(size, merged)))
    return problems


def _too_large(size: int, merged: str) -> str:
    return (
        f"the pod's annotations{merged} are {size} bytes (keys plus values); the limit is "
        f"{MAX_POD_ANNOTATIONS_BYTES}: the API server refuses more than {ANNOTATIONS_LIMIT_BYTES}, "
        f"and Leoflow keeps {ANNOTATIONS_LIMIT_BYTES - MAX_POD_ANNOTATIONS_BYTES} for its own"
    )


_LIMITED_RESOURCES = ("cpu", "memory", "ephemeralStorage")


def _quantities(holder: Any, *keys: str) -> dict[str, tuple[Decimal, str, Path]]:
    """The limited resources of ``holder[keys...]`` that are valid quantities: value, text, where."""
    found: dict[str, tuple[Decimal, str, Path]] = {}
    block = holder
    for key in keys:
        block = block.get(key) if isinstance(block, dict) else None
    if not isinstance(block, dict):
        return found
    for name in _LIMITED_RESOURCES:
        raw = block.get(name)
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            continue
        text = repr(raw) if isinstance(raw, float) else str(raw)
        value = quantity_value(text)
        if value is not None:
            found[name] = (value, text, (*keys, name))
    return found


def _check_resources(doc: Document) -> list[Problem]:
    """A limit below its request (the task's merged over ``defaults``) is a pod the API server
    refuses. Memory without a limit of its own is limited to its request, so it cannot be below.
    Reported where the task sets one of the two; a pair both inherited, once on ``defaults``."""
    defaults = doc.data.get("defaults")
    inherited = (_quantities(defaults, "resources"), _quantities(defaults, "resources", "limits"))
    problems = []
    for path, holder in _pod_settings(doc):
        own_requests = _quantities(holder, "resources")
        own_limits = _quantities(holder, "resources", "limits")
        for name in _LIMITED_RESOURCES:
            own_request, own_limit = own_requests.get(name), own_limits.get(name)
            if path[0] == "defaults" or (own_request is None and own_limit is None):
                request, limit = own_request, own_limit
            else:
                request = own_request or inherited[0].get(name)
                limit = own_limit or inherited[1].get(name)
            if request is None or limit is None or limit[0] >= request[0]:
                continue
            if own_limit is not None or path[0] == "defaults":
                where, inherited_from = (*path, *limit[2]), "" if own_request else " (from defaults)"
                said = f"the {name} limit {limit[1]} is below the {name} request {request[1]}{inherited_from}"
            else:
                where = (*path, *request[2])
                said = f"the {name} request {request[1]} is above the {name} limit {limit[1]} (from defaults)"
            fix = "Kubernetes refuses such a pod; raise the limit or lower the request"
            problems.append(doc.problem(where, f"{said}: {fix}"))
    return problems

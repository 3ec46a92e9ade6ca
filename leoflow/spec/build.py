"""From a validated ``DagFile`` to the compiled ``DagSpec``: order, indices, profiles, hash.

Runs only on a file that passed every check, so it may assume names resolve and the graph is
acyclic. Everything the controller would otherwise work out per run is resolved here.
"""

from __future__ import annotations

import heapq
from typing import Any, TypeVar

from leoflow.spec import resources as res
from leoflow.spec.model import ConfigMapRef, DagFile, EnvValue, Resources, SecretRef, Task
from leoflow.spec.templates import has_template, references

_T = TypeVar("_T")
_DEFAULT_RETRY_DELAY = 30
_DEFAULT_BACKOFF = 2.0
_DEFAULT_MAX_RETRY_DELAY = 600


def topological_order(names: list[str], upstreams: dict[str, list[str]]) -> list[str]:
    """Kahn's algorithm; ties go to file order, so the result is deterministic."""
    position = {name: i for i, name in enumerate(names)}
    waiting = {name: len(upstreams[name]) for name in names}
    downstream: dict[str, list[str]] = {name: [] for name in names}
    for name in names:
        for upstream in upstreams[name]:
            downstream[upstream].append(name)
    ready = [position[n] for n in names if waiting[n] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        name = names[heapq.heappop(ready)]
        order.append(name)
        for nxt in downstream[name]:
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                heapq.heappush(ready, position[nxt])
    return order


def _env_var(name: str, value: EnvValue) -> res.EnvVar:
    if isinstance(value, SecretRef):
        ref = res.EnvVarSecretKeyRef(name=value.secret, key=value.key, optional=value.optional)
        return res.EnvVar(name=name, valueFrom=res.EnvVarSource(secretKeyRef=ref))
    if isinstance(value, ConfigMapRef):
        ref = res.EnvVarSecretKeyRef(name=value.configMap, key=value.key, optional=value.optional)
        return res.EnvVar(name=name, valueFrom=res.EnvVarSource(configMapKeyRef=ref))
    return res.EnvVar(name=name, value=value)


_RESOURCE_NAMES = {
    "cpu": "cpu",
    "memory": "memory",
    "ephemeralStorage": "ephemeral-storage",
    "gpu": "nvidia.com/gpu",
}


def _requirements(defaults: Resources | None, own: Resources | None) -> res.ResourceRequirements:
    merged: dict[str, str] = {}
    limits: dict[str, str] = {}
    for source in (defaults, own):
        if source is None:
            continue
        for field, key in _RESOURCE_NAMES.items():
            value = getattr(source, field)
            if value is not None:
                merged[key] = value
        if source.limits is not None:
            for field in ("cpu", "memory", "ephemeralStorage"):
                value = getattr(source.limits, field)
                if value is not None:
                    limits[_RESOURCE_NAMES[field]] = value
    for key in ("memory", "nvidia.com/gpu"):
        if key in merged:
            limits.setdefault(key, merged[key])
    return res.ResourceRequirements(requests=merged, limits=limits)


def _profile(dag: DagFile, task: Task) -> res.Profile:
    d = dag.defaults
    own_env = set(task.env or {})
    env = [_env_var(k, v) for k, v in (d.env or {}).items() if k not in own_env]
    tolerations = task.tolerations if task.tolerations is not None else d.tolerations
    return res.Profile(
        image=task.image or d.image or dag.image,
        resources=_requirements(d.resources, task.resources),
        env=env,
        nodeSelector=task.nodeSelector if task.nodeSelector is not None else (d.nodeSelector or {}),
        tolerations=[res.Toleration(**t.model_dump(exclude_none=True)) for t in tolerations or []],
        affinity=task.affinity if task.affinity is not None else d.affinity,
        serviceAccountName=task.serviceAccountName or d.serviceAccountName,
        podLabels={**(d.podLabels or {}), **(task.podLabels or {})},
        podAnnotations={**(d.podAnnotations or {}), **(task.podAnnotations or {})},
        retries=_first(task.retries, d.retries, 0),
        retryDelaySeconds=_first(task.retryDelay, d.retryDelay, _DEFAULT_RETRY_DELAY),
        retryBackoff=_first(task.retryBackoff, d.retryBackoff, _DEFAULT_BACKOFF),
        maxRetryDelaySeconds=_first(task.maxRetryDelay, d.maxRetryDelay, _DEFAULT_MAX_RETRY_DELAY),
        timeoutSeconds=task.timeout if task.timeout is not None else d.timeout,
    )


def _first(*values: _T | None) -> _T:
    for value in values:
        if value is not None:
            return value
    raise ValueError("no value")


_PROFILE_FIELDS = frozenset(
    {
        "retries",
        "retryDelay",
        "retryBackoff",
        "maxRetryDelay",
        "timeout",
        "resources",
        "image",
        "nodeSelector",
        "tolerations",
        "affinity",
        "serviceAccountName",
        "podLabels",
        "podAnnotations",
    }
)


def _profile_key(task: Task) -> str:
    """Tasks that override nothing share one profile without serialising anything."""
    overrides = _PROFILE_FIELDS & task.model_fields_set
    if not overrides and not task.env:
        return ""
    return task.model_dump_json(include={*overrides, "env"})


def _fan_out(task: Task, index: dict[str, int]) -> res.CompiledFanOut | None:
    if task.fanOut is None:
        return None
    items = task.fanOut.items
    if isinstance(items, list):
        return res.CompiledFanOut(items=[_scalar_text(v) for v in items], maxParallel=task.fanOut.maxParallel)
    ref = references(items)[0]
    return res.CompiledFanOut(
        fromTask=index[ref.task], fromOutput=ref.name, maxParallel=task.fanOut.maxParallel
    )


def _scalar_text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _sensor(task: Task) -> res.CompiledSensor | None:
    s = task.sensor
    if s is None:
        return None
    time = res.CompiledTimeSensor(delaySeconds=s.time.delay, at=s.time.at) if s.time else None
    http = None
    if s.http is not None:
        fields = s.http.model_dump(exclude={"requestTimeout"})
        http = res.CompiledHttpSensor(**fields, requestTimeoutSeconds=s.http.requestTimeout)
    return res.CompiledSensor(
        time=time,
        http=http,
        kubernetes=s.kubernetes,
        dagRun=s.dagRun,
        command=s.command,
        pokeIntervalSeconds=s.pokeInterval,
        maxPokeIntervalSeconds=s.maxPokeInterval,
        pokeBackoff=s.pokeBackoff,
        timeoutSeconds=s.timeout,
        softFail=s.softFail,
    )


def _templated(task: Task) -> bool:
    texts = [
        *(task.command or []),
        *(task.args or []),
        *(v for v in (task.env or {}).values() if isinstance(v, str)),
    ]
    if task.fanOut is not None and isinstance(task.fanOut.items, str):
        texts.append(task.fanOut.items)
    if task.sensor is not None:
        texts.append(task.sensor.model_dump_json())
    return any(has_template(t) for t in texts)


def _prestart(dag: DagFile, task: Task, profile: res.Profile) -> bool:
    """Whether the task's pod is created ahead: asked for (``auto`` unless said otherwise), likely
    to run (``all_success``: a pod made for a ``one_failed`` handler would almost always be thrown
    away), and nothing in the pod depends on how the upstreams end (their outputs, a fan-out's
    items). ``auto`` leaves out pods that request extended resources (GPUs), and tasks after a
    sensor: the waiting pod would hold a second GPU for its upstreams' whole run, or its requests
    for as long as a sensor waits (hours, often). The checks refuse an explicit ``true`` that
    cannot be honoured; one inherited from ``defaults``, and ``auto``, apply where they can."""
    wanted = task.prestart if task.prestart is not None else dag.defaults.prestart
    if wanted is None:
        wanted = "auto"
    if wanted is False or task.command is None or task.fanOut is not None or not task.after:
        return False
    if wanted == "auto" and (
        any("/" in name for name in profile.resources.requests)
        or any(dag.tasks[upstream].sensor is not None for upstream in task.after)
    ):
        return False
    if task.trigger != "all_success":
        return False
    own_env = (v for v in (task.env or {}).values() if isinstance(v, str))
    # The profile's env is what the task inherits from defaults: rendered into its pod as well.
    inherited_env = (e.value for e in profile.env if e.value is not None)
    texts = [*task.command, *(task.args or []), *own_env, *inherited_env]
    return not any(ref.kind == "output" for text in texts for ref in references(text))


def build(dag: DagFile) -> tuple[res.DagSpec, dict[str, Any]]:
    """The compiled spec and its dumped JSON form (computed once: hashing and sizing both need it).

    Tasks are assembled as plain dicts and validated in one call: for 10,000 tasks that is several
    times faster than constructing each model from Python.
    """
    names = list(dag.tasks)
    order = topological_order(names, {n: list(t.after) for n, t in dag.tasks.items()})
    index = {name: i for i, name in enumerate(order)}
    profiles: list[res.Profile] = []
    profile_of: dict[str, int] = {}
    seen_profiles: dict[str, int] = {}
    tasks: list[dict[str, Any]] = []
    for name in order:
        task = dag.tasks[name]
        key = _profile_key(task)
        if key not in profile_of:
            profile = _profile(dag, task)
            identity = profile.model_dump_json()
            if identity not in seen_profiles:
                seen_profiles[identity] = len(profiles)
                profiles.append(profile)
            profile_of[key] = seen_profiles[identity]
        compiled: dict[str, Any] = {
            "name": name,
            "upstreams": sorted(index[u] for u in task.after),
            "trigger": task.trigger,
            "profile": profile_of[key],
            "command": task.command,
            "args": task.args,
            "outputs": task.outputs,
            "templated": _templated(task),
        }
        if _prestart(dag, task, profiles[profile_of[key]]):
            compiled["prestart"] = True
        if task.env:
            compiled["env"] = [_env_var(k, v) for k, v in task.env.items()]
        if task.fanOut is not None:
            compiled["fanOut"] = _fan_out(task, index)
        if task.sensor is not None:
            compiled["sensor"] = _sensor(task)
        tasks.append(compiled)
    schedule = None
    if dag.schedule is not None:
        schedule = res.CompiledSchedule(
            cron=dag.schedule.cron,
            timezone=dag.schedule.timezone,
            catchup=dag.schedule.catchup,
            concurrencyPolicy=dag.schedule.concurrencyPolicy,
            maxActiveRuns=dag.schedule.maxActiveRuns,
        )
    params = [
        res.CompiledParam(name=n, type=p.type, default=None if p.default is None else _scalar_text(p.default))
        for n, p in dag.params.items()
    ]
    unhashed = res.DagSpec.model_validate(
        {
            "image": dag.image,
            "description": dag.description,
            "schedule": schedule,
            "params": params,
            "profiles": profiles,
            "tasks": tasks,
            "definitionHash": "",
        }
    )
    data = res.dump(unhashed)
    digest = res.definition_hash(data)
    data["definitionHash"] = digest
    return unhashed.model_copy(update={"definitionHash": digest}), data

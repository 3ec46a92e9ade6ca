"""The compiled form: ``DAG`` and ``DAGRun`` resources (group ``leoflow.io``, version ``v1alpha1``).

These models are the contract between the compiler, the API server (the CRD schemas in
``manifests/crds/`` are generated from them by ``leoflow.spec.crds``) and the controller. The
controller never parses leoflow.yaml and never merges defaults: everything is resolved here.

DAG ``spec`` (``DagSpec``):

- ``tasks`` is a list in topological order; a task's *index* is its position in that list.
  ``upstreams``/``downstreams`` are sorted lists of indices; every upstream index is smaller than
  the task's own index, so a single forward pass visits tasks in dependency order. Only
  ``upstreams`` is stored; ``downstreams`` is derived when the spec is loaded through ``DagSpec``
  (storing both adds a fifth to a large DAG, which then no longer fits in 1 MiB).
- ``profiles`` holds the resolved settings that tasks share (image, resources, nodeSelector,
  tolerations, affinity, serviceAccountName, pod labels and annotations, env inherited from
  ``defaults``, retries and backoff, timeout). ``task.profile`` is an index into it. Sharing
  keeps a 10,000-task DAG under 1 MiB.
  A pod's env is ``profile.env`` followed by ``task.env``; the compiler guarantees the names are
  disjoint (a task that overrides an inherited variable gets its own profile without it).
- durations are whole seconds (``...Seconds`` fields); quantities are Kubernetes quantity strings.
- strings may hold templates (``{{ params.p }}``, ``{{ tasks.t.outputs.o }}``, ``{{ logical_date }}``,
  ``{{ run_id }}``, ``{{ item }}``), already checked to resolve; ``leoflow.spec.templates`` renders them.
  ``task.templated`` says whether any of the task's strings needs rendering at all.
- a task has either ``command`` (a pod per attempt) or ``sensor`` (waits in the controller).
- ``fanOut`` maps a task over literal ``items`` or over the list output ``fromOutput`` of the
  upstream task ``fromTask`` (an index); each item becomes one pod with ``{{ item }}`` bound.
- ``definitionHash`` (16 hex digits) is the sha256 of the canonical JSON of the spec without it:
  the identity of this version of the DAG.

Serialised with ``to_resource`` (defaults omitted, so what the API server stores and returns equals
what was applied); read with ``DagSpec.model_validate(obj["spec"])``.

DAGRun: ``spec`` is what the creator asks for (``dagName``, ``params`` as strings, ``logicalDate``,
optionally ``definitionHash`` to insist on a version). A run keeps the definition it started with:
on start the controller writes the DAG spec it is about to run into an immutable ConfigMap named
``definition_configmap_name(dag, hash)`` (``leoflow.spec.snapshots``) and records the hash in
``status.definitionHash``; from then on it reads the run's definition only from that ConfigMap, so a
changed DAG or a controller restart does not change a running run.

``status.taskStates`` is one character per task index (``TaskState`` codes); fan-out items are in
``status.items[str(index)]``, one character per item. ``status.tasks`` holds details only for tasks
with something to say (attempts > 1, a message, outputs, a pod), keyed by ``str(index)``.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema, model_validator

from leoflow.spec.fields import MAX_TASK_NAME, HeaderName, HeaderValue, Quantity
from leoflow.spec.model import (
    CommandSensor,
    ConcurrencyPolicy,
    DagRunSensor,
    HeaderFromSecret,
    KubernetesSensor,
    ParamType,
    TriggerRule,
)

GROUP = "leoflow.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


def _whole_as_int(value: float) -> float:
    """``3.0`` as ``3``: the API server stores JSON numbers that way, and the hash must not change."""
    return int(value) if value.is_integer() else value


class ResourceModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, use_attribute_docstrings=True)


class EnvVarSecretKeyRef(ResourceModel):
    name: str
    key: str
    optional: bool = False


class EnvVarSource(ResourceModel):
    secretKeyRef: EnvVarSecretKeyRef | None = None
    configMapKeyRef: EnvVarSecretKeyRef | None = None


class EnvVar(ResourceModel):
    """The Kubernetes ``EnvVar`` subset Leoflow emits."""

    name: str
    value: str | None = None
    valueFrom: EnvVarSource | None = None


class ResourceRequirements(ResourceModel):
    """Kubernetes ``ResourceRequirements``: quantities by resource name (``cpu``, ``memory``, ...)."""

    requests: dict[str, Quantity] = Field(default_factory=dict, json_schema_extra={"x-quantity-map": True})
    limits: dict[str, Quantity] = Field(default_factory=dict, json_schema_extra={"x-quantity-map": True})


class Toleration(ResourceModel):
    key: str | None = None
    operator: str | None = None
    value: str | None = None
    effect: str | None = None
    tolerationSeconds: int | None = None


class Profile(ResourceModel):
    """Resolved settings shared by tasks: a pod's template and the retry policy."""

    image: str
    """The container image."""
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)
    env: list[EnvVar] = Field(default_factory=list)
    nodeSelector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    affinity: dict[str, Any] | None = Field(default=None, json_schema_extra={"x-free-form": True})
    serviceAccountName: str | None = None
    podLabels: dict[str, str] = Field(default_factory=dict)
    """Labels of the task's pods besides Leoflow's own: the task's merged over the defaults'."""
    podAnnotations: dict[str, str] = Field(default_factory=dict)
    """Annotations of the task's pods besides Leoflow's own: the task's merged over the defaults'."""
    retries: int = 0
    """Retries after a failed attempt (user failures only)."""
    retryDelaySeconds: int = 30
    """Delay before retry n is min(retryDelaySeconds * retryBackoff^(n-1), maxRetryDelaySeconds)."""
    retryBackoff: Annotated[
        float,
        PlainSerializer(_whole_as_int, return_type=Any, when_used="json"),
        WithJsonSchema({"type": "number"}, mode="serialization"),
    ] = 2.0
    maxRetryDelaySeconds: int = 600
    timeoutSeconds: int | None = None
    """Per attempt; also the pod's activeDeadlineSeconds."""


class CompiledTimeSensor(ResourceModel):
    delaySeconds: int | None = None
    at: str | None = None


class CompiledHttpSensor(ResourceModel):
    url: str
    method: Literal["GET", "HEAD", "POST"] = "GET"
    expectStatus: list[int] = Field(default_factory=lambda: [200])
    jsonPath: str | None = None
    jsonValue: str | None = None
    headers: dict[HeaderName, HeaderValue] = Field(default_factory=dict)
    headersFrom: dict[HeaderName, HeaderFromSecret] = Field(default_factory=dict)
    """Header values read from Secrets in the run's namespace (``prefix`` + the key's value)."""
    requestTimeoutSeconds: int | None = None
    """Per request; default: the controller's (10 s)."""


class CompiledSensor(ResourceModel):
    time: CompiledTimeSensor | None = None
    http: CompiledHttpSensor | None = None
    kubernetes: KubernetesSensor | None = None
    dagRun: DagRunSensor | None = None
    command: CommandSensor | None = None
    pokeIntervalSeconds: int = 30
    maxPokeIntervalSeconds: int = 600
    pokeBackoff: Annotated[
        float | None,
        PlainSerializer(lambda v: None if v is None else _whole_as_int(v), return_type=Any, when_used="json"),
        WithJsonSchema({"type": "number"}, mode="serialization"),
    ] = None
    """Growth of the wait after each "not yet" (capped by maxPokeIntervalSeconds); none when unset."""
    timeoutSeconds: int = 86_400
    softFail: bool = False


class CompiledFanOut(ResourceModel):
    """Exactly one of ``items`` or (``fromTask``, ``fromOutput``)."""

    items: list[str] | None = None
    fromTask: int | None = None
    fromOutput: str | None = None
    maxParallel: int | None = None


class CompiledTask(ResourceModel):
    """One task; its index is its position in ``DagSpec.tasks`` (topological order)."""

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=MAX_TASK_NAME)
    upstreams: list[int] = Field(default_factory=list)
    """Indices of the upstream tasks, sorted, each smaller than this task's index."""
    downstreams: list[int] = Field(
        default_factory=list,
        exclude=True,
        description="derived from every task's upstreams when the spec is loaded; not stored",
    )
    trigger: TriggerRule = "all_success"
    """When the task may start, given its upstreams' final states."""
    profile: int = 0
    """Index into spec.profiles: image, resources, placement, inherited env, retry policy."""
    command: list[str] | None = None
    """The container command, with templates; absent for sensor tasks."""
    args: list[str] | None = None
    env: list[EnvVar] = Field(default_factory=list)
    """The task's own variables, after the profile's (names never collide)."""
    outputs: list[str] = Field(default_factory=list)
    """Names of the small values the task may report."""
    fanOut: CompiledFanOut | None = None
    """Run once per item: literal items, or the list output fromOutput of task fromTask."""
    sensor: CompiledSensor | None = None
    """Wait in the controller instead of running a pod."""
    templated: bool = False
    """Whether any of the task's strings holds a template to render."""
    prestart: bool = False
    """Its pod is created while the upstreams run and waits for them in the agent (WaitStart)."""


class CompiledParam(ResourceModel):
    name: str
    type: ParamType = "string"
    default: str | None = None


class CompiledSchedule(ResourceModel):
    cron: str
    timezone: str = "UTC"
    catchup: bool = False
    concurrencyPolicy: ConcurrencyPolicy = "Allow"
    maxActiveRuns: int = 1


class DagSpec(ResourceModel):
    image: str
    """The DAG's image (DAG-as-Image)."""
    description: str | None = None
    schedule: CompiledSchedule | None = None
    params: list[CompiledParam] = Field(default_factory=list)
    profiles: list[Profile]
    """Resolved settings shared by tasks; tasks refer to them by index."""
    tasks: list[CompiledTask]
    """The tasks in topological order; a task's index is its position."""
    definitionHash: str
    """sha256 (16 hex digits) of the canonical spec without this field: the version."""

    @model_validator(mode="before")
    @classmethod
    def _derive_downstreams(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("tasks"), list):
            return data
        tasks = data["tasks"]
        downstreams: list[list[int]] = [[] for _ in tasks]
        for i, task in enumerate(tasks):
            upstreams = task.get("upstreams") if isinstance(task, dict) else getattr(task, "upstreams", None)
            for u in upstreams if isinstance(upstreams, list) else []:
                if isinstance(u, int) and 0 <= u < i:
                    downstreams[u].append(i)
        derived: list[Any] = []
        for task, down in zip(tasks, downstreams, strict=True):
            if isinstance(task, dict):
                derived.append({**task, "downstreams": down})
            elif isinstance(task, CompiledTask):
                derived.append(task.model_copy(update={"downstreams": down}))
            else:
                derived.append(task)
        return {**data, "tasks": derived}

    @model_validator(mode="after")
    def _topological(self) -> DagSpec:
        for i, task in enumerate(self.tasks):
            for u in task.upstreams:
                if not 0 <= u < i:
                    raise ValueError(f"task {i} ({task.name}) has upstream index {u}: not an earlier task")
            if task.profile >= len(self.profiles):
                raise ValueError(f"task {i} ({task.name}) refers to a missing profile {task.profile}")
        return self

    def task_index(self) -> dict[str, int]:
        return {task.name: i for i, task in enumerate(self.tasks)}


class Condition(ResourceModel):
    """The standard Kubernetes condition shape (``metav1.Condition``)."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    lastTransitionTime: str | None = None
    observedGeneration: int | None = None


class DagStatus(ResourceModel):
    observedGeneration: int | None = None
    definitionHash: str | None = None
    lastScheduleTime: str | None = None
    nextScheduleTime: str | None = None
    activeRuns: list[str] = Field(default_factory=list)
    conditions: list[Condition] = Field(default_factory=list)


class RunPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


class TaskState(StrEnum):
    """One character per task (or fan-out item) in ``DagRunStatus.taskStates``."""

    PENDING = "."
    SCHEDULED = "q"
    RUNNING = "r"
    RETRY_WAIT = "w"
    SUCCEEDED = "S"
    FAILED = "F"
    UPSTREAM_FAILED = "U"
    SKIPPED = "K"
    CANCELLED = "C"
    PREPARED = "p"
    """Its pod exists and waits in the agent for the upstreams to finish (``prestart``)."""


IN_FLIGHT_TASK_STATES = frozenset({TaskState.SCHEDULED, TaskState.RUNNING, TaskState.PREPARED})
"""States in which the task's current attempt has (or should have) a pod."""


TERMINAL_TASK_STATES = frozenset(
    {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.UPSTREAM_FAILED, TaskState.SKIPPED, TaskState.CANCELLED}
)
TERMINAL_RUN_PHASES = frozenset({RunPhase.SUCCEEDED, RunPhase.FAILED, RunPhase.CANCELLED})


class DagRunSpec(ResourceModel):
    dagName: str
    """The DAG to run, in the same namespace."""
    params: dict[str, str] = Field(default_factory=dict)
    """Param values; missing ones take the DAG's defaults."""
    logicalDate: str | None = None
    """RFC 3339; the fire time for scheduled runs."""
    definitionHash: str | None = None
    """Run exactly this version of the DAG."""


class TaskDetail(ResourceModel):
    """Only for tasks with something to say; absent means attempt 1 and nothing to report."""

    attempt: int = 1
    infraAttempts: int = 0
    message: str | None = None
    reason: str | None = None
    pod: str | None = None
    exitCode: int | None = None
    startTime: str | None = None
    finishTime: str | None = None
    outputs: dict[str, str] = Field(default_factory=dict)
    releaseTime: str | None = None
    """When a prepared attempt was told to start: its pod's waits (Unschedulable) count from here."""
    sensorState: str | None = None
    """A waiting sensor's progress, "started nextPoke pokes errors" (epoch seconds), recorded at a
    bounded rate so a restarted controller resumes it (leoflow.controller.sensors.state)."""


class DagRunStatus(ResourceModel):
    phase: RunPhase = RunPhase.PENDING
    """Pending, Running, Succeeded, Failed or Cancelled."""
    definitionHash: str | None = None
    """The pinned version; its snapshot is the ConfigMap <dag>-def-<hash>."""
    observedGeneration: int | None = None
    startTime: str | None = None
    completionTime: str | None = None
    progress: str | None = None
    """Finished tasks out of all tasks, as "done/total"."""
    taskStates: str = ""
    """One character per task index: . pending, p prepared (its pod waits for the upstreams),
    q scheduled, r running, w retry wait, S succeeded, F failed, U upstream failed, K skipped,
    C cancelled."""
    items: dict[str, str] = Field(default_factory=dict)
    """Per fan-out task index, one state character per item."""
    tasks: dict[str, TaskDetail] = Field(default_factory=dict)
    """Details by task index, only for tasks with something to say."""
    conditions: list[Condition] = Field(default_factory=list)
    message: str | None = None


def progress(task_states: str) -> str:
    """``"done/total"`` for the printer column."""
    done = sum(1 for code in task_states if code in TERMINAL_TASK_STATES)
    return f"{done}/{len(task_states)}"


def dump(model: BaseModel) -> dict[str, Any]:
    """The JSON form with defaults left out: what is applied is what the API server gives back."""
    data: dict[str, Any] = json.loads(model.model_dump_json(exclude_defaults=True))
    return data


def to_resource(
    name: str, spec: DagSpec, namespace: str | None = None, *, data: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The DAG object; ``data`` is ``dump(spec)`` when the caller already has it."""
    metadata: dict[str, Any] = {"name": name, "labels": {"leoflow.io/dag": name}}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {"apiVersion": API_VERSION, "kind": "DAG", "metadata": metadata, "spec": data or dump(spec)}


def dagrun_resource(name: str, spec: DagRunSpec, namespace: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": {"leoflow.io/dag": spec.dagName}}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {"apiVersion": API_VERSION, "kind": "DAGRun", "metadata": metadata, "spec": dump(spec)}


def definition_hash(spec: dict[str, Any]) -> str:
    """sha256 (first 16 hex digits) of the canonical JSON of a dumped spec, ignoring its own hash."""
    body = {k: v for k, v in spec.items() if k != "definitionHash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def pod_name(run: str, task: str, attempt: int, item: int | None = None) -> str:
    """``<run>-<task>[-<item>]-<attempt>``, hash-shortened to a 63-character DNS label.

    Deterministic, so creating a pod is idempotent; when the plain name is too long the run part
    is cut and a 10-hex-digit hash of the full name keeps it unique.
    """
    tail = f"{task}-{item}-{attempt}" if item is not None else f"{task}-{attempt}"
    full = f"{run}-{tail}"
    if len(full) <= 63:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:10]
    room = 63 - len(tail) - len(digest) - 2
    head = run[: max(room, 0)].rstrip("-")
    name = f"{head}-{digest}-{tail}" if head else f"{digest}-{tail}"
    return name[:63].rstrip("-")

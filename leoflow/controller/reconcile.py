"""One DAGRun's reconcile: load the run and its pinned definition, gather what was observed, plan,
and carry out the planner's actions through the writer.

Level-triggered: whatever caused the call (a pod watch event, an agent's report, a timer, a
resync), the reconcile reads the current state and lets the pure planner decide. It keeps only
what the API cannot give back cheaply: the pinned definitions by hash, an index run -> pods over
the pod cache, agent reports not yet recorded in the run status, and the last object this
controller wrote (so a lagging informer never makes it plan from an older status).

Order of effects: new pods are created concurrently with the status write (with the run's
resourceVersion; on 409 the plan is redone on the fresh object), so a finished task's successor
costs one API round trip, not two. Deterministic names make that safe: an ``AlreadyExists`` for the
same attempt is adopted, and a pod whose attempt the stored status does not record (its write
failed, or the fresh plan differs) is deleted, by this reconcile or by the next plan. Then pods
are deleted, Events emitted and the next timer set. Once the stored status no longer has an
attempt in flight, its pod's result finalizer is removed and the cleanup policy applies.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from pydantic import ValidationError

from leoflow.controller.actions import (
    Action,
    CreatePod,
    DeletePod,
    EmitEvent,
    ReleasePod,
    RequeueAt,
    StartSensor,
    StopSensor,
    UpdateRunStatus,
)
from leoflow.controller.agentca import AgentCaDistribution
from leoflow.controller.cleanup import (
    JSON_PATCH,
    RESULT_FINALIZER,
    CleanupPolicy,
    drop_result_finalizer,
    failed_pod_expiry,
    has_result_finalizer,
    pod_failed,
    pod_run_uid,
    pod_succeeded,
    release_orphan,
    result_recorded,
    succeeded_attempt,
)
from leoflow.controller.kube.errors import ApiError, NotLeader
from leoflow.controller.kube.informer import EventType, Informer
from leoflow.controller.kube.transport import CONFIGMAPS, DAGRUNS, PODS, KubeObject
from leoflow.controller.kube.writer import MERGE_PATCH, Writer, merge_patch
from leoflow.controller.metrics import ControllerMetrics
from leoflow.controller.nodes import NodeWatch
from leoflow.controller.observations import (
    AgentFinished,
    AgentStarted,
    AgentTerminating,
    Observation,
    PodObserved,
    SensorFinished,
    SensorProgress,
)
from leoflow.controller.planner import PlanError, PlanSettings, RunView, detail_key, plan, released_by_success
from leoflow.controller.podnames import RUN_LABEL, AttemptKey, is_same_attempt
from leoflow.controller.podobserve import observe_pod
from leoflow.controller.podspec import PodSpecError
from leoflow.controller.podstatus import (
    ClassifySettings,
    FailureReason,
    PodContext,
    PodObservation,
    classify,
    create_refused,
)
from leoflow.controller.quotawait import QuotaWaits
from leoflow.controller.runview import RunDefaults, RunViewError, run_view
from leoflow.controller.sensors.engine import SensorEngine, SensorSpecError
from leoflow.controller.sensors.outcomes import Outcome, Result
from leoflow.controller.sensortasks import (
    poke_pod,
    render_context,
    render_sensor,
    resume_state,
    sensor_key_of,
    split_sensor_key,
)
from leoflow.controller.startgates import StartGates
from leoflow.controller.workqueue import WorkQueue
from leoflow.spec.resources import (
    API_VERSION,
    IN_FLIGHT_TASK_STATES,
    TERMINAL_RUN_PHASES,
    Condition,
    DagRunStatus,
    DagSpec,
    RunPhase,
    TaskState,
    dump,
)
from leoflow.spec.snapshots import SnapshotError, definition_configmap_name, load_snapshot, snapshot_configmap
from leoflow.spec.templates import TemplateError

log = logging.getLogger(__name__)

_AGENT_REPORTS = (AgentStarted, AgentTerminating, AgentFinished)

PodAnnotator = Callable[[Mapping[str, Any]], Mapping[str, str]]
"""Extra annotations for a pod about to be created (given the pod): how tests and benchmarks
steer simulated (KWOK) pods, since tasks cannot carry pod annotations."""
DEFINITION_MISSING = "DefinitionMissing"
PodCall = Callable[[], Coroutine[Any, Any, None]]
CHORE_KINDS = ("delete", "release", "orphan")
"""Pod calls made off the reconcile: a delete, a result finalizer drop, both for an orphan."""
CHORE_RETRY_SECONDS = 1.0
"""How soon a run is looked at again after a pod delete or finalizer drop failed."""
INVALID_RUN = "InvalidRun"


@dataclass(frozen=True)
class ReconcileSettings:
    plan: PlanSettings = field(default_factory=PlanSettings)
    run_defaults: RunDefaults = field(default_factory=RunDefaults)
    classify: ClassifySettings | None = None
    cleanup: CleanupPolicy = field(default_factory=CleanupPolicy)
    pod_annotations: PodAnnotator | None = None
    missing_pod_grace: float = 3.0
    """Seconds an in-flight attempt's pod may be absent from the cache before a live GET decides
    whether it is gone (the informer usually sees a new pod within milliseconds)."""
    quota_wait: float = 600.0
    """Seconds an attempt whose pod an exceeded ResourceQuota refuses waits for room, its create
    sent again with backoff, before the refusal fails it (quotawait.py)."""


class RetryLater(Exception):
    """The reconcile cannot decide yet (caches not synced, an API call failed): requeue with backoff."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def run_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def split_key(key: str) -> tuple[str, str]:
    namespace, _, name = key.partition("/")
    return namespace, name


def resource_version(obj: Mapping[str, Any] | None) -> int:
    text = str(((obj or {}).get("metadata") or {}).get("resourceVersion") or "")
    return int(text) if text.isdigit() else -1


def status_body(status: DagRunStatus) -> dict[str, Any]:
    """The status as stored: defaults left out (absent means default), except the phase, which the
    printer columns show."""
    body = dump(status)
    body["phase"] = status.phase.value
    return body


def in_flight_units(status: DagRunStatus) -> list[tuple[int, int | None]]:
    """Tasks and fan-out items whose current attempt has (or should have) a pod."""
    units: list[tuple[int, int | None]] = []
    for task, code in enumerate(status.taskStates):
        row = status.items.get(str(task))
        if row is not None:
            units.extend((task, item) for item, c in enumerate(row) if c in IN_FLIGHT_TASK_STATES)
        elif code in IN_FLIGHT_TASK_STATES:
            units.append((task, None))
    return units


def failed_run_status(status: DagRunStatus, reason: str, message: str, now: datetime) -> DagRunStatus:
    """A run that cannot start at all (its DAG is missing or unreadable) fails with ``message``."""
    stamp = now.isoformat().replace("+00:00", "Z")
    return status.model_copy(
        update={
            "phase": RunPhase.FAILED,
            "completionTime": stamp,
            "message": message,
            "conditions": [
                Condition(
                    type="Succeeded", status="False", reason=reason, message=message, lastTransitionTime=stamp
                )
            ],
        }
    )


class RunReconciler:
    """Reconciles DAGRuns by key ``namespace/name``; see the module docstring."""

    def __init__(
        self,
        *,
        writer: Writer,
        runs: Informer,
        dags: Informer,
        pods: Informer,
        queue: WorkQueue,
        metrics: ControllerMetrics,
        settings: ReconcileSettings | None = None,
        clock: Callable[[], datetime] = utc_now,
        sensors: SensorEngine | None = None,
    ) -> None:
        self.writer = writer
        self.runs = runs
        self.dags = dags
        self.pods = pods
        self.queue = queue
        self.metrics = metrics
        settings = settings or ReconcileSettings()
        # One switch for succeeded pods: the planner's delete follows the cleanup policy.
        plan_settings = replace(settings.plan, delete_succeeded_pods=settings.cleanup.delete_succeeded)
        self.settings = replace(settings, plan=plan_settings)
        self.quota = QuotaWaits(settings.quota_wait)
        self.clock = clock
        self._definitions: dict[tuple[str, str], DagSpec] = {}
        self._run_pods: dict[str, set[str]] = {}
        self._written: dict[str, KubeObject] = {}
        self._reports: dict[str, list[Observation]] = {}
        self._finished_marks: dict[str, tuple[float, str]] = {}
        self._created_at: dict[str, float] = {}
        self._missing_since: dict[str, float] = {}
        self._deleted_by_us: set[str] = set()
        self._create_errors: dict[str, PodObservation] = {}
        self._unsent: dict[str, dict[str, CreatePod]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._chores: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._chores_done: set[tuple[str, str]] = set()
        self.sensors = sensors
        self.gates = StartGates()
        """Prepared pods' agents wait here for their release (the agent sink parks them)."""
        self.nodes: NodeWatch | None = None
        """Node readiness for the classifier and for force-deleting pods no kubelet will confirm."""
        self.agent_ca: AgentCaDistribution | None = None
        """Copies the agents' CA into a namespace before its first task pod."""
        self._sensor_progress_due: set[str] = set()

    # -- cache events (run on the event loop; they only index and enqueue) ---------------------

    def on_run_event(self, kind: EventType, old: KubeObject | None, new: KubeObject | None) -> None:
        obj = new or old or {}
        meta = obj.get("metadata") or {}
        key = run_key(str(meta.get("namespace", "")), str(meta.get("name", "")))
        if kind is EventType.DELETED:
            self._written.pop(key, None)
            for name in self._unsent.pop(key, {}):
                self.quota.forget(name)
            self._reports.pop(key, None)
            self._finished_marks.pop(key, None)
            self._sensor_progress_due.discard(key)
        elif kind is EventType.MODIFIED and own_write_echo(old, new, self._written.get(key)):
            return
        self.queue.add(key)

    def on_pod_event(self, kind: EventType, old: KubeObject | None, new: KubeObject | None) -> None:
        obj = new or old or {}
        meta = obj.get("metadata") or {}
        run = (meta.get("labels") or {}).get(RUN_LABEL)
        if not run:
            return
        name = str(meta.get("name", ""))
        key = run_key(str(meta.get("namespace", "")), str(run))
        settled = settled_pod_event(kind, new, released=(name, "release") in self._chores_done)
        if settled and new is not None and pod_succeeded(new) and self.settings.cleanup.delete_succeeded:
            # No later transition of its run will look at it: a run that is over must, to delete it.
            run_obj = self.freshest_run(key) or {}
            settled = (run_obj.get("status") or {}).get("phase") not in TERMINAL_RUN_PHASES
        if kind is EventType.DELETED:
            names = self._run_pods.get(key)
            if names is not None:
                names.discard(name)
                if not names:
                    del self._run_pods[key]
            self._deleted_by_us.discard(name)
            self._created_at.pop(name, None)
            for chore in CHORE_KINDS:
                self._chores_done.discard((name, chore))
        else:
            self._run_pods.setdefault(key, set()).add(name)
            self._missing_since.pop(name, None)
            main = (self.settings.classify or ClassifySettings()).main_container
            ended = new is not None and task_ended(new, main) and (old is None or not task_ended(old, main))
            if ended and not settled:
                self.mark_finished(key, "pod")
        if not settled:
            self.queue.add(key)

    def mark_finished(self, key: str, path: str) -> None:
        """An upstream's end became known now: the start of the transition-latency histogram."""
        self._finished_marks.setdefault(key, (time.perf_counter(), path))

    def add_report(self, key: str, observation: Observation) -> None:
        """Buffers an agent's report until the run status records that attempt's outcome."""
        self._reports.setdefault(key, []).append(observation)
        self.queue.add(key)

    def run_pods(self, key: str) -> list[KubeObject]:
        namespace, _ = split_key(key)
        out = []
        for name in sorted(self._run_pods.get(key, ())):
            pod = self.pods.get(namespace, name)
            if pod is not None:
                out.append(pod)
        return out

    def freshest_run(self, key: str) -> KubeObject | None:
        namespace, name = split_key(key)
        cached = self.runs.get(namespace, name)
        written = self._written.get(key)
        if cached is None:
            return None
        if (
            written is not None
            and written.get("metadata", {}).get("uid") == cached.get("metadata", {}).get("uid")
            and resource_version(written) > resource_version(cached)
        ):
            return written
        return cached

    def cached_definition(self, view: RunView) -> DagSpec | None:
        """The run's pinned definition if it is already in memory; never reads it."""
        return self._definitions.get((view.namespace, view.status.definitionHash or ""))

    async def definition_for(self, namespace: str, dag: str, hash_: str) -> DagSpec | None:
        """The pinned definition (snapshot ConfigMap), cached in memory by hash."""
        cached = self._definitions.get((namespace, hash_))
        if cached is not None:
            return cached
        try:
            configmap = await self.writer.get(CONFIGMAPS, namespace, definition_configmap_name(dag, hash_))
        except ApiError as exc:
            raise RetryLater(f"reading the definition snapshot: {exc}") from exc
        if configmap is None:
            return None
        spec = load_snapshot(configmap)
        self._definitions[(namespace, hash_)] = spec
        return spec

    # -- the reconcile --------------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        started = time.perf_counter()
        try:
            await self._reconcile(key)
        finally:
            self.metrics.reconciled(time.perf_counter() - started)

    async def _reconcile(self, key: str) -> None:
        obj = self.freshest_run(key)
        if obj is None:
            self._finished_marks.pop(key, None)
            await self._release_orphans(key)
            return
        try:
            view = run_view(obj, self.settings.run_defaults)
        except RunViewError as exc:
            self._event(obj, EmitEvent("Warning", INVALID_RUN, str(exc)))
            log.warning("cannot read DAGRun", extra={"run": key, "error": str(exc)})
            return
        if view.status.phase in TERMINAL_RUN_PHASES and view.retry_generation <= _retried(view.status):
            self._settle_pods(key, await self._definition_to_settle(key, view), view.status)
            self._reports.pop(key, None)
            self._finished_marks.pop(key, None)
            return
        dag = await self._resolve_definition(key, obj, view)
        if dag is None:
            return
        self._resume_sensors(key, dag, view)
        await self._resend_creates(key, obj, dag, view)
        now = self.clock()
        observations = await self._observations(key, dag, view, now)
        try:
            actions = plan(dag, view, observations, now, self.settings.plan)
        except PlanError as exc:
            self._event(obj, EmitEvent("Warning", INVALID_RUN, str(exc)))
            log.warning("cannot plan DAGRun", extra={"run": key, "error": str(exc)})
            return
        stored_status = view.status
        mark = self._finished_marks.pop(key, None)
        for action in actions:
            if isinstance(action, ReleasePod):
                # Before the status write: the agent is waiting, and a crash before the write
                # lands only means the next controller releases the same attempt again.
                self._open_gate(view.namespace, action.name, mark)
        # Pods are created together with the status write, not after it: the next task starts one
        # API round trip sooner. Deterministic names make a create whose status write then fails
        # harmless: the next plan starts that attempt again and adopts the pod, or deletes it.
        early = {
            a.name: asyncio.ensure_future(
                self._create(key=key, obj=obj, dag=dag, view=view, action=a, mark=mark)
            )
            for a in actions
            if isinstance(a, CreatePod)
        }
        try:
            update = next((a for a in actions if isinstance(a, UpdateRunStatus)), None)
            if update is not None:
                planned = {"actions": actions}

                def compute(current: KubeObject) -> KubeObject | None:
                    if current.get("metadata", {}).get("uid") != view.uid:
                        planned["actions"] = []
                        return None
                    if resource_version(current) != resource_version(obj):
                        fresh = run_view(current, self.settings.run_defaults)
                        planned["actions"] = plan(dag, fresh, observations, now, self.settings.plan)
                    chosen = next((a for a in planned["actions"] if isinstance(a, UpdateRunStatus)), None)
                    return status_body(chosen.status) if chosen is not None else None

                try:
                    stored = await self._write_status(obj, update.status, compute)
                except (RunViewError, PlanError) as exc:
                    log.warning("cannot plan DAGRun", extra={"run": key, "error": str(exc)})
                    return
                if stored is None:
                    return
                self._written[key] = stored
                actions = planned["actions"]
                stored_status = DagRunStatus.model_validate(stored.get("status") or {})
                self._record_run_end(view.status, stored_status)
        finally:
            created = await asyncio.gather(*early.values(), return_exceptions=True)
        recorded = recorded_pods(stored_status)
        actions = [a for a in actions if not (isinstance(a, CreatePod) and a.name in early)]
        for name in early.keys() - recorded:
            actions.append(DeletePod(name, "its plan was superseded"))
            self._create_errors.pop(name, None)
        await self._execute(key, obj, dag, view, actions)
        _raise_failures(created, "pod create(s)")
        self._prune_reports(key, stored_status)
        self._settle_pods(key, dag, stored_status)

    async def _write_status(
        self, obj: KubeObject, status: DagRunStatus, compute: Callable[[KubeObject], KubeObject | None]
    ) -> KubeObject | None:
        """Patches the status planned from ``obj``, guarded by ``obj``'s resourceVersion (no read
        first: the cache or our last write is usually current); on 409 it falls back to the
        writer's read-modify-write, which re-plans on the fresh object."""
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        diff = merge_patch(obj.get("status") or {}, status_body(status))
        if diff is None:
            return obj
        body = {"metadata": {"resourceVersion": meta.get("resourceVersion")}, "status": diff}
        try:
            return await self.writer.call(
                "patch",
                "PATCH",
                DAGRUNS.path(namespace, name, "status"),
                body=body,
                content_type=MERGE_PATCH,
                retry_conflicts=False,
            )
        except ApiError as exc:
            if exc.not_found:
                return None
            if not exc.conflict:
                raise
        return await self.writer.update_status(DAGRUNS, namespace, name, compute)

    async def _release_orphans(self, key: str) -> None:
        """The run is gone from the cache: once a live GET confirms, its pods lose the result
        finalizer and are deleted, each once (every event of a big run's pods brings us here)."""
        pods = [
            pod
            for pod in self.run_pods(key)
            if (has_result_finalizer(pod) or not (pod.get("metadata") or {}).get("deletionTimestamp"))
            and not self._chore_pending(str(pod["metadata"].get("name", "")), "orphan")
        ]
        if not pods or not self.runs.has_synced:
            return
        namespace, name = split_key(key)
        live = await self.writer.get(DAGRUNS, namespace, name)
        uid = (live.get("metadata") or {}).get("uid") if live is not None else None
        for pod in pods:
            if uid is None or pod_run_uid(pod) != uid:
                self._pod_chore(
                    key,
                    str(pod["metadata"].get("name", "")),
                    "orphan",
                    partial(release_orphan, self.writer, pod),
                )

    async def _resolve_definition(self, key: str, obj: KubeObject, view: RunView) -> DagSpec | None:
        namespace = view.namespace
        pinned = view.status.definitionHash or view.spec.definitionHash
        if pinned:
            try:
                spec = await self.definition_for(namespace, view.dag, pinned)
            except SnapshotError as exc:
                await self._fail_run(key, view, DEFINITION_MISSING, f"definition {pinned}: {exc}")
                return None
            if spec is None:
                if view.status.definitionHash is None:
                    message = (
                        f"DAG '{view.dag}' version {pinned} (spec.definitionHash) has no definition "
                        f"snapshot {definition_configmap_name(view.dag, pinned)}"
                    )
                else:
                    message = (
                        f"the definition this run started with ({pinned}) is gone: ConfigMap "
                        f"{definition_configmap_name(view.dag, pinned)} not found"
                    )
                await self._fail_run(key, view, DEFINITION_MISSING, message)
            return spec
        if not self.dags.has_synced:
            raise RetryLater("DAG cache not synced yet")
        dag_obj = self.dags.get(namespace, view.dag)
        if dag_obj is None:
            await self._fail_run(
                key, view, DEFINITION_MISSING, f"DAG '{view.dag}' not found in namespace {namespace}"
            )
            return None
        try:
            spec = DagSpec.model_validate(dag_obj.get("spec") or {})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            await self._fail_run(
                key, view, DEFINITION_MISSING, f"DAG '{view.dag}' is unreadable: {where}: {first['msg']}"
            )
            return None
        await self._store_snapshot(obj, view, spec)
        self._definitions[(namespace, spec.definitionHash)] = spec
        return spec

    async def _store_snapshot(self, obj: KubeObject, view: RunView, spec: DagSpec) -> None:
        body = snapshot_configmap(view.dag, spec, view.namespace)
        owner = {"apiVersion": API_VERSION, "kind": "DAGRun", "name": view.name, "uid": view.uid}
        body["metadata"]["ownerReferences"] = [owner]
        try:
            created = await self.writer.create(CONFIGMAPS, view.namespace, body)
            if created.created:
                return
            owners = created.object.get("metadata", {}).get("ownerReferences") or []
            if any(o.get("uid") == view.uid for o in owners):
                return
            # Runs of one version share the snapshot: each is an owner, so it lives as long as the last.
            patch: list[dict[str, Any]] = [
                {"op": "add", "path": "/metadata/ownerReferences/-", "value": owner}
            ]
            if not owners:
                patch = [{"op": "add", "path": "/metadata/ownerReferences", "value": [owner]}]
            await self.writer.call(
                "patch",
                "PATCH",
                CONFIGMAPS.path(view.namespace, body["metadata"]["name"]),
                body=patch,
                content_type=JSON_PATCH,
            )
        except ApiError as exc:
            raise RetryLater(f"storing the definition snapshot: {exc}") from exc

    async def _fail_run(self, key: str, view: RunView, reason: str, message: str) -> None:
        namespace, name = split_key(key)
        now = self.clock()

        def compute(current: KubeObject) -> KubeObject | None:
            if current.get("metadata", {}).get("uid") != view.uid:
                return None
            status = DagRunStatus.model_validate(current.get("status") or {})
            if status.phase in TERMINAL_RUN_PHASES:
                return None
            return status_body(failed_run_status(status, reason, message, now))

        stored = await self.writer.update_status(DAGRUNS, namespace, name, compute)
        if stored is not None:
            self._written[key] = stored
            self._event(stored, EmitEvent("Warning", "RunFailed", message))
        log.warning("run failed before it started", extra={"run": key, "reason": reason, "detail": message})

    # -- observations ---------------------------------------------------------------------------

    async def _observations(self, key: str, dag: DagSpec, view: RunView, now: datetime) -> list[Observation]:
        observations: list[Observation] = []
        seen: set[str] = set()
        released = {
            d.pod: d.releaseTime for d in view.status.tasks.values() if d.releaseTime is not None and d.pod
        }
        for pod in self.run_pods(key):
            name = str(pod["metadata"].get("name", ""))
            context = PodContext(
                deleted_by_controller=name in self._deleted_by_us,
                released_at=_parse(released.get(name)),
            )
            if self.nodes is not None:
                context = self.nodes.context(pod, context, now)
            observed = observe_pod(
                pod, dag=dag, run_uid=view.uid, now=now, context=context, settings=self.settings.classify
            )
            if observed is not None:
                observations.append(observed)
                seen.add(name)
        observations.extend(await self._missing_pods(key, dag, view, seen, now))
        observations.extend(self._reports.get(key, ()))
        observations.extend(self._sensor_progress(key, view))
        return observations

    async def _missing_pods(
        self, key: str, dag: DagSpec, view: RunView, seen: set[str], now: datetime
    ) -> list[Observation]:
        """An in-flight attempt whose pod is not in the (synced) cache: after a grace, a live GET
        decides; a pod that is really gone was deleted by someone (or never admitted)."""
        if not self.pods.has_synced or view.status.phase in TERMINAL_RUN_PHASES:
            return []
        loop_now = asyncio.get_running_loop().time()
        out: list[Observation] = []
        for task, item in in_flight_units(view.status):
            detail = view.status.tasks.get(detail_key(task, item))
            pod_name = detail.pod if detail is not None else None
            if not pod_name or pod_name in seen:
                continue
            attempt = detail.attempt if detail is not None else 1
            waiting = self.quota.observation(pod_name)
            if waiting is not None:
                out.append(PodObserved(task, item, attempt, pod_name, waiting))
                continue
            refused = self._create_errors.pop(pod_name, None)
            if refused is not None:
                out.append(PodObserved(task, item, attempt, pod_name, refused))
                continue
            since = self._missing_since.setdefault(pod_name, self._created_at.get(pod_name, loop_now))
            if loop_now - since < self.settings.missing_pod_grace:
                self.queue.add_at(key, since + self.settings.missing_pod_grace)
                continue
            try:
                live = await self.writer.get(PODS, view.namespace, pod_name)
            except ApiError as exc:
                raise RetryLater(f"checking pod {pod_name}: {exc}") from exc
            if live is not None:
                observed = observe_pod(
                    live, dag=dag, run_uid=view.uid, now=now, settings=self.settings.classify
                )
                if observed is not None:
                    out.append(observed)
                continue
            self._missing_since.pop(pod_name, None)
            context = PodContext(deleted=True, deleted_by_controller=pod_name in self._deleted_by_us)
            status = classify({"metadata": {"name": pod_name}, "status": {}}, now=now, context=context)
            out.append(PodObserved(task, item, attempt, pod_name, status))
        return out

    def _prune_reports(self, key: str, status: DagRunStatus) -> None:
        """Forgets agent reports once the stored status no longer has their attempt in flight."""
        reports = self._reports.get(key)
        if not reports:
            return
        in_flight = set()
        for task, item in in_flight_units(status):
            detail = status.tasks.get(detail_key(task, item))
            in_flight.add((task, item, detail.attempt if detail is not None else 1))
        kept: list[Observation] = [
            r
            for r in reports
            if (isinstance(r, _AGENT_REPORTS) and (r.task, r.item, r.attempt) in in_flight)
            or (isinstance(r, SensorFinished) and (r.task, None) in in_flight_units(status))
        ]
        if kept:
            self._reports[key] = kept
        else:
            del self._reports[key]

    # -- actions --------------------------------------------------------------------------------

    async def _execute(
        self,
        key: str,
        obj: KubeObject,
        dag: DagSpec,
        view: RunView,
        actions: list[Action],
    ) -> None:
        """Everything but the status write; creates here are those a re-plan added after the
        write (the planned ones went out with it), so they carry no transition mark."""
        deletes = [a for a in actions if isinstance(a, DeletePod)]
        creates = [a for a in actions if isinstance(a, CreatePod)]
        for action in actions:
            if isinstance(action, StartSensor | StopSensor):
                self._sensor(obj, dag, view, action)
            elif isinstance(action, EmitEvent):
                self._event(obj, action)
            elif isinstance(action, RequeueAt):
                delay = (action.at - self.clock()).total_seconds()
                self.queue.add_after(key, max(delay, 0.0))
            elif isinstance(action, ReleasePod):
                self._open_gate(view.namespace, action.name, None)
        for delete in deletes:
            self._pod_chore(key, delete.name, "delete", partial(self._delete, view.namespace, delete))
        results = await asyncio.gather(
            *(self._create(key=key, obj=obj, dag=dag, view=view, action=a, mark=None) for a in creates),
            return_exceptions=True,
        )
        _raise_failures(results, "pod create(s)")

    def _open_gate(self, namespace: str, pod: str, mark: tuple[float, str] | None) -> None:
        if self.gates.open(namespace, pod) and mark is not None:
            self.metrics.task_released(mark[1], time.perf_counter() - mark[0])
            log.debug("released prepared pod", extra={"pod": pod})

    def release_on_success(self, key: str, task: int, attempt: int) -> None:
        """The agent sink's fast release: ``task`` (not a fan-out item) reported success, so the
        prepared pods it was the last upstream of may start now, before the reconcile that
        records it. Nothing happens when anything is unsure: that reconcile releases them."""
        obj = self.freshest_run(key)
        if obj is None:
            return
        try:
            view = run_view(obj, self.settings.run_defaults)
        except RunViewError:
            return
        dag = self.cached_definition(view)
        interrupted = any(
            isinstance(r, AgentTerminating) and (r.task, r.item, r.attempt) == (task, None, attempt)
            for r in self._reports.get(key, ())
        )
        if dag is None or interrupted:
            return
        for pod in released_by_success(dag, view, task):
            self._open_gate(view.namespace, pod, self._finished_marks.get(key))

    def _chore_pending(self, pod: str, kind: str) -> bool:
        """Whether that call for that pod is in flight or has succeeded."""
        return (pod, kind) in self._chores or (pod, kind) in self._chores_done

    def _pod_chore(self, key: str, pod: str, kind: str, call: PodCall) -> None:
        """Runs a pod delete or finalizer drop off the run's reconcile. Neither is on a task's
        critical path, and a worker waiting on one delays every run queued behind it. One call
        per pod and kind at a time, and none again once it succeeded (the cache may lag behind
        it); a failure requeues the run, whose next reconcile finds the pod still needs it."""
        if self._chore_pending(pod, kind):
            return
        slot = (pod, kind)
        task = asyncio.get_running_loop().create_task(call())
        self._chores[slot] = task

        def finished(done: asyncio.Task[None]) -> None:
            del self._chores[slot]
            if done.cancelled():
                return
            error = done.exception()
            if error is None:
                self._chores_done.add(slot)
                return
            if kind == "delete":
                self._deleted_by_us.discard(pod)
            if isinstance(error, NotLeader):
                return
            if isinstance(error, ApiError):
                log.info("pod call failed", extra={"run": key, "pod": pod, "call": kind, "error": str(error)})
                self.queue.add_after(key, CHORE_RETRY_SECONDS)
            else:
                log.error("pod call failed", exc_info=error, extra={"run": key, "pod": pod, "call": kind})

        task.add_done_callback(finished)

    async def _delete(self, namespace: str, action: DeletePod) -> None:
        cached = self.pods.get(namespace, action.name)
        uid = cached.get("metadata", {}).get("uid") if cached is not None else None
        self._deleted_by_us.add(action.name)
        # On a node that is gone or not Ready no kubelet confirms a graceful delete: force it.
        force = self.nodes is not None and self.nodes.unreachable(cached, self.clock())
        grace = 0 if force else None
        if await self.writer.delete_pod(namespace, action.name, uid=uid, grace_period_seconds=grace):
            self.metrics.pod_deleted()
            log.info("deleted pod", extra={"pod": action.name, "reason": action.reason})

    async def _resend_creates(self, key: str, obj: KubeObject, dag: DagSpec, view: RunView) -> None:
        """Creates that failed for a transient reason while their status write landed: the status
        has the attempt in flight but no pod will ever appear, so the create is sent again (same
        name: adopted if the first one did go through) instead of the pod being judged deleted."""
        unsent = self._unsent.pop(key, None)
        if not unsent:
            return
        recorded = recorded_pods(view.status)
        now = asyncio.get_running_loop().time()
        due = []
        for name, action in unsent.items():
            if name not in recorded:
                self.quota.forget(name)
            elif (again := self.quota.holds(name, now)) is not None:
                self._unsent.setdefault(key, {})[name] = action
                # This reconcile may have come early and consumed the timer: set it again.
                self.queue.add_at(key, again)
            else:
                due.append(action)
        results = await asyncio.gather(
            *(self._create(key=key, obj=obj, dag=dag, view=view, action=action, mark=None) for action in due),
            return_exceptions=True,
        )
        _raise_failures(results, "pod create(s) sent again")

    async def _create(
        self,
        *,
        key: str,
        obj: KubeObject,
        dag: DagSpec,
        view: RunView,
        action: CreatePod,
        mark: tuple[float, str] | None,
    ) -> None:
        pod = action.pod
        metadata = pod["metadata"]
        metadata["finalizers"] = [RESULT_FINALIZER]
        if self.settings.pod_annotations is not None:
            extra = self.settings.pod_annotations(pod)
            if extra:
                metadata["annotations"] = {**metadata.get("annotations", {}), **extra}
        if self.agent_ca is not None:
            await self.agent_ca.ensure(view.namespace)
        sent = time.perf_counter()
        try:
            result = await self.writer.create_pod(view.namespace, pod)
        except ApiError as exc:
            self.metrics.pod_created("failed")
            refused = create_refused(exc.code, exc.reason, exc.message, transient=exc.transient)
            if refused is None:
                self._unsent.setdefault(key, {})[action.name] = action
                raise
            if refused.reason is FailureReason.QUOTA_EXCEEDED:
                loop_now = asyncio.get_running_loop().time()
                again = self.quota.refused(action.name, refused.message, loop_now, self.clock())
                if again is not None:
                    # Capacity, not a failure: the same attempt's create goes out again later.
                    self._unsent.setdefault(key, {})[action.name] = action
                    self.queue.add_at(key, again)
                    log.info(
                        "pod create refused by quota; waiting",
                        extra={"pod": action.name, "retry_in_s": round(again - loop_now, 2)},
                    )
                    return
            # Refused (invalid, forbidden by policy, over quota): the next decision records it.
            self._create_errors[action.name] = refused
            self._missing_since[action.name] = 0.0
            self.queue.add(key)
            return
        self._created_at[action.name] = asyncio.get_running_loop().time()
        self.quota.forget(action.name)
        if result.created:
            self.metrics.pod_created("created")
            if mark is not None and dag.tasks[action.task].upstreams and not action.prepared:
                self.metrics.task_transition(mark[1], time.perf_counter() - mark[0], sent - mark[0])
            return
        attempt = AttemptKey(view.uid, dag.tasks[action.task].name, action.item, action.attempt)
        if is_same_attempt(result.object, attempt):
            self.metrics.pod_created("adopted")
            return
        self.metrics.pod_created("failed")
        self._event(
            obj,
            EmitEvent(
                "Warning",
                "PodNameCollision",
                f"pod {action.name} exists but belongs to another attempt; not adopting it",
            ),
        )

    def _sensor(self, obj: KubeObject, dag: DagSpec, view: RunView, action: StartSensor | StopSensor) -> None:
        key = run_key(view.namespace, view.name)
        if self.sensors is None:
            if isinstance(action, StartSensor):
                task = dag.tasks[action.task].name
                message = f"sensor task '{task}' waits: this controller runs without a sensor engine"
                self._event(obj, EmitEvent("Warning", "SensorsUnavailable", message))
            return
        if isinstance(action, StopSensor):
            self.sensors.remove(sensor_key_of(key, view.uid, action.task))
            return
        self._start_sensor(key, dag, view, action.task, resume=False)

    def _start_sensor(self, key: str, dag: DagSpec, view: RunView, task: int, *, resume: bool) -> None:
        assert self.sensors is not None
        sensor_key = sensor_key_of(key, view.uid, task)
        compiled = dag.tasks[task].sensor
        if compiled is None:
            return
        try:
            context = render_context(dag, view)
            sensor = render_sensor(compiled, context) if dag.tasks[task].templated else compiled
            pod = None
            if sensor.command is not None:
                pod = poke_pod(dag, view, task, sensor, context, settings=self.settings.plan.pod)
            if not resume:
                self.sensors.add(sensor_key, sensor, view.namespace, pod)
            else:
                state = resume_state(view.status.tasks.get(str(task)), self.clock(), where=sensor_key)
                self.sensors.resume(sensor_key, sensor, view.namespace, state, pod)
        except (SensorSpecError, TemplateError, PodSpecError) as exc:
            self.add_report(key, SensorFinished(task, succeeded=False, message=str(exc)))

    def _resume_sensors(self, key: str, dag: DagSpec, view: RunView) -> None:
        """After a restart (or a lost leadership) the engine is empty: running sensor tasks resume
        from the state the status recorded (pokes, backoff, next poke), else from their start
        time, so their timeout still counts from the original start."""
        if self.sensors is None or view.status.phase in TERMINAL_RUN_PHASES:
            return
        # A sensor that just ended has left the engine but not yet the status: not a restart.
        ended = {r.task for r in self._reports.get(key, ()) if isinstance(r, SensorFinished)}
        for task, code in enumerate(view.status.taskStates):
            if code != TaskState.RUNNING.value or dag.tasks[task].sensor is None or task in ended:
                continue
            if sensor_key_of(key, view.uid, task) not in self.sensors:
                self._start_sensor(key, dag, view, task, resume=True)

    def note_sensor_progress(self, limit: int) -> int:
        """Queues the runs of up to ``limit`` sensors whose state moved since last noted; their
        next reconcile records it (one status write per run however many of its sensors poked).
        The caller's period and ``limit`` bound the rate of these writes. Returns how many."""
        if self.sensors is None:
            return 0
        changed = self.sensors.take_changed(limit)
        for sensor_key in changed:
            key, _uid, _task = split_sensor_key(sensor_key)
            if key not in self._sensor_progress_due:
                self._sensor_progress_due.add(key)
                self.queue.add(key)
        return len(changed)

    def _sensor_progress(self, key: str, view: RunView) -> list[SensorProgress]:
        if self.sensors is None or key not in self._sensor_progress_due:
            return []
        self._sensor_progress_due.discard(key)
        progress = []
        for task, code in enumerate(view.status.taskStates):
            if code != TaskState.RUNNING.value:
                continue
            state = self.sensors.state(sensor_key_of(key, view.uid, task))
            if state is not None:
                progress.append(SensorProgress(task, state.encode()))
        return progress

    def on_sensor_done(self, sensor_key: str, outcome: Outcome) -> None:
        """The engine's callback: the outcome becomes an observation and the run is queued."""
        key, _uid, task = split_sensor_key(sensor_key)
        self.add_report(
            key,
            SensorFinished(
                task,
                succeeded=outcome.result is Result.SATISFIED,
                message=outcome.message,
                soft_fail=outcome.result is Result.SKIPPED,
            ),
        )

    def _event(self, obj: KubeObject, action: EmitEvent) -> None:
        involved = {
            **obj,
            "apiVersion": obj.get("apiVersion", API_VERSION),
            "kind": obj.get("kind", "DAGRun"),
        }
        task = asyncio.get_running_loop().create_task(
            self.writer.create_event(involved, action.reason, action.message, type=action.type)
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _record_run_end(self, before: DagRunStatus, after: DagRunStatus) -> None:
        if before.phase in TERMINAL_RUN_PHASES or after.phase not in TERMINAL_RUN_PHASES:
            return
        start = _parse(after.startTime)
        end = _parse(after.completionTime)
        if start is not None and end is not None:
            self.metrics.run_finished(after.phase.value, (end - start).total_seconds())

    # -- pods whose result is recorded ----------------------------------------------------------

    async def _definition_to_settle(self, key: str, view: RunView) -> DagSpec | None:
        """The definition a terminal run's pods are judged by. Read from its snapshot only when a
        succeeded pod may need deleting: a restarted controller's cache is empty, and the many
        finished runs of a resync would otherwise each cost a read."""
        hash_ = view.status.definitionHash or ""
        cached = self.cached_definition(view)
        if cached is not None or not hash_ or not self.settings.cleanup.delete_succeeded:
            return cached
        pods = self.run_pods(key)
        if not any(pod_succeeded(p) and not (p.get("metadata") or {}).get("deletionTimestamp") for p in pods):
            return None
        return await self.definition_for(view.namespace, view.dag, hash_)

    def _settle_pods(self, key: str, dag: DagSpec | None, status: DagRunStatus) -> None:
        """Drops the result finalizer from pods the stored status no longer needs, then applies
        the cleanup policy: a succeeded attempt's pod that ended after its run did (the agent's
        Finished comes before the kubelet's word) is deleted here, failed pods after their TTL."""
        namespace, _ = split_key(key)
        now = self.clock()
        index = dag.task_index() if dag is not None else {}
        for pod in self.run_pods(key):
            meta = pod.get("metadata") or {}
            name = str(meta.get("name", ""))
            if (
                self.settings.cleanup.delete_succeeded
                and dag is not None
                and not meta.get("deletionTimestamp")
                and succeeded_attempt(pod, index, status)
            ):
                done = DeletePod(name, "task succeeded")
                self._pod_chore(key, name, "delete", partial(self._delete, namespace, done))
            if has_result_finalizer(pod):
                if dag is None or result_recorded(pod, index, status):
                    self._pod_chore(
                        key, name, "release", partial(drop_result_finalizer, self.writer, namespace, pod)
                    )
                continue
            expiry = None if meta.get("deletionTimestamp") else failed_pod_expiry(pod, self.settings.cleanup)
            if expiry is None:
                continue
            if expiry <= now:
                expired = DeletePod(name, "failed pod TTL expired")
                self._pod_chore(key, name, "delete", partial(self._delete, namespace, expired))
            else:
                self.queue.add_after(key, (expiry - now).total_seconds())


def own_write_echo(old: KubeObject | None, new: KubeObject | None, written: KubeObject | None) -> bool:
    """Whether a run's MODIFIED event only brings back the object this controller wrote: the
    reconcile that wrote it went on from the stored object, so it has nothing new. Resyncs (same
    resourceVersion as before) are never echoes: they are the level-triggered safety net."""
    if old is None or new is None or written is None:
        return False
    version = resource_version(new)
    return version != resource_version(old) and version == resource_version(written)


def settled_pod_event(kind: EventType, new: KubeObject | None, *, released: bool) -> bool:
    """Whether a pod event cannot change its run: the controller recorded the pod's result and
    dropped its finalizer (``released``), so no plan reads the pod again. Its deletion, the
    finalizer change and a kubelet's late status then cost no reconcile (about half of a
    transition's). A failed pod that is not being deleted still needs the reconcile that schedules
    its TTL, and resyncs always reconcile: they are the level-triggered safety net."""
    if not released or kind not in (EventType.MODIFIED, EventType.DELETED):
        return False
    if kind is EventType.DELETED or new is None:
        return True
    if has_result_finalizer(new):
        return False
    return bool((new.get("metadata") or {}).get("deletionTimestamp")) or not pod_failed(new)


def recorded_pods(status: DagRunStatus) -> set[str]:
    """The pods of the attempts ``status`` has in flight."""
    names = set()
    for task, item in in_flight_units(status):
        detail = status.tasks.get(detail_key(task, item))
        if detail is not None and detail.pod:
            names.add(detail.pod)
    return names


def _raise_failures(results: list[Any], what: str) -> None:
    """Re-raises a programming error as is; API errors become one RetryLater for the batch."""
    failures = [r for r in results if isinstance(r, BaseException)]
    for failure in failures:
        if not isinstance(failure, ApiError):
            raise failure
    if failures:
        raise RetryLater(f"{len(failures)} {what} failed: {failures[0]}")


def task_ended(pod: Mapping[str, Any], main: str) -> bool:
    """Whether the pod shows its task's end as the classifier reads it: a terminal phase or, what a
    real kubelet reports about a second before the phase, the main container terminated."""
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return True
    return any(
        c.get("name") == main and "terminated" in (c.get("state") or {})
        for c in status.get("containerStatuses") or ()
    )


def _retried(status: DagRunStatus) -> int:
    for cond in status.conditions:
        if cond.type == "Retried" and cond.observedGeneration is not None:
            return cond.observedGeneration
    return 0


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


__all__ = [
    "PodAnnotator",
    "ReconcileSettings",
    "RetryLater",
    "RunReconciler",
    "failed_run_status",
    "in_flight_units",
    "own_write_echo",
    "run_key",
    "status_body",
    "task_ended",
]

"""The running controller: informers, leader election, workers, cron and the sweeper, wired.

One kubernetes_asyncio client and one ``Transport`` serve everything. Informers for DAGs, DAGRuns
and Leoflow pods (``app.kubernetes.io/managed-by=leoflow``) keep caches warm on every replica; their
handlers only enqueue a run key. Only the Lease holder runs the workers, the cron loop and the
sweeper, and its writer refuses to write once the Lease is lost; the leader's pod carries the label
the agents' Service selects (``leaderpod``). Workers take keys from the
``WorkQueue`` (one reconcile per run at a time) and call :class:`RunReconciler`; a failed
reconcile is retried with backoff. Level-triggered: becoming leader and every resync enqueue every
run, so nothing depends on having seen a particular event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

from leoflow.controller.agentca import AgentCaDistribution
from leoflow.controller.cleanup import sweep_orphans
from leoflow.controller.cron import CronScheduler
from leoflow.controller.kube.errors import ApiError, NotLeader
from leoflow.controller.kube.informer import Informer, InformerOptions
from leoflow.controller.kube.leader import LeaderElector, LeaseConfig
from leoflow.controller.kube.transport import DAGRUNS, DAGS, PODS, Transport
from leoflow.controller.kube.writer import Writer
from leoflow.controller.leaderpod import LeaderPodLabel, PodRef
from leoflow.controller.metrics import ControllerMetrics
from leoflow.controller.nodes import NodeWatch
from leoflow.controller.podnames import MANAGED_BY, MANAGED_BY_LABEL
from leoflow.controller.reconcile import ReconcileSettings, RetryLater, RunReconciler, run_key
from leoflow.controller.sensors.engine import EngineOptions, SensorEngine
from leoflow.controller.sensors.metrics import SensorMetrics
from leoflow.controller.sensors.pods import PodCommandLauncher
from leoflow.controller.sensors.secrets import SecretReader
from leoflow.controller.sensors.watches import WatchHub
from leoflow.controller.sensortasks import PokePodBuilder
from leoflow.controller.workqueue import WorkQueue

log = logging.getLogger(__name__)

POD_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"


def default_identity() -> str:
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class ControllerSettings:
    namespace: str | None = None
    """Watch and act in this namespace only (None: all namespaces)."""
    workers: int = 16
    leader_elect: bool = True
    lease_namespace: str = "leoflow-system"
    lease_name: str = "leoflow-controller"
    identity: str = field(default_factory=default_identity)
    resync_period: float = 300.0
    sweep_period: float = 60.0
    cron: bool = True
    cron_period: float = 5.0
    retry_backoff_max: float = 30.0
    reconcile: ReconcileSettings = field(default_factory=ReconcileSettings)
    sensors: EngineOptions = field(default_factory=EngineOptions)
    sensor_progress_period: float = 30.0
    sensor_progress_batch: int = 1000
    """Every period, the runs of at most this many sensors that poked get their sensor state
    recorded (for resuming after a restart): at most batch/period status writes per second."""
    agent_ca_file: Path | None = None
    """The CA agents verify the controller with, copied into each task namespace as ConfigMap
    leoflow-ca before its first pod (None: copy nothing)."""
    own_pod: PodRef | None = None
    """The pod this replica runs in: labelled leoflow.io/leader=true while it leads, for the agents'
    Service (None: outside a pod, nothing to label)."""


class Controller:
    def __init__(
        self,
        api_client: Any,
        settings: ControllerSettings | None = None,
        *,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.settings = settings or ControllerSettings()
        self.transport = Transport(api_client)
        self.metrics = ControllerMetrics(registry)
        self.elector: LeaderElector | None = None
        if self.settings.leader_elect:
            settings = self.settings
            config = LeaseConfig(settings.lease_namespace, settings.lease_name, settings.identity)
            self.elector = LeaderElector(self.transport, config)
        elector = self.elector
        self.writer = Writer(
            self.transport, is_leader=(lambda: elector.is_leader) if elector is not None else None
        )
        namespace = self.settings.namespace
        self.runs = Informer(
            self.transport,
            DAGRUNS,
            namespace=namespace,
            options=InformerOptions(resync_period=self.settings.resync_period),
        )
        self.dags = Informer(self.transport, DAGS, namespace=namespace)
        self.pods = Informer(
            self.transport,
            PODS,
            namespace=namespace,
            label_selector=POD_SELECTOR,
            options=InformerOptions(resync_period=None),
        )
        self.queue = WorkQueue()
        self.reconciler = RunReconciler(
            writer=self.writer,
            runs=self.runs,
            dags=self.dags,
            pods=self.pods,
            queue=self.queue,
            metrics=self.metrics,
            settings=self.settings.reconcile,
        )
        self.watches = WatchHub(api_client)
        self.sensors = SensorEngine(
            self.reconciler.on_sensor_done,
            metrics=SensorMetrics(registry),
            watches=self.watches,
            commands=PodCommandLauncher(
                api_client, self.watches, PokePodBuilder(self.settings.reconcile.pod_annotations)
            ),
            task_index=self._task_index,
            secrets=SecretReader(api_client),
            options=self.settings.sensors,
        )
        self.reconciler.sensors = self.sensors
        self.cron = CronScheduler(writer=self.writer, dags=self.dags, runs=self.runs)
        self.runs.add_handler(self.reconciler.on_run_event)
        self.runs.add_handler(lambda _kind, _old, _new: self.cron.nudge())
        self.dags.add_handler(lambda _kind, _old, _new: self.cron.nudge())
        self.pods.add_handler(self.reconciler.on_pod_event)
        # Cluster-scoped even when the controller is not: pods of any namespace sit on nodes.
        self.nodes = NodeWatch(self.transport, self.queue.add)
        self.pods.add_handler(self.nodes.on_pod_event)
        self.reconciler.nodes = self.nodes
        if self.settings.agent_ca_file is not None:
            self.reconciler.agent_ca = AgentCaDistribution(self.writer, self.settings.agent_ca_file)
        own_pod = self.settings.own_pod
        self.leader_label = LeaderPodLabel(self.transport, own_pod) if own_pod is not None else None
        self._failures: dict[str, int] = {}
        self._leading = asyncio.Event()

    @property
    def ready(self) -> bool:
        return self.runs.has_synced and self.dags.has_synced and self.pods.has_synced

    @property
    def is_leader(self) -> bool:
        return self.elector.is_leader if self.elector is not None else self._leading.is_set()

    async def run(self, stop: asyncio.Event) -> None:
        """Runs until ``stop`` is set; then finishes in-flight reconciles' I/O and releases the Lease."""
        informers = (self.dags, self.runs, self.pods)
        for informer in informers:
            informer.start()
        # Not waited for: until it has listed, pods are judged without their node's readiness.
        self.nodes.informer.start()
        try:
            if self.leader_label is not None:
                # A restarted container keeps its pod's labels: no Service may route here before we lead.
                await self.leader_label.clear()
            await _until(stop, asyncio.gather(*(i.wait_synced() for i in informers)))
            if stop.is_set():
                return
            log.info("caches synced", extra={"runs": len(self.runs.list()), "pods": len(self.pods.list())})
            if self.elector is None:
                await self._lead(stop, None)
                return
            async with self.elector:
                while not stop.is_set():
                    await _until(stop, self.elector.wait_leader())
                    if stop.is_set():
                        break
                    log.info("leading", extra={"identity": self.settings.identity})
                    await self._lead(stop, self.elector.wait_lost())
                    if not stop.is_set():
                        log.warning("lost leadership", extra={"identity": self.settings.identity})
        finally:
            self.queue.close()
            for informer in informers:
                await informer.stop()
            await self.nodes.informer.stop()
            await self.watches.close()

    async def _task_index(self, namespace: str, dag: str, definition_hash: str) -> dict[str, int]:
        spec = await self.reconciler.definition_for(namespace, dag, definition_hash)
        return spec.task_index() if spec is not None else {}

    async def _lead(self, stop: asyncio.Event, lost: Awaitable[None] | None) -> None:
        self._leading.set()
        await self.sensors.start()
        for obj in self.runs.list():
            meta = obj.get("metadata") or {}
            self.queue.add(run_key(str(meta.get("namespace", "")), str(meta.get("name", ""))))
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(self._worker(i)) for i in range(self.settings.workers)]
        tasks.append(loop.create_task(self._sweeper()))
        tasks.append(loop.create_task(self._sensor_progress()))
        if self.settings.cron:
            tasks.append(loop.create_task(self.cron.run(self.settings.cron_period)))
        try:
            waits: list[asyncio.Future[Any]] = [loop.create_task(stop.wait())]
            if lost is not None:
                waits.append(asyncio.ensure_future(lost))
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for wait in waits:
                wait.cancel()
        finally:
            self._leading.clear()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # Waiting sensors stop with the leadership; the next leader resumes them from the status.
            await self.sensors.close()
            if self.leader_label is not None:
                await self.leader_label.clear()

    async def _worker(self, number: int) -> None:
        while True:
            key = await self.queue.get()
            if key is None:
                return
            try:
                await self.reconciler.reconcile(key)
                self._failures.pop(key, None)
            except (RetryLater, ApiError, NotLeader) as exc:
                self._retry(key, exc)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("reconcile failed", extra={"run": key, "worker": number})
                self._retry(key, exc)
            finally:
                self.queue.done(key)

    def _retry(self, key: str, exc: BaseException) -> None:
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        delay = min(0.1 * 2 ** min(failures, 20), self.settings.retry_backoff_max)
        log.info("reconcile retried", extra={"run": key, "in": round(delay, 2), "error": str(exc)})
        self.queue.add_after(key, delay)

    async def _sensor_progress(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sensor_progress_period)
            self.reconciler.note_sensor_progress(self.settings.sensor_progress_batch)

    async def _sweeper(self) -> None:
        while True:
            if self.leader_label is not None:
                # Every sweep, so a label lost to a failed patch or a hand edit comes back.
                await self.leader_label.claim()
            try:
                swept = await sweep_orphans(self.writer, pods=self.pods, runs=self.runs)
                if swept:
                    log.info("swept orphaned pods", extra={"count": swept})
            except (ApiError, NotLeader) as exc:
                log.warning("sweep failed", extra={"error": str(exc)})
            await asyncio.sleep(self.settings.sweep_period)


async def _until(stop: asyncio.Event, work: Awaitable[Any]) -> None:
    """Awaits ``work`` unless ``stop`` is set first (then ``work`` is cancelled)."""
    loop = asyncio.get_running_loop()
    job = asyncio.ensure_future(work)
    stopper = loop.create_task(stop.wait())
    try:
        await asyncio.wait([job, stopper], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not job.done():
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job
        elif not job.cancelled() and job.exception() is not None:
            raise job.exception()  # type: ignore[misc]

"""The run engine's ``ReportSink``: agent reports become planner observations, at once.

The agent server (``agentserver.py``) hands over reports whose identity it has verified; this sink
finds the pod in the pod cache (by namespace and name, same UID), maps its labels to the task index
of the run's pinned definition, fences stale attempts (the run status must still have exactly this
attempt in flight) and buffers the observation in the reconciler until the run status records the
attempt's outcome, queueing the run so the downstream pods are created without waiting for the
pod watch. Reports buffered in memory are lost if the controller dies: the agent's termination
message and the pod watch then carry the same result. Only the leader takes reports: a standby
refuses them with ``NotLeading``, which sends the agent to the leader (``leaderpod``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from leoflow.controller.agentserver import AgentIdentity, AgentReport, NotLeading, StaleAttempt, UnknownPod
from leoflow.controller.cleanup import unit_code
from leoflow.controller.kube.transport import PODS
from leoflow.controller.observations import AgentFinished, AgentStarted, AgentTerminating
from leoflow.controller.planner import detail_key
from leoflow.controller.podnames import ATTEMPT_LABEL, ITEM_LABEL, RUN_LABEL, TASK_LABEL
from leoflow.controller.reconcile import RetryLater, RunReconciler, in_flight_units, run_key
from leoflow.spec.resources import DagRunStatus, TaskState

log = logging.getLogger(__name__)

CACHE_WAIT_SECONDS = 0.5
"""A report can beat the pod informer: the pod the agent runs in is that new. After this wait the
pod is read from the API server, so that read still fits in one call of the agent (its
--rpc-timeout, 2 s by default; the server answers a quarter second before it)."""
RECORD_WAIT_SECONDS = 2.0
"""How long a report waits for the run status to record its attempt before RetryLater (the
server's deadline usually cuts it first: the agent then retries the call)."""
RELEASE_RECHECK_SECONDS = 1.0
"""How often a prepared attempt's parked WaitStart reads the run status again, for a release it
was not told about (another replica's, or one made before the agent reconnected) and for a
cancellation."""
RECORD_POLL_SECONDS = 0.02
"""How often a report for an attempt the run status does not record yet looks again."""
_SIGNAL_EXIT_BASE = 128
_SIGTERM = 15

Resolved = tuple[str, int, int | None, int]
"""A report's run key, task index, fan-out item and attempt."""


class RunReportSink:
    def __init__(
        self,
        reconciler: RunReconciler,
        cache_wait: float = CACHE_WAIT_SECONDS,
        record_wait: float = RECORD_WAIT_SECONDS,
        release_recheck: float = RELEASE_RECHECK_SECONDS,
    ) -> None:
        self.reconciler = reconciler
        self.cache_wait = cache_wait
        self.record_wait = record_wait
        self.release_recheck = release_recheck

    async def report(self, report: AgentReport) -> None:
        leading = self.reconciler.writer.is_leader
        if leading is not None and not leading():
            # Buffered here the report would wait for a reconcile that never runs on this replica.
            raise NotLeading(f"controller replica is not the leader; {report.kind} must reach the leader")
        key, task, item, attempt = await self._resolve(report.identity)
        if report.kind == "started":
            self.reconciler.add_report(key, AgentStarted(task, item, attempt, report.at))
        elif report.kind == "terminating":
            signal = report.signal if report.signal is not None else _SIGTERM
            self.reconciler.add_report(key, AgentTerminating(task, item, attempt, signal, report.at))
        elif report.kind == "finished":
            exit_code = report.exit_code
            if exit_code is None:
                exit_code = _SIGNAL_EXIT_BASE + report.signal if report.signal is not None else -1
            self.reconciler.mark_finished(key, "agent")
            self.reconciler.add_report(
                key,
                AgentFinished(
                    task,
                    item,
                    attempt,
                    exit_code,
                    report.at,
                    outputs=dict(report.outputs),
                    oom=report.oom,
                    agent_error=report.agent_error,
                    outputs_error=report.outputs_error,
                ),
            )
            if exit_code == 0 and item is None and not (report.agent_error or report.outputs_error):
                self.reconciler.release_on_success(key, task, attempt)

    async def wait_start(self, identity: AgentIdentity) -> None:
        """Returns when the attempt may start: at once for a scheduled one (one the status does
        not record yet is waited for, as for any report), at its release for a prepared one.
        Raises StaleAttempt for an attempt no longer wanted: the agent is told to cancel.
        A standby answers too: the run status it reads from its warm cache decides, only its
        gates are never opened early (the leader's sink opens those)."""
        labels = await self._labels(identity)
        key, task, item, _ = await self._recorded(identity, labels)
        while self._prepared(key, task, item):
            if await self.reconciler.gates.wait(identity.namespace, identity.pod, self.release_recheck):
                return
            # The run status alone decides now: a cancelled attempt's pod may already be gone.
            key, task, item, _ = await self._recorded(identity, labels)

    def _prepared(self, key: str, task: int, item: int | None) -> bool:
        obj = self.reconciler.freshest_run(key)
        status = DagRunStatus.model_validate((obj or {}).get("status") or {})
        return unit_code(status, task, item) == TaskState.PREPARED.value

    async def _resolve(self, identity: AgentIdentity) -> Resolved:
        return await self._recorded(identity, await self._labels(identity))

    async def _labels(self, identity: AgentIdentity) -> Mapping[str, Any]:
        pod = await self._pod(identity)
        labels: Mapping[str, Any] = (pod.get("metadata") or {}).get("labels") or {}
        return labels

    async def _recorded(self, identity: AgentIdentity, labels: Mapping[str, Any]) -> Resolved:
        """The attempt, once the run status records it in flight (waited for, within bounds)."""
        run = str(labels.get(RUN_LABEL, ""))
        key = run_key(identity.namespace, run)
        loop = asyncio.get_running_loop()
        began = loop.time()
        polls = 0
        waiting_for = ""

        def waited(**more: object) -> dict[str, object]:
            return {
                "run": key,
                "pod": identity.pod,
                "waited_ms": round((loop.time() - began) * 1000, 1),
                **more,
            }

        try:
            while True:
                where = await self._attempt(identity, key, labels)
                if not isinstance(where, str):
                    if polls:
                        log.debug("report waited for its attempt's record", extra=waited(polls=polls))
                    return where
                waiting_for = where
                # Pods are created concurrently with the status write that records them, so a fast
                # agent can report before that write lands; it lands within a round trip.
                if loop.time() >= began + self.record_wait:
                    raise RetryLater(f"pod {identity.pod}: {waiting_for}")
                polls += 1
                await asyncio.sleep(RECORD_POLL_SECONDS)
        except (asyncio.CancelledError, RetryLater):
            if waiting_for:
                # Said once per call that ends unanswered: a report that keeps waiting is the agent
                # waiting out its --finish-timeout, and this is what it waits for.
                log.info("report's attempt not recorded yet", extra=waited(reason=waiting_for))
            raise

    async def _attempt(self, identity: AgentIdentity, key: str, labels: Mapping[str, Any]) -> Resolved | str:
        """The report's (run key, task, item, attempt) if the run has that attempt in flight, or
        why not yet if the run does not record it yet (its first status write may not have landed
        either); raises if it is stale or not a task of the run."""
        obj = self.reconciler.freshest_run(key)
        if obj is None:
            raise StaleAttempt(f"run {key} no longer exists")
        status = DagRunStatus.model_validate(obj.get("status") or {})
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if not status.definitionHash:
            return f"run {key} (resourceVersion {version}) has no status yet"
        dag_name = str((obj.get("spec") or {}).get("dagName", ""))
        # RetryLater and API errors propagate: the server answers UNAVAILABLE and the agent retries.
        dag = await self.reconciler.definition_for(identity.namespace, dag_name, status.definitionHash)
        task = dag.task_index().get(str(labels.get(TASK_LABEL, ""))) if dag is not None else None
        attempt_text = str(labels.get(ATTEMPT_LABEL, ""))
        item_text = labels.get(ITEM_LABEL)
        if task is None or not attempt_text.isdigit():
            raise UnknownPod(f"pod {identity.namespace}/{identity.pod} is not a task of run {key}")
        item = int(item_text) if isinstance(item_text, str) and item_text.isdigit() else None
        attempt = int(attempt_text)
        detail = status.tasks.get(detail_key(task, item))
        current = detail.attempt if detail is not None else 1
        in_flight = (task, item) in in_flight_units(status)
        if in_flight and current == attempt:
            return key, task, item, attempt
        code = unit_code(status, task, item)
        unrecorded = detail is None and code == TaskState.PENDING.value
        if attempt > current or (attempt == current and unrecorded):
            return (
                f"run {key} (resourceVersion {version}) records attempt {current} of "
                f"{identity.task} in state {code!r}, not attempt {attempt} in flight"
            )
        raise StaleAttempt(f"attempt {attempt} of {identity.task} is no longer current in run {key}")

    async def _pod(self, identity: AgentIdentity) -> Mapping[str, Any]:
        pods = self.reconciler.pods
        loop = asyncio.get_running_loop()
        began = loop.time()
        pod = pods.get(identity.namespace, identity.pod)
        waited = pod is None
        while pod is None and loop.time() < began + self.cache_wait:
            await asyncio.sleep(0.05)
            pod = pods.get(identity.namespace, identity.pod)
        cached = pod is not None
        if pod is None:
            pod = await self.reconciler.writer.get(PODS, identity.namespace, identity.pod)
        if waited:
            log.debug(
                "report waited for its pod",
                extra={
                    "pod": f"{identity.namespace}/{identity.pod}",
                    "from_cache": cached,
                    "waited_ms": round((loop.time() - began) * 1000, 1),
                },
            )
        if pod is None or (pod.get("metadata") or {}).get("uid") != identity.uid:
            raise UnknownPod(f"no Leoflow pod {identity.namespace}/{identity.pod} with uid {identity.uid}")
        return pod

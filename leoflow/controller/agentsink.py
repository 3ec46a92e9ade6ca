"""The run engine's ``ReportSink``: agent reports become planner observations, at once.

The agent server (``agentserver.py``) hands over reports whose identity it has verified; this sink
finds the pod in the pod cache (by namespace and name, same UID), maps its labels to the task index
of the run's pinned definition, fences stale attempts (the run status must still have exactly this
attempt in flight) and buffers the observation in the reconciler until the run status records the
attempt's outcome, queueing the run so the downstream pods are created without waiting for the
pod watch. Reports buffered in memory are lost if the controller dies: the agent's termination
message and the pod watch then carry the same result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from leoflow.controller.agentserver import AgentIdentity, AgentReport, StaleAttempt, UnknownPod
from leoflow.controller.cleanup import unit_code
from leoflow.controller.kube.transport import PODS
from leoflow.controller.observations import AgentFinished, AgentStarted
from leoflow.controller.planner import detail_key
from leoflow.controller.podnames import ATTEMPT_LABEL, ITEM_LABEL, RUN_LABEL, TASK_LABEL
from leoflow.controller.reconcile import RetryLater, RunReconciler, in_flight_units, run_key
from leoflow.spec.resources import DagRunStatus, TaskState

CACHE_WAIT_SECONDS = 2.0
"""A report can beat the pod informer: the pod the agent runs in is that new."""
RECORD_POLL_SECONDS = 0.02
"""How often a report for an attempt the run status does not record yet looks again."""
_SIGNAL_EXIT_BASE = 128


class RunReportSink:
    def __init__(self, reconciler: RunReconciler, cache_wait: float = CACHE_WAIT_SECONDS) -> None:
        self.reconciler = reconciler
        self.cache_wait = cache_wait

    async def report(self, report: AgentReport) -> None:
        key, task, item, attempt = await self._resolve(report.identity)
        if report.kind == "started":
            self.reconciler.add_report(key, AgentStarted(task, item, attempt, report.at))
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

    async def wait_start(self, identity: AgentIdentity) -> None:
        # A current attempt may start (one the status does not record yet is waited for, as for
        # any report); a fenced one is refused.
        await self._resolve(identity)

    async def _resolve(self, identity: AgentIdentity) -> tuple[str, int, int | None, int]:
        pod = await self._pod(identity)
        labels: Mapping[str, Any] = (pod.get("metadata") or {}).get("labels") or {}
        run = str(labels.get(RUN_LABEL, ""))
        key = run_key(identity.namespace, run)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cache_wait
        while True:
            where = await self._attempt(identity, key, labels)
            if where is not None:
                return where
            # Pods are created concurrently with the status write that records them, so a fast
            # agent can report before that write lands; it lands within a round trip.
            if loop.time() >= deadline:
                raise RetryLater(f"attempt of {identity.task} is not recorded in run {key} yet")
            await asyncio.sleep(RECORD_POLL_SECONDS)

    async def _attempt(
        self, identity: AgentIdentity, key: str, labels: Mapping[str, Any]
    ) -> tuple[str, int, int | None, int] | None:
        """The report's (run key, task, item, attempt) if the run has that attempt in flight, None
        if the run does not record it yet (its first status write may not have landed either);
        raises if it is stale or not a task of the run."""
        obj = self.reconciler.freshest_run(key)
        if obj is None:
            raise StaleAttempt(f"run {key} no longer exists")
        status = DagRunStatus.model_validate(obj.get("status") or {})
        if not status.definitionHash:
            return None
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
        unrecorded = detail is None and unit_code(status, task, item) == TaskState.PENDING.value
        if attempt > current or (attempt == current and unrecorded):
            return None
        raise StaleAttempt(f"attempt {attempt} of {identity.task} is no longer current in run {key}")

    async def _pod(self, identity: AgentIdentity) -> Mapping[str, Any]:
        pods = self.reconciler.pods
        deadline = asyncio.get_running_loop().time() + self.cache_wait
        pod = pods.get(identity.namespace, identity.pod)
        while pod is None and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
            pod = pods.get(identity.namespace, identity.pod)
        if pod is None:
            pod = await self.reconciler.writer.get(PODS, identity.namespace, identity.pod)
        if pod is None or (pod.get("metadata") or {}).get("uid") != identity.uid:
            raise UnknownPod(f"no Leoflow pod {identity.namespace}/{identity.pod} with uid {identity.uid}")
        return pod

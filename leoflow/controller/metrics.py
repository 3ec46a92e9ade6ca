"""Prometheus metrics of the run engine: how fast a finished task unlocks the next one, what the
controller did to pods, how long runs and reconciles take, what the agents reported.

The headline number is ``leoflow_task_transition_seconds``: from the moment the controller learned
an upstream finished (an agent's ``Finished`` or the pod's terminal watch event, the ``path``
label) to the moment the API server accepted the downstream pod. Its part until the create is sent,
``leoflow_task_transition_controller_seconds``, is the controller's own share; the writer's
``leoflow_api_request_seconds`` has the API server's. A ``prestart`` task's pod exists before its
upstreams end, so its transition is ``leoflow_task_release_seconds``: until its waiting agent is
told to start, with no API call in between. API errors by code live with
the error table (``leoflow.controller.kube.errors``) and sensor gauges with the sensor engine.
Label children are resolved once, so recording costs an increment. Tests pass their own registry.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from leoflow.controller.podstatus import FailureReason
from leoflow.spec.resources import TERMINAL_RUN_PHASES

TRANSITION_PATHS = ("agent", "pod")
AGENT_REPORTS = ("wait_start", "started", "heartbeat", "terminating", "finished")
REPORT_RESULTS = ("accepted", "stale", "rejected", "redirected")
CREATE_RESULTS = ("created", "adopted", "failed")
# The fast-path budget is 10 ms at p50 and 50 ms at p99: resolve the low end finely.
TRANSITION_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
RECONCILE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
RUN_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0)


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.transition = Histogram(
            "leoflow_task_transition_seconds",
            "From an upstream task's end being known to the downstream pod accepted by the API server",
            ["path"],
            buckets=TRANSITION_BUCKETS,
            registry=registry,
        )
        self.transition_controller = Histogram(
            "leoflow_task_transition_controller_seconds",
            "The controller's own share of a transition: from an upstream task's end being known to "
            "the downstream pod's create being sent (the rest is leoflow_api_request_seconds{verb=create})",
            ["path"],
            buckets=TRANSITION_BUCKETS,
            registry=registry,
        )
        self.release = Histogram(
            "leoflow_task_release_seconds",
            "From an upstream task's end being known to a prepared (prestart) downstream's agent "
            "being told to start: the transition when the pod already exists",
            ["path"],
            buckets=TRANSITION_BUCKETS,
            registry=registry,
        )
        self.pods_created = Counter(
            "leoflow_pods_created",
            "Pod creations by result (adopted: AlreadyExists for the same attempt)",
            ["result"],
            registry=registry,
        )
        self.pods_deleted = Counter("leoflow_pods_deleted", "Pods the controller deleted", registry=registry)
        self.run_duration = Histogram(
            "leoflow_run_duration_seconds",
            "DAGRun start to completion, by final phase",
            ["phase"],
            buckets=RUN_BUCKETS,
            registry=registry,
        )
        self.task_failures = Counter(
            "leoflow_task_failures",
            "Failed task attempts by classified reason",
            ["reason"],
            registry=registry,
        )
        self.agent_reports = Counter(
            "leoflow_agent_reports",
            "Agent reports by kind and result (stale: fenced attempt; redirected: sent to a standby)",
            ["kind", "result"],
            registry=registry,
        )
        self.reconcile = Histogram(
            "leoflow_reconcile_seconds",
            "Time to plan one DAGRun and hand its actions to the writer",
            buckets=RECONCILE_BUCKETS,
            registry=registry,
        )
        self._transition = {path: self.transition.labels(path) for path in TRANSITION_PATHS}
        self._transition_controller = {
            path: self.transition_controller.labels(path) for path in TRANSITION_PATHS
        }
        self._release = {path: self.release.labels(path) for path in TRANSITION_PATHS}
        self._created = {result: self.pods_created.labels(result) for result in CREATE_RESULTS}
        self._runs = {phase.value: self.run_duration.labels(phase.value) for phase in TERMINAL_RUN_PHASES}
        self._failures = {reason.value: self.task_failures.labels(reason.value) for reason in FailureReason}
        self._reports = {
            (kind, result): self.agent_reports.labels(kind, result)
            for kind in AGENT_REPORTS
            for result in REPORT_RESULTS
        }

    def task_transition(self, path: str, seconds: float, controller_seconds: float) -> None:
        """``seconds`` until the create was accepted, ``controller_seconds`` until it was sent."""
        self._transition[path].observe(max(seconds, 0.0))
        self._transition_controller[path].observe(max(controller_seconds, 0.0))

    def task_released(self, path: str, seconds: float) -> None:
        self._release[path].observe(max(seconds, 0.0))

    def pod_created(self, result: str) -> None:
        self._created[result].inc()

    def pod_deleted(self) -> None:
        self.pods_deleted.inc()

    def run_finished(self, phase: str, seconds: float) -> None:
        self._runs[phase].observe(max(seconds, 0.0))

    def task_failed(self, reason: str) -> None:
        child = self._failures.get(reason)
        # Planner-level reasons (TemplateError, RunTimeout, ...) are few and fixed, so a label each.
        (child if child is not None else self.task_failures.labels(reason)).inc()

    def agent_report(self, kind: str, result: str) -> None:
        self._reports[(kind, result)].inc()

    def reconciled(self, seconds: float) -> None:
        self.reconcile.observe(max(seconds, 0.0))

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from leoflow.controller.metrics import ControllerMetrics


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    assert value is not None, f"{name}{labels} not exported"
    return value


def test_transition_latency_is_a_histogram_by_path_with_fine_low_buckets() -> None:
    registry = CollectorRegistry()
    metrics = ControllerMetrics(registry)
    metrics.task_transition("agent", 0.004, 0.001)
    metrics.task_transition("pod", 0.12, 0.002)
    assert _value(registry, "leoflow_task_transition_seconds_bucket", path="agent", le="0.005") == 1
    assert _value(registry, "leoflow_task_transition_seconds_bucket", path="pod", le="0.1") == 0
    assert _value(registry, "leoflow_task_transition_seconds_count", path="pod") == 1


def test_the_controllers_own_share_of_a_transition_is_exported_beside_it() -> None:
    registry = CollectorRegistry()
    metrics = ControllerMetrics(registry)
    metrics.task_transition("pod", 0.12, 0.002)
    assert _value(registry, "leoflow_task_transition_controller_seconds_bucket", path="pod", le="0.0025") == 1
    assert _value(registry, "leoflow_task_transition_seconds_bucket", path="pod", le="0.0025") == 0


def test_pod_run_report_and_failure_counters_are_exported() -> None:
    registry = CollectorRegistry()
    metrics = ControllerMetrics(registry)
    metrics.pod_created("created")
    metrics.pod_created("adopted")
    metrics.pod_deleted()
    metrics.run_finished("Succeeded", 42.0)
    metrics.task_failed("OOMKilled")
    metrics.task_failed("TemplateError")
    metrics.agent_report("finished", "stale")
    metrics.reconciled(0.0004)
    assert _value(registry, "leoflow_pods_created_total", result="adopted") == 1
    assert _value(registry, "leoflow_pods_deleted_total") == 1
    assert _value(registry, "leoflow_run_duration_seconds_sum", phase="Succeeded") == 42.0
    assert _value(registry, "leoflow_task_failures_total", reason="OOMKilled") == 1
    assert _value(registry, "leoflow_task_failures_total", reason="TemplateError") == 1
    assert _value(registry, "leoflow_agent_reports_total", kind="finished", result="stale") == 1
    assert _value(registry, "leoflow_reconcile_seconds_count") == 1


def test_unknown_label_values_are_refused() -> None:
    metrics = ControllerMetrics(CollectorRegistry())
    with pytest.raises(KeyError):
        metrics.task_transition("carrier-pigeon", 1.0, 0.1)

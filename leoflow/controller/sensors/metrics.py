"""Prometheus metrics of the sensor engine: how many wait, how often they ask, how late they wake.

Label children are resolved once per sensor type so a poke costs an increment, not a label lookup.
Tests pass their own registry; the controller uses the default one that its /metrics serves.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

SENSOR_TYPES = ("time", "http", "kubernetes", "dagRun", "command")
POKE_RESULTS = ("satisfied", "not_yet", "error", "permanent_error")
LATENESS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class SensorMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.active = Gauge(
            "leoflow_sensors_active",
            "Sensors waiting in this controller, by type",
            ["type"],
            registry=registry,
        )
        self.pokes = Counter(
            "leoflow_sensor_pokes", "Sensor pokes by type and result", ["type", "result"], registry=registry
        )
        self.lateness = Histogram(
            "leoflow_sensor_wakeup_lateness_seconds",
            "How long after its due time a sensor timer fired",
            ["type"],
            buckets=LATENESS_BUCKETS,
            registry=registry,
        )
        self.http_queued = Gauge(
            "leoflow_sensor_http_queued",
            "HTTP sensor pokes waiting for a free slot in their host's lane",
            registry=registry,
        )
        self.active_by_type = {kind: self.active.labels(kind) for kind in SENSOR_TYPES}
        self.lateness_by_type = {kind: self.lateness.labels(kind) for kind in SENSOR_TYPES}
        self.pokes_by_type = {
            (kind, result): self.pokes.labels(kind, result)
            for kind in SENSOR_TYPES
            for result in POKE_RESULTS
        }

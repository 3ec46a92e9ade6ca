"""Builds engines on a manual clock with their own metrics registry, and records outcomes."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from leoflow.controller.sensors import EngineOptions, Outcome, SensorEngine, SensorMetrics
from leoflow.spec.resources import CompiledSensor
from tests.unit.sensors.manual_clock import ManualClock


class Recorder:
    def __init__(self) -> None:
        self.outcomes: dict[str, Outcome] = {}
        self.order: list[str] = []
        self.calls = 0

    def __call__(self, key: str, outcome: Outcome) -> None:
        self.calls += 1
        self.order.append(key)
        self.outcomes[key] = outcome


def sensor(**fields: Any) -> CompiledSensor:
    return CompiledSensor.model_validate(fields)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def build(
    clock: ManualClock, done: Recorder, options: EngineOptions | None = None, **kwargs: Any
) -> tuple[SensorEngine, CollectorRegistry]:
    registry = CollectorRegistry()
    engine = SensorEngine(done, clock=clock, metrics=SensorMetrics(registry), options=options, **kwargs)
    return engine, registry

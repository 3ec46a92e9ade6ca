"""Sensors: tasks that wait in the controller instead of in a pod.

:class:`~leoflow.controller.sensors.engine.SensorEngine` is the whole surface the controller
uses: ``add``/``resume``/``remove``/``state`` and an ``on_done(key, outcome)`` callback. One timer
heap driven by one task serves every sensor; HTTP sensors share one pooled session with a per-host
queue; Kubernetes and DAG-run sensors share one watch per resource type. See docs/sensors.md.
"""

from leoflow.controller.sensors.commands import CommandLauncher, CommandLaunchError, CommandRequest
from leoflow.controller.sensors.definitions import SnapshotTaskIndex
from leoflow.controller.sensors.engine import EngineOptions, SensorEngine, SensorSpecError
from leoflow.controller.sensors.http import HttpOptions
from leoflow.controller.sensors.metrics import SensorMetrics
from leoflow.controller.sensors.outcomes import Outcome, Reason, Result
from leoflow.controller.sensors.pods import PodCommandLauncher
from leoflow.controller.sensors.secrets import SecretReader, SecretUnavailable
from leoflow.controller.sensors.state import SensorState, SensorStateError
from leoflow.controller.sensors.watches import WatchHub

__all__ = [
    "CommandLaunchError",
    "CommandLauncher",
    "CommandRequest",
    "EngineOptions",
    "HttpOptions",
    "Outcome",
    "PodCommandLauncher",
    "Reason",
    "Result",
    "SecretReader",
    "SecretUnavailable",
    "SensorEngine",
    "SensorMetrics",
    "SensorSpecError",
    "SensorState",
    "SensorStateError",
    "SnapshotTaskIndex",
    "WatchHub",
]

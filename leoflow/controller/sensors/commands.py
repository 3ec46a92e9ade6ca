"""Command sensors: run the author's command in a pod each poke; exit code 0 means satisfied.

The engine does not create pods: the controller owns pod creation (names, the agent, rate limits,
owner references), so the engine hands a :class:`CommandRequest` to a launcher the controller
supplies and awaits the exit code. ``attempt`` numbers the pokes so the controller can give each
poke's pod a deterministic name and adopt it after a restart instead of creating a second one.
A non-zero exit means "not yet"; a launcher that cannot run the pod raises
:class:`CommandLaunchError` (``permanent=True`` when retrying cannot help, e.g. a rejected spec).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CommandRequest:
    key: str
    namespace: str
    attempt: int
    command: tuple[str, ...]
    args: tuple[str, ...]
    context: object = None
    """What the controller passed with the sensor (``SensorEngine.add``): how to build the pod."""


class CommandLaunchError(Exception):
    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


CommandLauncher = Callable[[CommandRequest], Awaitable[int]]

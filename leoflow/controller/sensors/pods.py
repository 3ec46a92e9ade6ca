"""Runs a command sensor's poke as a pod and waits for its exit code on the shared pod watch.

The controller decides what the pod is: ``build_pod(request)`` returns the full Pod (name derived
from the sensor key and ``request.attempt``, the agent opt-in label, owner reference to the run).
This launcher only does the lifecycle the engine needs: create it (``AlreadyExists`` means a
restarted controller adopts the pod of the same poke), wait on one watch per namespace shared with
every other pod sensor, read the exit code, and delete the pod, because a sensor poking every
minute for a day would otherwise leave 1,440 finished pods behind.

A pod the API server rejects (invalid, forbidden) is a permanent error; a failed connection, a 5xx,
a 429, or a pod deleted by someone else before it finished is transient.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from leoflow.controller.sensors.apicalls import call, object_path
from leoflow.controller.sensors.commands import CommandLaunchError, CommandRequest
from leoflow.controller.sensors.watches import KubeObject, WatchHub, WatchKey

log = logging.getLogger(__name__)

PodBuilder = Callable[[CommandRequest], KubeObject]


class _PodListener:
    __slots__ = ("finished",)

    def __init__(self, finished: asyncio.Future[int]) -> None:
        self.finished = finished

    def on_object(self, obj: KubeObject | None) -> None:
        if self.finished.done():
            return
        if obj is None:
            return
        phase = (obj.get("status") or {}).get("phase")
        if phase == "Succeeded":
            self.finished.set_result(0)
        elif phase == "Failed":
            self.finished.set_result(exit_code(obj))
        elif obj.get("metadata", {}).get("deletionTimestamp"):
            self.finished.set_exception(CommandLaunchError("the command pod was deleted before it finished"))

    def on_permanent_error(self, message: str) -> None:
        if not self.finished.done():
            self.finished.set_exception(CommandLaunchError(message, permanent=True))


def exit_code(pod: KubeObject) -> int:
    """The first terminated container's exit code; 1 when a failed pod reports none."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated")
        if terminated and terminated.get("exitCode") is not None:
            return int(terminated["exitCode"])
    return 1


class PodCommandLauncher:
    def __init__(
        self,
        api_client: Any,
        watches: WatchHub,
        build_pod: PodBuilder,
        *,
        delete_finished: bool = True,
        request_timeout: float = 30.0,
    ) -> None:
        self._api = api_client
        self._watches = watches
        self._build_pod = build_pod
        self._delete_finished = delete_finished
        self._timeout = request_timeout

    async def __call__(self, request: CommandRequest) -> int:
        pod = self._build_pod(request)
        name = str(pod["metadata"]["name"])
        finished: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        subscription = self._watches.subscribe(
            WatchKey("v1", "Pod", request.namespace), name, _PodListener(finished)
        )
        try:
            await self._create(request.namespace, name, pod)
            return await finished
        finally:
            self._watches.unsubscribe(subscription)
            if self._delete_finished:
                await self._delete(request.namespace, name)

    async def _call(self, method: str, path: str, body: object) -> tuple[int, str]:
        try:
            status, raw = await call(self._api, method, path, request_timeout=self._timeout, body=body)
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise CommandLaunchError(f"{method} {path} failed: {type(err).__name__}: {err}") from err
        try:
            message = str(json.loads(raw).get("message", ""))
        except (ValueError, AttributeError):
            message = raw[:200].decode(errors="replace")
        return status, message

    async def _create(self, namespace: str, name: str, pod: KubeObject) -> None:
        status, message = await self._call("POST", object_path("pods", namespace), pod)
        if status in (200, 201, 409):
            return
        permanent = 400 <= status < 500 and status != 429
        raise CommandLaunchError(
            f"creating command pod {namespace}/{name}: HTTP {status}: {message}", permanent=permanent
        )

    async def _delete(self, namespace: str, name: str) -> None:
        with contextlib.suppress(CommandLaunchError):
            status, message = await self._call(
                "DELETE", object_path("pods", namespace, name), {"propagationPolicy": "Background"}
            )
            if status not in (200, 202, 404):
                log.warning(
                    "could not delete a finished command pod",
                    extra={"pod": f"{namespace}/{name}", "status": status, "error": message},
                )

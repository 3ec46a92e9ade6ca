"""The sensor engine the controller embeds: every waiting sensor, one timer task, one callback.

API (all on the event loop):

- ``add(key, sensor, namespace)`` starts a sensor; ``resume(key, sensor, namespace, state)``
  continues one from the state the controller stored in the DAGRun, so its timeout still counts
  from the original start and a time sensor whose moment passed while the controller was down
  fires at once. A spec the engine cannot use raises :class:`SensorSpecError` (fail the task with
  its message). Adding a key that is already waiting keeps the running sensor.
- ``remove(key)`` forgets a sensor (run cancelled or deleted); ``state(key)`` is what to persist.
- ``take_changed(limit)`` names sensors whose state moved since they were last taken (oldest
  first), so the controller records progress at a rate it chooses instead of on every poke.
- ``context`` (optional, per sensor) is handed back in each ``CommandRequest``: what the
  controller's pod builder needs, opaque to the engine.
- ``on_done(key, outcome)`` is called exactly once per sensor that ends; it must not block (the
  controller enqueues the run for reconcile).

Time sensors cost a heap entry; HTTP and command sensors a heap entry between pokes; Kubernetes and
DAG-run sensors a watch subscription plus a heap entry for their timeout. Sensors are plain
``__slots__`` records: at 100,000 sensors the engine holds no task per sensor.

The sensor must arrive with its templates rendered (``{{ logical_date }}`` in a DAG-run sensor,
``{{ params.x }}`` in a URL); the engine treats strings literally.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from leoflow.controller.sensors import jsonpath
from leoflow.controller.sensors.backoff import next_poke_delay
from leoflow.controller.sensors.clock import Clock, SystemClock
from leoflow.controller.sensors.commands import CommandLauncher, CommandLaunchError, CommandRequest
from leoflow.controller.sensors.http import HttpOptions, HttpPoker, check_url
from leoflow.controller.sensors.metrics import SensorMetrics
from leoflow.controller.sensors.outcomes import Outcome, Poke, PokeKind, Reason, Result
from leoflow.controller.sensors.predicates import ObjectCondition, PredicateError, RunCondition
from leoflow.controller.sensors.secrets import SecretLookup
from leoflow.controller.sensors.state import SensorState
from leoflow.controller.sensors.timers import TimerHeap
from leoflow.controller.sensors.watches import KubeObject, Subscription, WatchHub, WatchKey
from leoflow.spec.resources import API_VERSION, CompiledHttpSensor, CompiledSensor

log = logging.getLogger(__name__)

DoneCallback = Callable[[str, Outcome], None]
TaskIndexLookup = Callable[[str, str, str], Awaitable[dict[str, int]]]
"""``(namespace, dag, definitionHash) -> {task name: index}``: supplied by the controller."""
FIRE_BATCH = 2048


class SensorSpecError(ValueError):
    """A sensor the engine cannot run; the message says what to fix."""


@dataclass(frozen=True)
class EngineOptions:
    not_yet_backoff: float = 1.0
    """>1 stretches the poke interval after each plain "not yet" (capped by maxPokeInterval), for
    sensors that do not set their own ``pokeBackoff``."""
    http: HttpOptions = field(default_factory=HttpOptions)


class Waiter:
    """One waiting sensor. ``detail`` is per kind: the target time, or a parsed condition."""

    __slots__ = (
        "active",
        "attempts",
        "context",
        "detail",
        "errors",
        "key",
        "kind",
        "last",
        "namespace",
        "next_poke_at",
        "sensor",
        "started_at",
        "subscription",
        "timer_token",
    )

    def __init__(
        self,
        key: str,
        sensor: CompiledSensor,
        kind: str,
        namespace: str,
        state: SensorState,
        *,
        context: object = None,
    ) -> None:
        self.key = key
        self.context = context
        self.sensor = sensor
        self.kind = kind
        self.namespace = namespace
        self.started_at = state.started_at
        self.next_poke_at = state.next_poke_at
        self.attempts = state.attempts
        self.errors = state.errors
        self.detail: object = None
        self.subscription: Subscription | None = None
        self.last = ""
        self.active = True
        self.timer_token = 0

    @property
    def deadline(self) -> float:
        """The timeout counts from the first start, across restarts."""
        return self.started_at + self.sensor.timeoutSeconds

    @property
    def wanted(self) -> bool:
        return self.active

    @property
    def http(self) -> CompiledHttpSensor:
        assert self.sensor.http is not None
        return self.sensor.http

    @property
    def watched_namespace(self) -> str:
        """Where the watched object lives: the sensor's own namespace field, else the run's."""
        target = self.sensor.kubernetes or self.sensor.dagRun
        return (target.namespace if target is not None else None) or self.namespace

    def state(self) -> SensorState:
        return SensorState(self.started_at, self.next_poke_at, self.attempts, self.errors)


class _WatchListener:
    __slots__ = ("engine", "waiter")

    def __init__(self, engine: SensorEngine, waiter: Waiter) -> None:
        self.engine = engine
        self.waiter = waiter

    def on_object(self, obj: KubeObject | None) -> None:
        self.engine._on_object(self.waiter, obj)

    def on_permanent_error(self, message: str) -> None:
        self.engine._on_poke(self.waiter, Poke.permanent(message))


class SensorEngine:
    def __init__(
        self,
        on_done: DoneCallback,
        *,
        clock: Clock | None = None,
        metrics: SensorMetrics | None = None,
        watches: WatchHub | None = None,
        commands: CommandLauncher | None = None,
        task_index: TaskIndexLookup | None = None,
        secrets: SecretLookup | None = None,
        options: EngineOptions | None = None,
    ) -> None:
        self.options = options or EngineOptions()
        self._on_done = on_done
        self._clock: Clock = clock or SystemClock()
        self._metrics = metrics or SensorMetrics()
        self._watches = watches
        self._commands = commands
        self._task_index = task_index
        self._task_indices: dict[tuple[str, str, str], int | None] = {}
        self._looking_up: set[tuple[str, str, str]] = set()
        self._waiters: dict[str, Waiter] = {}
        self._timers: TimerHeap[Waiter] = TimerHeap()
        self._secrets = secrets
        self._http: HttpPoker[Waiter] = HttpPoker(self._on_poke, self.options.http, secrets)
        self._changed: dict[str, None] = {}
        self._metrics.http_queued.set_function(self._http.queued)
        self._background: set[asyncio.Task[None]] = set()
        self._commands_running: dict[str, asyncio.Task[None]] = {}
        self._wakeup = asyncio.Event()
        self._sleeping_until: float | None = None
        self._runner: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._waiters)

    def __contains__(self, key: object) -> bool:
        return key in self._waiters

    @property
    def timers(self) -> int:
        return len(self._timers)

    async def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._run(), name="sensor-timers")

    async def close(self) -> None:
        """Stops waiting; sensors stay where they are (their persisted state resumes them)."""
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        tasks = [*self._background, *self._commands_running.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._http.close()
        for waiter in self._waiters.values():
            waiter.active = False
            if waiter.subscription is not None and self._watches is not None:
                self._watches.unsubscribe(waiter.subscription)
            self._metrics.active_by_type[waiter.kind].dec()
        self._waiters.clear()
        self._changed.clear()

    def add(self, key: str, sensor: CompiledSensor, namespace: str, context: object = None) -> SensorState:
        """Starts a new sensor now; returns its initial state."""
        return self.resume(key, sensor, namespace, SensorState.fresh(self._clock.now()), context)

    def resume(
        self, key: str, sensor: CompiledSensor, namespace: str, state: SensorState, context: object = None
    ) -> SensorState:
        existing = self._waiters.get(key)
        if existing is not None:
            return existing.state()
        kind = _kind_of(sensor)
        waiter = Waiter(key, sensor, kind, namespace, state, context=context)
        if kind == "time":
            waiter.detail = self._time_target(sensor, state.started_at)
        elif kind == "http":
            self._check_http(sensor)
        elif kind == "command":
            if self._commands is None:
                raise SensorSpecError("command sensors need a pod launcher; this controller has none")
        else:
            self._prepare_watch(waiter)
        self._waiters[key] = waiter
        self._metrics.active_by_type[kind].inc()
        if kind in ("kubernetes", "dagRun"):
            self._subscribe(waiter)
            self._schedule(waiter, waiter.deadline)
        elif kind == "time":
            target = waiter.detail
            assert isinstance(target, float)
            self._schedule(waiter, min(target, waiter.deadline))
        else:
            self._schedule(waiter, min(waiter.next_poke_at, waiter.deadline))
        return waiter.state()

    def remove(self, key: str) -> bool:
        waiter = self._waiters.pop(key, None)
        if waiter is None:
            return False
        self._release(waiter)
        return True

    def state(self, key: str) -> SensorState | None:
        waiter = self._waiters.get(key)
        return waiter.state() if waiter is not None else None

    def take_changed(self, limit: int) -> list[str]:
        """Up to ``limit`` waiting sensors whose state changed since they were last taken, in the
        order they first changed; each is forgotten until it changes again."""
        taken: list[str] = []
        for key in self._changed:
            if len(taken) >= limit:
                break
            taken.append(key)
        for key in taken:
            del self._changed[key]
        return taken

    def _release(self, waiter: Waiter) -> None:
        waiter.active = False
        self._changed.pop(waiter.key, None)
        self._timers.cancel(waiter)
        running = self._commands_running.pop(waiter.key, None)
        if running is not None and running is not asyncio.current_task():
            running.cancel()
        if waiter.subscription is not None and self._watches is not None:
            self._watches.unsubscribe(waiter.subscription)
            waiter.subscription = None
        self._metrics.active_by_type[waiter.kind].dec()

    def _time_target(self, sensor: CompiledSensor, started_at: float) -> float:
        spec = sensor.time
        assert spec is not None
        if (spec.delaySeconds is None) == (spec.at is None):
            raise SensorSpecError("a time sensor needs exactly one of 'delay' or 'at'")
        if spec.delaySeconds is not None:
            return started_at + spec.delaySeconds
        assert spec.at is not None
        try:
            moment = datetime.fromisoformat(spec.at)
        except ValueError as err:
            raise SensorSpecError(
                f"time sensor 'at' {spec.at!r} is not an ISO 8601 date-time (e.g. 2026-01-31T18:00:00Z)"
            ) from err
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()

    def _check_http(self, sensor: CompiledSensor) -> None:
        spec = sensor.http
        assert spec is not None
        try:
            check_url(spec.url)
            if spec.jsonPath is not None:
                jsonpath.parse(spec.jsonPath)
        except ValueError as err:
            raise SensorSpecError(f"HTTP sensor: {err}") from err
        if spec.jsonValue is not None and spec.jsonPath is None:
            raise SensorSpecError("HTTP sensor: jsonValue needs a jsonPath to compare against")
        if spec.headersFrom and self._secrets is None:
            raise SensorSpecError("HTTP sensor: headersFrom needs a Secret reader; this controller has none")

    def _prepare_watch(self, waiter: Waiter) -> None:
        if self._watches is None:
            raise SensorSpecError(f"{waiter.kind} sensors need a Kubernetes client; this engine has none")
        sensor = waiter.sensor
        try:
            if sensor.kubernetes is not None:
                spec = sensor.kubernetes
                waiter.detail = ObjectCondition.parse(
                    spec.kind, spec.condition, spec.jsonPath, spec.jsonValue
                )
            else:
                run = sensor.dagRun
                assert run is not None
                waiter.detail = RunCondition(run.dag, run.logicalDate, run.state, run.task)
        except (PredicateError, jsonpath.JsonPathError) as err:
            raise SensorSpecError(f"{waiter.kind} sensor: {err}") from err

    def _subscribe(self, waiter: Waiter) -> None:
        assert self._watches is not None
        listener = _WatchListener(self, waiter)
        if waiter.sensor.kubernetes is not None:
            spec = waiter.sensor.kubernetes
            key = WatchKey(spec.apiVersion, spec.kind, waiter.watched_namespace)
            waiter.subscription = self._watches.subscribe(key, spec.name, listener)
        else:
            key = WatchKey(API_VERSION, "DAGRun", waiter.watched_namespace)
            waiter.subscription = self._watches.subscribe(key, None, listener)

    def _schedule(self, waiter: Waiter, when: float) -> None:
        self._timers.schedule(waiter, when)
        if self._sleeping_until is None or when < self._sleeping_until:
            self._wakeup.set()

    async def _run(self) -> None:
        while True:
            now = self._clock.now()
            due = self._timers.pop_due(now, FIRE_BATCH)
            for waiter, when in due:
                self._metrics.lateness_by_type[waiter.kind].observe(max(0.0, now - when))
                try:
                    self._fire(waiter, now)
                except Exception:
                    log.exception("sensor timer handler failed", extra={"sensor": waiter.key})
            if len(due) == FIRE_BATCH:
                await asyncio.sleep(0)
                continue
            next_due = self._timers.next_due()
            self._wakeup.clear()
            self._sleeping_until = next_due
            await self._clock.wait(self._wakeup, None if next_due is None else max(0.0, next_due - now))
            self._sleeping_until = None

    def _fire(self, waiter: Waiter, now: float) -> None:
        if waiter.kind == "time":
            target = waiter.detail
            assert isinstance(target, float)
            if target <= waiter.deadline:
                self._finish(waiter, Result.SATISFIED, Reason.SATISFIED, "the time has come", target)
                return
        if now >= waiter.deadline:
            self._time_out(waiter)
        elif waiter.kind == "http":
            self._http.submit(waiter)
        elif waiter.kind == "command":
            task = asyncio.get_running_loop().create_task(self._run_command(waiter))
            self._commands_running[waiter.key] = task
            task.add_done_callback(functools.partial(self._command_ended, waiter.key))

    def _command_ended(self, key: str, task: asyncio.Task[None]) -> None:
        if self._commands_running.get(key) is task:
            del self._commands_running[key]

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _run_command(self, waiter: Waiter) -> None:
        command = waiter.sensor.command
        assert command is not None and self._commands is not None
        request = CommandRequest(
            key=waiter.key,
            namespace=waiter.namespace,
            attempt=waiter.attempts + 1,
            command=tuple(command.command),
            args=tuple(command.args or ()),
            context=waiter.context,
        )
        try:
            # A pod that never finishes must not outlive the sensor's timeout.
            async with asyncio.timeout(max(0.0, waiter.deadline - self._clock.now())):
                exit_code = await self._commands(request)
        except TimeoutError:
            poke = Poke.error(f"the command pod of poke {request.attempt} had not finished at the timeout")
        except CommandLaunchError as err:
            poke = Poke.permanent(str(err)) if err.permanent else Poke.error(str(err))
        except Exception as err:
            log.exception("command sensor launcher failed", extra={"sensor": waiter.key})
            poke = Poke.error(f"launching the command pod failed: {type(err).__name__}: {err}")
        else:
            poke = (
                Poke.satisfied(exit_code, "command exited 0")
                if exit_code == 0
                else Poke.not_yet(f"command exited {exit_code}")
            )
        self._on_poke(waiter, poke)

    def _on_object(self, waiter: Waiter, obj: KubeObject | None) -> None:
        if not waiter.active:
            return
        condition = waiter.detail
        if isinstance(condition, ObjectCondition):
            self._on_poke(waiter, condition.evaluate(obj))
            return
        assert isinstance(condition, RunCondition)
        if obj is None or not condition.selects(obj):
            return
        index: int | None = None
        if condition.task is not None:
            found, index = self._known_task_index(waiter, condition, obj)
            if not found:
                return
        self._on_poke(waiter, condition.evaluate(obj, index))

    def _known_task_index(
        self, waiter: Waiter, condition: RunCondition, run: KubeObject
    ) -> tuple[bool, int | None]:
        """The task's index in the run's definition, looked up once per definition version."""
        definition = str((run.get("status") or {}).get("definitionHash") or "")
        if not definition:
            return True, None
        key = (waiter.watched_namespace, condition.dag, definition)
        if key in self._task_indices:
            index = self._task_indices[key]
            if index is None:
                self._on_poke(
                    waiter,
                    Poke.permanent(f"DAG {condition.dag} has no task {condition.task} in {definition}"),
                )
                return False, None
            return True, index
        if self._task_index is None:
            self._on_poke(
                waiter, Poke.permanent("task-state sensors need a task index lookup; none configured")
            )
            return False, None
        if key not in self._looking_up:
            self._looking_up.add(key)
            self._spawn(self._look_up_task_index(waiter, condition, key, run))
        return False, None

    async def _look_up_task_index(
        self, waiter: Waiter, condition: RunCondition, key: tuple[str, str, str], run: KubeObject
    ) -> None:
        assert self._task_index is not None and condition.task is not None
        try:
            indices: dict[str, int] = await self._task_index(*key)
        except Exception as err:
            self._on_poke(waiter, Poke.error(f"cannot read the definition {key[2]} of DAG {key[1]}: {err}"))
            return
        finally:
            self._looking_up.discard(key)
        self._task_indices[key] = indices.get(condition.task)
        for other in list(self._waiters.values()):
            if other.subscription is not None and isinstance(other.detail, RunCondition):
                latest = other.subscription.watch.objects.get(_name_of(run))
                if latest is not None:
                    self._on_object(other, latest)

    def _on_poke(self, waiter: Waiter, poke: Poke) -> None:
        if not waiter.active:
            return
        self._metrics.pokes_by_type[waiter.kind, poke.kind.value].inc()
        waiter.attempts += 1
        waiter.last = poke.detail
        if poke.kind is PokeKind.SATISFIED:
            self._finish(waiter, Result.SATISFIED, Reason.SATISFIED, poke.detail or "satisfied", poke.value)
            return
        if poke.kind is PokeKind.PERMANENT_ERROR:
            failed = Result.SKIPPED if waiter.sensor.softFail else Result.FAILED
            self._finish(waiter, failed, Reason.PERMANENT_ERROR, poke.detail)
            return
        waiter.errors = waiter.errors + 1 if poke.kind is PokeKind.ERROR else 0
        self._changed[waiter.key] = None
        if waiter.kind in ("kubernetes", "dagRun"):
            return
        now = self._clock.now()
        if now >= waiter.deadline:
            self._time_out(waiter)
            return
        growth = waiter.sensor.pokeBackoff
        delay = next_poke_delay(
            waiter.sensor.pokeIntervalSeconds,
            waiter.sensor.maxPokeIntervalSeconds,
            attempts=waiter.attempts,
            errors=waiter.errors,
            not_yet_factor=self.options.not_yet_backoff if growth is None else growth,
        )
        waiter.next_poke_at = now + delay
        self._schedule(waiter, min(waiter.next_poke_at, waiter.deadline))

    def _time_out(self, waiter: Waiter) -> None:
        result = Result.SKIPPED if waiter.sensor.softFail else Result.FAILED
        message = f"sensor timed out after {waiter.sensor.timeoutSeconds}s and {waiter.attempts} pokes"
        if waiter.last:
            message += f"; last: {waiter.last}"
        self._finish(waiter, result, Reason.TIMED_OUT, message)

    def _finish(
        self, waiter: Waiter, result: Result, reason: Reason, message: str, value: object = None
    ) -> None:
        if self._waiters.get(waiter.key) is waiter:
            del self._waiters[waiter.key]
        self._release(waiter)
        outcome = Outcome(result, reason, message, value, waiter.attempts)
        try:
            self._on_done(waiter.key, outcome)
        except Exception:
            log.exception("sensor completion handler failed", extra={"sensor": waiter.key})


def _name_of(obj: KubeObject) -> str:
    metadata = obj.get("metadata")
    return str(metadata.get("name", "")) if isinstance(metadata, dict) else ""


def _kind_of(sensor: CompiledSensor) -> str:
    kinds = [kind for kind in ("time", "http", "kubernetes", "dagRun", "command") if getattr(sensor, kind)]
    if len(kinds) != 1:
        raise SensorSpecError(f"a sensor needs exactly one kind; found {len(kinds)}")
    return kinds[0]

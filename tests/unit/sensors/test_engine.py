from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry

from leoflow.controller.sensors import (
    CommandLaunchError,
    CommandRequest,
    Reason,
    Result,
    SensorEngine,
    SensorMetrics,
    SensorSpecError,
    SensorState,
)
from tests.unit.sensors.engine_fixtures import Recorder, build, sample, sensor
from tests.unit.sensors.manual_clock import START, ManualClock, settle, until


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def done() -> Recorder:
    return Recorder()


@pytest.fixture
async def engine(clock: ManualClock, done: Recorder) -> AsyncIterator[SensorEngine]:
    engine, _ = build(clock, done)
    await engine.start()
    yield engine
    await engine.close()


async def test_time_sensor_fires_at_its_delay_and_not_before(
    engine: SensorEngine, clock: ManualClock, done: Recorder
) -> None:
    engine.add("run/a", sensor(time={"delaySeconds": 60}), "ns")
    clock.advance(59)
    await settle()
    assert done.outcomes == {}
    clock.advance(1)
    await until(lambda: "run/a" in done.outcomes, "the time sensor fired")
    assert done.outcomes["run/a"].result is Result.SATISFIED
    assert "run/a" not in engine


async def test_time_sensors_fire_in_order_of_their_moments(
    engine: SensorEngine, clock: ManualClock, done: Recorder
) -> None:
    engine.add("late", sensor(time={"delaySeconds": 30}), "ns")
    engine.add("at", sensor(time={"at": "2023-11-14T22:13:40Z"}), "ns")
    engine.add("early", sensor(time={"delaySeconds": 10}), "ns")
    clock.advance(100)
    await until(lambda: len(done.order) == 3, "all three fired")
    assert done.order == ["early", "at", "late"]


async def test_wake_up_lateness_is_measured_from_the_due_time(clock: ManualClock, done: Recorder) -> None:
    engine, registry = build(clock, done)
    await engine.start()
    engine.add("a", sensor(time={"delaySeconds": 10}), "ns")
    clock.advance(12.5)
    await until(lambda: "a" in done.outcomes, "fired")
    assert sample(registry, "leoflow_sensor_wakeup_lateness_seconds_sum", type="time") == pytest.approx(2.5)
    assert sample(registry, "leoflow_sensor_wakeup_lateness_seconds_count", type="time") == 1
    await engine.close()


async def test_active_gauge_follows_sensors_by_type(clock: ManualClock, done: Recorder) -> None:
    engine, registry = build(clock, done)
    await engine.start()
    for i in range(3):
        engine.add(f"t{i}", sensor(time={"delaySeconds": 10 + i}), "ns")
    assert sample(registry, "leoflow_sensors_active", type="time") == 3
    engine.remove("t0")
    clock.advance(11)
    await until(lambda: "t1" in done.outcomes, "t1 fired")
    assert sample(registry, "leoflow_sensors_active", type="time") == 1
    await engine.close()


async def test_removed_sensor_never_reports(engine: SensorEngine, clock: ManualClock, done: Recorder) -> None:
    engine.add("gone", sensor(time={"delaySeconds": 5}), "ns")
    assert engine.remove("gone")
    assert not engine.remove("gone")
    clock.advance(10)
    await settle()
    assert done.calls == 0


async def test_adding_a_waiting_key_again_keeps_the_running_sensor(
    engine: SensorEngine, clock: ManualClock
) -> None:
    first = engine.add("k", sensor(time={"delaySeconds": 5}), "ns")
    clock.advance(3)
    assert engine.add("k", sensor(time={"delaySeconds": 5}), "ns") == first
    assert len(engine) == 1


async def test_time_sensor_whose_moment_passed_while_down_fires_at_once(
    engine: SensorEngine, clock: ManualClock, done: Recorder
) -> None:
    stored = SensorState(started_at=START - 3600, next_poke_at=START - 3600)
    engine.resume("r", sensor(time={"delaySeconds": 600}), "ns", stored)
    await until(lambda: "r" in done.outcomes, "resumed sensor fired")
    assert done.outcomes["r"].result is Result.SATISFIED


async def test_time_sensor_past_its_timeout_fails(
    engine: SensorEngine, clock: ManualClock, done: Recorder
) -> None:
    engine.add("t", sensor(time={"delaySeconds": 600}, timeoutSeconds=60), "ns")
    clock.advance(60)
    await until(lambda: "t" in done.outcomes, "timed out")
    assert (done.outcomes["t"].result, done.outcomes["t"].reason) == (Result.FAILED, Reason.TIMED_OUT)


async def test_soft_fail_skips_instead_of_failing(
    engine: SensorEngine, clock: ManualClock, done: Recorder
) -> None:
    engine.add("t", sensor(time={"delaySeconds": 600}, timeoutSeconds=60, softFail=True), "ns")
    clock.advance(61)
    await until(lambda: "t" in done.outcomes, "timed out")
    assert (done.outcomes["t"].result, done.outcomes["t"].reason) == (Result.SKIPPED, Reason.TIMED_OUT)


class FakeLauncher:
    """Answers each command poke from a script of exit codes or exceptions."""

    def __init__(self, *answers: int | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[CommandRequest] = []

    async def __call__(self, request: CommandRequest) -> int:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


async def test_command_sensor_pokes_until_exit_zero(clock: ManualClock, done: Recorder) -> None:
    launcher = FakeLauncher(1, 3, 0)
    engine, registry = build(clock, done, commands=launcher)
    await engine.start()
    engine.add("c", sensor(command={"command": ["check"], "args": ["x"]}, pokeIntervalSeconds=30), "team")
    for attempt in (1, 2):
        await until(lambda a=attempt: len(launcher.requests) == a, f"poke {attempt}")  # type: ignore[misc]
        await until(lambda a=attempt: engine.state("c").attempts == a, "result recorded")  # type: ignore[misc,union-attr]
        assert engine.state("c").next_poke_at == clock.now() + 30  # type: ignore[union-attr]
        clock.advance(30)
    await until(lambda: "c" in done.outcomes, "satisfied")
    assert [r.attempt for r in launcher.requests] == [1, 2, 3]
    assert launcher.requests[0] == CommandRequest("c", "team", 1, ("check",), ("x",))
    assert done.outcomes["c"].result is Result.SATISFIED
    assert sample(registry, "leoflow_sensor_pokes_total", type="command", result="not_yet") == 2
    await engine.close()


async def test_launch_errors_back_off_exponentially(clock: ManualClock, done: Recorder) -> None:
    launcher = FakeLauncher(CommandLaunchError("quota"), CommandLaunchError("quota"), RuntimeError("x"), 0)
    engine, _ = build(clock, done, commands=launcher)
    await engine.start()
    engine.add("c", sensor(command={"command": ["check"]}, pokeIntervalSeconds=10), "ns")
    waits = []
    for errors in (1, 2, 3):
        await until(lambda e=errors: engine.state("c").errors == e, f"error {errors}")  # type: ignore[misc,union-attr]
        wait = engine.state("c").next_poke_at - clock.now()  # type: ignore[union-attr]
        waits.append(wait)
        clock.advance(wait)
    await until(lambda: "c" in done.outcomes, "satisfied after errors")
    assert waits == [20, 40, 80]
    await engine.close()


async def test_permanent_launch_error_fails_at_once(clock: ManualClock, done: Recorder) -> None:
    launcher = FakeLauncher(CommandLaunchError("pod spec rejected", permanent=True))
    engine, _ = build(clock, done, commands=launcher)
    await engine.start()
    engine.add("c", sensor(command={"command": ["check"]}), "ns")
    await until(lambda: "c" in done.outcomes, "failed")
    outcome = done.outcomes["c"]
    assert (outcome.result, outcome.reason, outcome.message) == (
        Result.FAILED,
        Reason.PERMANENT_ERROR,
        "pod spec rejected",
    )
    await engine.close()


async def test_command_sensor_times_out_counting_from_the_original_start(
    clock: ManualClock, done: Recorder
) -> None:
    launcher = FakeLauncher(1, 1, 1)
    engine, _ = build(clock, done, commands=launcher)
    await engine.start()
    stored = SensorState(started_at=START - 100, next_poke_at=START + 5, attempts=4, errors=0)
    engine.resume(
        "c", sensor(command={"command": ["check"]}, pokeIntervalSeconds=30, timeoutSeconds=120), "ns", stored
    )
    await settle()
    assert launcher.requests == [], "the stored next poke time is kept"
    clock.advance(5)
    await until(lambda: len(launcher.requests) == 1, "first poke after resume")
    assert launcher.requests[0].attempt == 5
    await until(lambda: engine.state("c").attempts == 5, "recorded")  # type: ignore[union-attr]
    clock.advance(15)
    await until(lambda: "c" in done.outcomes, "timed out 120 s after the original start")
    assert done.outcomes["c"].reason is Reason.TIMED_OUT
    assert "command exited 1" in done.outcomes["c"].message
    await engine.close()


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"time": {}}, "exactly one of 'delay' or 'at'"),
        ({"time": {"at": "tomorrow"}}, "ISO 8601"),
        ({"http": {"url": "ftp://x/y"}}, "http:// or https://"),
        ({"http": {"url": "http://x/", "jsonPath": "a[b"}}, "JSON path"),
        ({"command": {"command": ["x"]}}, "pod launcher"),
        ({"kubernetes": {"apiVersion": "v1", "kind": "ConfigMap", "name": "c"}}, "Kubernetes client"),
    ],
)
async def test_unusable_sensors_are_refused_with_a_reason(
    engine: SensorEngine, fields: dict[str, object], complaint: str
) -> None:
    with pytest.raises(SensorSpecError, match=complaint):
        engine.add("bad", sensor(**fields), "ns")
    assert len(engine) == 0


class HangingLauncher:
    """A command pod that never finishes; records whether its poke was cancelled."""

    def __init__(self) -> None:
        self.started = 0
        self.cancelled = 0

    async def __call__(self, request: CommandRequest) -> int:
        self.started += 1
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return 0


async def test_command_pod_that_never_finishes_times_out(done: Recorder) -> None:
    launcher = HangingLauncher()
    registry = CollectorRegistry()
    engine = SensorEngine(done, metrics=SensorMetrics(registry), commands=launcher)
    await engine.start()
    engine.add("c", sensor(command={"command": ["check"]}, timeoutSeconds=1), "ns")
    await until(lambda: "c" in done.outcomes, "timed out")
    assert done.outcomes["c"].reason is Reason.TIMED_OUT
    assert "had not finished at the timeout" in done.outcomes["c"].message
    await engine.close()


async def test_removing_a_command_sensor_cancels_its_running_poke(clock: ManualClock, done: Recorder) -> None:
    launcher = HangingLauncher()
    engine, _ = build(clock, done, commands=launcher)
    await engine.start()
    engine.add("c", sensor(command={"command": ["check"]}), "ns")
    await until(lambda: launcher.started == 1, "poke started")
    engine.remove("c")
    await until(lambda: launcher.cancelled == 1, "poke cancelled")
    assert done.calls == 0
    await engine.close()


async def test_changed_sensors_are_taken_oldest_first_and_once(clock: ManualClock, done: Recorder) -> None:
    launcher = FakeLauncher(1, 1, 1, 1, 1)
    engine, _ = build(clock, done, commands=launcher)
    await engine.start()
    for key in ("a", "b", "c"):
        engine.add(key, sensor(command={"command": ["check"]}, pokeIntervalSeconds=30), "ns")
    engine.add("t", sensor(time={"delaySeconds": 3600}), "ns")
    await until(lambda: all(engine.state(k).attempts == 1 for k in "abc"), "one poke each")  # type: ignore[union-attr]
    engine.remove("c")
    assert engine.take_changed(1) == ["a"]
    assert engine.take_changed(10) == ["b"], "a removed sensor and a time sensor never poked"
    assert engine.take_changed(10) == [], "taken until they change again"
    clock.advance(30)
    await until(lambda: engine.state("a").attempts == 2, "second poke")  # type: ignore[union-attr]
    await until(lambda: engine.state("b").attempts == 2, "second poke")  # type: ignore[union-attr]
    assert sorted(engine.take_changed(10)) == ["a", "b"]
    await engine.close()

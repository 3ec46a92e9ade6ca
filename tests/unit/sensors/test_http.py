"""HTTP sensors against a local aiohttp server (real sockets, manual sensor clock)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web

from leoflow.controller.sensors import EngineOptions, HttpOptions, Reason, Result, SensorEngine, SensorState
from tests.unit.sensors.engine_fixtures import Recorder, build, sample, sensor
from tests.unit.sensors.manual_clock import ManualClock, until


class Target:
    """A test server whose answer the test changes, and which counts concurrent requests."""

    def __init__(self) -> None:
        self.status = 200
        self.body: object = {}
        self.delay = 0.0
        self.hang = False
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.hang:
                await asyncio.Event().wait()
            if self.delay:
                await asyncio.sleep(self.delay)
            return web.json_response(self.body, status=self.status)
        finally:
            self.in_flight -= 1


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    server = Target()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.url = f"http://127.0.0.1:{port}"
    yield server
    await runner.cleanup()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def done() -> Recorder:
    return Recorder()


EngineFactory = Callable[..., SensorEngine]


@pytest.fixture
async def make_engine(clock: ManualClock, done: Recorder) -> AsyncIterator[EngineFactory]:
    engines: list[SensorEngine] = []

    def make(**http: object) -> SensorEngine:
        options = EngineOptions(http=HttpOptions(**http))  # type: ignore[arg-type]
        engine, _ = build(clock, done, options)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.close()


async def test_expected_status_satisfies(make_engine: EngineFactory, target: Target, done: Recorder) -> None:
    engine = make_engine()
    await engine.start()
    target.status = 204
    engine.add("h", sensor(http={"url": f"{target.url}/ready", "expectStatus": [200, 204]}), "ns")
    await until(lambda: "h" in done.outcomes, "satisfied")
    assert done.outcomes["h"].result is Result.SATISFIED
    assert done.outcomes["h"].value == 204


async def test_other_status_is_not_yet_until_it_changes(
    make_engine: EngineFactory, target: Target, done: Recorder, clock: ManualClock
) -> None:
    engine = make_engine()
    await engine.start()
    target.status = 404
    engine.add("h", sensor(http={"url": f"{target.url}/x"}, pokeIntervalSeconds=5), "ns")
    await until(lambda: engine.state("h").attempts == 1, "first poke")  # type: ignore[union-attr]
    assert engine.state("h").errors == 0  # type: ignore[union-attr]
    target.status = 200
    clock.advance(5)
    await until(lambda: "h" in done.outcomes, "satisfied on the second poke")
    assert target.requests == 2


async def test_json_path_must_match_the_expected_value(
    make_engine: EngineFactory, target: Target, done: Recorder, clock: ManualClock
) -> None:
    engine = make_engine()
    await engine.start()
    target.body = {"jobs": [{"state": "running", "count": 1}]}
    spec = {"url": f"{target.url}/status", "jsonPath": "jobs[0].state", "jsonValue": "done"}
    engine.add("h", sensor(http=spec, pokeIntervalSeconds=5), "ns")
    await until(lambda: engine.state("h").attempts == 1, "first poke")  # type: ignore[union-attr]
    target.body = {"jobs": [{"state": "done"}]}
    clock.advance(5)
    await until(lambda: "h" in done.outcomes, "satisfied")
    assert done.outcomes["h"].value == "done"


async def test_server_errors_back_off(
    make_engine: EngineFactory, target: Target, clock: ManualClock, done: Recorder
) -> None:
    engine = make_engine()
    await engine.start()
    target.status = 503
    engine.add("h", sensor(http={"url": target.url}, pokeIntervalSeconds=5, maxPokeIntervalSeconds=15), "ns")
    waits = []
    for errors in (1, 2, 3):
        await until(lambda e=errors: engine.state("h").errors == e, f"error {errors}")  # type: ignore[misc,union-attr]
        wait = engine.state("h").next_poke_at - clock.now()  # type: ignore[union-attr]
        waits.append(wait)
        clock.advance(wait)
    assert waits == [10, 15, 15]


async def test_target_that_never_answers_times_out(
    make_engine: EngineFactory, target: Target, clock: ManualClock, done: Recorder
) -> None:
    engine = make_engine(request_timeout=0.2)
    await engine.start()
    target.hang = True
    engine.add("h", sensor(http={"url": target.url}, pokeIntervalSeconds=5, timeoutSeconds=60), "ns")
    await until(lambda: engine.state("h").errors == 1, "the request timed out")  # type: ignore[union-attr]
    clock.advance(60)
    await until(lambda: "h" in done.outcomes, "the sensor timed out")
    outcome = done.outcomes["h"]
    assert (outcome.result, outcome.reason) == (Result.FAILED, Reason.TIMED_OUT)
    assert "timed out after 0.2s" in outcome.message


async def test_unreachable_host_soft_fails_to_skipped(
    make_engine: EngineFactory, clock: ManualClock, done: Recorder
) -> None:
    engine = make_engine()
    await engine.start()
    engine.add("h", sensor(http={"url": "http://127.0.0.1:9/"}, timeoutSeconds=10, softFail=True), "ns")
    await until(lambda: engine.state("h").errors == 1, "connection refused")  # type: ignore[union-attr]
    clock.advance(10)
    await until(lambda: "h" in done.outcomes, "skipped")
    assert done.outcomes["h"].result is Result.SKIPPED


async def test_a_thousand_sensors_on_one_slow_host_respect_the_per_host_limit(
    clock: ManualClock, target: Target, done: Recorder
) -> None:
    engine, registry = build(clock, done, EngineOptions(http=HttpOptions(per_host_limit=6)))
    await engine.start()
    target.delay = 0.01
    for i in range(1000):
        engine.add(f"h{i}", sensor(http={"url": f"{target.url}/slow/{i}"}), "ns")
    await until(
        lambda: sample(registry, "leoflow_sensor_http_queued") > 900, "the rest wait in the host's lane"
    )
    await until(lambda: len(done.outcomes) == 1000, "all thousand satisfied", limit=60)
    assert sample(registry, "leoflow_sensor_http_queued") == 0
    assert target.requests == 1000
    assert target.max_in_flight == 6, "the limit was reached and never exceeded"
    assert sample(registry, "leoflow_sensor_pokes_total", type="http", result="satisfied") == 1000
    await engine.close()


async def test_resumed_http_sensor_keeps_its_attempts_and_next_poke(
    clock: ManualClock, target: Target, done: Recorder
) -> None:
    first, _ = build(clock, done)
    await first.start()
    target.status = 404
    spec = sensor(http={"url": target.url}, pokeIntervalSeconds=30, timeoutSeconds=100)
    first.add("h", spec, "ns")
    await until(lambda: first.state("h").attempts == 1, "first poke")  # type: ignore[union-attr]
    stored = first.state("h").encode()  # type: ignore[union-attr]
    await first.close()

    clock.advance(10)
    second, _ = build(clock, done)
    await second.start()
    second.resume("h", spec, "ns", SensorState.decode(stored))
    clock.advance(19)
    await asyncio.sleep(0.05)
    assert target.requests == 1, "no poke before the stored next poke time"
    clock.advance(1)
    await until(lambda: target.requests == 2, "second poke at the stored time")
    await until(lambda: second.state("h").attempts == 2, "recorded")  # type: ignore[union-attr]
    clock.advance(70)
    await until(lambda: "h" in done.outcomes, "timed out 100 s after the first start")
    assert done.outcomes["h"].reason is Reason.TIMED_OUT
    await second.close()

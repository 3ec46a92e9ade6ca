"""HTTP sensors against a local aiohttp server (real sockets, manual sensor clock)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from leoflow.controller.sensors import (
    EngineOptions,
    HttpOptions,
    Reason,
    Result,
    SecretUnavailable,
    SensorEngine,
    SensorSpecError,
    SensorState,
)
from tests.unit.sensors.engine_fixtures import Recorder, build, sample, sensor
from tests.unit.sensors.http_target import Target, serve
from tests.unit.sensors.manual_clock import ManualClock, until


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    async with serve() as server:
        yield server


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


class Secrets:
    """A secret lookup holding ``(namespace, name) -> {key: value}``; what was asked is kept."""

    def __init__(self, data: dict[tuple[str, str], dict[str, str]]) -> None:
        self.data = data
        self.asked: list[tuple[str, str, str]] = []

    async def __call__(self, namespace: str, name: str, key: str) -> str:
        self.asked.append((namespace, name, key))
        values = self.data.get((namespace, name))
        if values is None:
            raise SecretUnavailable(f"Secret {namespace}/{name} does not exist", permanent=True)
        return values[key]


async def test_headers_and_secret_headers_go_with_every_poke(
    clock: ManualClock, target: Target, done: Recorder
) -> None:
    secrets = Secrets({("team", "api"): {"token": "s3cret"}})
    engine, _ = build(clock, done, secrets=secrets)
    await engine.start()
    spec = {
        "url": target.url,
        "headers": {"X-Team": "data"},
        "headersFrom": {"Authorization": {"secret": "api", "key": "token", "prefix": "Bearer "}},
    }
    engine.add("h", sensor(http=spec), "team")
    await until(lambda: "h" in done.outcomes, "satisfied")
    assert target.headers[0]["X-Team"] == "data"
    assert target.headers[0]["Authorization"] == "Bearer s3cret"
    assert secrets.asked == [("team", "api", "token")], "read from the sensor's namespace"
    await engine.close()


async def test_a_missing_secret_fails_the_sensor_without_a_request(
    clock: ManualClock, target: Target, done: Recorder
) -> None:
    engine, _ = build(clock, done, secrets=Secrets({}))
    await engine.start()
    spec = {"url": target.url, "headersFrom": {"X-Key": {"secret": "gone", "key": "k"}}}
    engine.add("h", sensor(http=spec), "team")
    await until(lambda: "h" in done.outcomes, "failed")
    outcome = done.outcomes["h"]
    assert (outcome.result, outcome.reason) == (Result.FAILED, Reason.PERMANENT_ERROR)
    assert "Secret team/gone does not exist" in outcome.message
    assert target.requests == 0


async def test_secret_headers_need_a_secret_reader(clock: ManualClock, done: Recorder) -> None:
    engine, _ = build(clock, done)
    spec = {"url": "http://127.0.0.1/", "headersFrom": {"X-Key": {"secret": "s", "key": "k"}}}
    with pytest.raises(SensorSpecError, match="headersFrom needs a Secret reader"):
        engine.add("h", sensor(http=spec), "team")


async def test_the_sensor_request_timeout_overrides_the_engine_default(
    make_engine: EngineFactory, target: Target, done: Recorder
) -> None:
    engine = make_engine(request_timeout=30)
    await engine.start()
    target.hang = True
    engine.add("h", sensor(http={"url": target.url, "requestTimeoutSeconds": 1}), "ns")
    await until(lambda: engine.state("h").errors == 1, "the request timed out", limit=5)  # type: ignore[union-attr]
    assert "h" not in done.outcomes, "a timed-out request is an error, not the end"


async def test_poke_backoff_stretches_each_not_yet_up_to_the_cap(
    make_engine: EngineFactory, target: Target, clock: ManualClock
) -> None:
    engine = make_engine()
    await engine.start()
    target.status = 404
    spec = sensor(http={"url": target.url}, pokeIntervalSeconds=2, maxPokeIntervalSeconds=10, pokeBackoff=2)
    engine.add("h", spec, "ns")
    waits = []
    for attempt in (1, 2, 3, 4):
        await until(lambda a=attempt: engine.state("h").attempts == a, f"poke {attempt}")  # type: ignore[misc,union-attr]
        wait = engine.state("h").next_poke_at - clock.now()  # type: ignore[union-attr]
        waits.append(wait)
        clock.advance(wait)
    assert waits == [2, 4, 8, 10]

"""How a sensor task ends when its condition never comes: timeout, soft-fail, a silent target, and
a thousand sensors on one slow host, each through a DAGRun and the real controller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from leoflow.controller.sensors import EngineOptions, HttpOptions
from leoflow.spec.compiler import compile_text
from tests.integration.controller.conftest import Harness, dag_yaml, run_status
from tests.unit.sensors.http_target import Target, serve

pytestmark = pytest.mark.cluster


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    async with serve() as server:
        yield server


def detail(obj: dict[str, Any], task: int) -> dict[str, Any]:
    found: dict[str, Any] = run_status(obj).get("tasks", {}).get(str(task), {})
    return found


async def test_sensor_timeout_fails_the_task_and_its_downstream(harness: Harness, target: Target) -> None:
    target.status = 404
    tasks = (
        f"  wait: {{sensor: {{http: {{url: '{target.url}/never'}}, pokeInterval: 1s, timeout: 3s}}}}\n"
        "  work: {after: [wait], command: [work]}\n"
    )
    await harness.apply_dag(dag_yaml("times-out", tasks))
    await harness.start()
    await harness.create_run("r1", "times-out")
    done = await harness.wait_phase("r1", "Failed")
    assert run_status(done)["taskStates"] == "FU"
    wait = detail(done, 0)
    assert wait["reason"] == "SensorFailed"
    assert "sensor timed out after 3s" in wait["message"]
    assert "answered HTTP 404" in wait["message"], "the last poke's answer is kept"
    assert await harness.pods("r1") == [], "no pod ever ran"


async def test_soft_fail_skips_the_task_and_downstream_follows_trigger_rules(
    harness: Harness, target: Target
) -> None:
    target.status = 503
    tasks = (
        "  wait:\n"
        f"    sensor: {{http: {{url: '{target.url}/down'}}, pokeInterval: 1s, timeout: 3s, softFail: true}}\n"
        "  needs-it: {after: [wait], command: [x]}\n"
        "  cleanup: {after: [wait], trigger: all_done, command: [x]}\n"
        "  unless-failed: {after: [wait], trigger: none_failed, command: [x]}\n"
    )
    text = dag_yaml("soft", tasks)
    await harness.apply_dag(text)
    await harness.start()
    await harness.create_run("r1", "soft")
    done = await harness.wait_phase("r1", "Succeeded")
    index = compile_text(text).spec.task_index()
    states = {name: run_status(done)["taskStates"][i] for name, i in index.items()}
    assert states == {"wait": "K", "needs-it": "K", "cleanup": "S", "unless-failed": "S"}
    assert "answered HTTP 503" in detail(done, index["wait"])["message"]


async def test_a_target_that_never_answers_times_out_per_request_then_per_sensor(
    harness: Harness, target: Target
) -> None:
    target.hang = True
    tasks = (
        "  wait:\n"
        "    sensor:\n"
        f"      http: {{url: '{target.url}/silent', requestTimeout: 1s}}\n"
        "      pokeInterval: 1s\n"
        "      timeout: 5s\n"
    )
    await harness.apply_dag(dag_yaml("silent", tasks))
    await harness.start()
    await harness.create_run("r1", "silent")
    done = await harness.wait_phase("r1", "Failed")
    message = detail(done, 0)["message"]
    assert "sensor timed out after 5s" in message
    assert "timed out after 1s" in message, "each request gave up after its own timeout"
    assert target.requests >= 2, "a timed-out request is retried, not the end of the sensor"


async def test_a_thousand_sensor_tasks_on_one_slow_host_respect_the_per_host_limit(
    harness: Harness, target: Target
) -> None:
    target.delay = 0.05
    count, limit = 1000, 4
    tasks = "".join(f"  s{i}: {{sensor: {{http: {{url: '{target.url}/slow/{i}'}}}}}}\n" for i in range(count))
    await harness.apply_dag(dag_yaml("slow-host", tasks))
    await harness.start(controller={"sensors": EngineOptions(http=HttpOptions(per_host_limit=limit))})
    await harness.create_run("r1", "slow-host")
    done = await harness.wait_phase("r1", "Succeeded", within=180)
    assert run_status(done)["taskStates"] == "S" * count
    assert target.requests == count
    assert target.max_in_flight == limit, "the limit was reached and never exceeded"

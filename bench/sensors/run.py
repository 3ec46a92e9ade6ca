"""Sensor engine scale: how many concurrent sensors one controller process carries.

Steps from 100,000 to 1,000,000 concurrent sensors in this one process:
10,000 HTTP sensors polling a local aiohttp server (its own process, every answer "not yet") every
5 s, the rest time sensors. Each step measures, over a window:

- RSS (goal: at most 300 MB at 100,000 sensors);
- CPU of this process with the HTTP sensors polling (2,000 requests/s), and idle CPU with only
  waiting time sensors (goal: at most 10% of a core);
- wake-up lateness of time sensors set to fire during the window (goal: p99 at most 1 s).

It stops at the first step that breaks the RSS or lateness goal (or after 1,000,000) and writes
bench/results/sensors.json. Specs are shared between sensors as the controller shares one parsed
definition between the runs of a DAG. About two to three minutes.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import percentile, write_result
from prometheus_client import CollectorRegistry

from leoflow.controller.sensors import (
    EngineOptions,
    HttpOptions,
    Outcome,
    Result,
    SensorEngine,
    SensorMetrics,
    SensorState,
)
from leoflow.spec.resources import CompiledSensor

STEPS = (100_000, 200_000, 300_000, 400_000, 500_000, 600_000, 700_000, 850_000, 1_000_000)
HTTP_SENSORS = 10_000
HTTP_POKE_SECONDS = 5
FIRING_PER_STEP = 20_000
FIRING_SPREAD_SECONDS = 10
LOADED_WINDOW_SECONDS = FIRING_SPREAD_SECONDS + 4
IDLE_WINDOW_SECONDS = 6
RSS_GOAL_MB = 300
CPU_GOAL_PCT = 10
LATENESS_GOAL_S = 1.0
ADD_BATCH = 5_000


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of another process, from /proc/<pid>/stat (fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Firing:
    """Records how late each time sensor of the current window fired."""

    def __init__(self) -> None:
        self.lateness: list[float] = []
        self.unexpected = 0

    def __call__(self, key: str, outcome: Outcome) -> None:
        if outcome.result is Result.SATISFIED and isinstance(outcome.value, float):
            self.lateness.append(time.time() - outcome.value)
        else:
            self.unexpected += 1


def start_target() -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("http_target.py"))], stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None
    port = server.stdout.readline().strip()
    if not port.isdigit():
        server.kill()
        raise RuntimeError("the HTTP target did not start")
    return server, f"http://127.0.0.1:{port}"


async def add_in_batches(engine: SensorEngine, items: list[tuple[str, CompiledSensor]]) -> None:
    for start in range(0, len(items), ADD_BATCH):
        for key, spec in items[start : start + ADD_BATCH]:
            engine.add(key, spec, "bench")
        await asyncio.sleep(0)


async def measure_cpu(seconds: float, server: int) -> tuple[float, float]:
    """CPU % of a core used by this process and by the target server over ``seconds``."""
    wall, cpu, server_cpu = time.monotonic(), cpu_seconds(), process_cpu_seconds(server)
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - wall
    return (
        100 * (cpu_seconds() - cpu) / elapsed,
        100 * (process_cpu_seconds(server) - server_cpu) / elapsed,
    )


def http_pokes(registry: CollectorRegistry) -> float:
    return sum(
        registry.get_sample_value("leoflow_sensor_pokes_total", {"type": "http", "result": r}) or 0.0
        for r in ("satisfied", "not_yet", "error", "permanent_error")
    )


async def step(
    engine: SensorEngine,
    registry: CollectorRegistry,
    firing: Firing,
    *,
    target: str,
    server: int,
    total: int,
    waiting: int,
) -> dict[str, Any]:
    long_wait = CompiledSensor.model_validate({"time": {"delaySeconds": 7200}})
    add_started = time.monotonic()
    await add_in_batches(engine, [(f"wait/{i}", long_wait) for i in range(waiting, total - HTTP_SENSORS)])
    add_seconds = time.monotonic() - add_started

    now = time.time()
    http_specs = [
        CompiledSensor.model_validate(
            {"http": {"url": f"{target}/poll/{i}"}, "pokeIntervalSeconds": HTTP_POKE_SECONDS}
        )
        for i in range(HTTP_SENSORS)
    ]
    for i, spec in enumerate(http_specs):
        first_poke = now + HTTP_POKE_SECONDS * i / HTTP_SENSORS
        engine.resume(f"http/{i}", spec, "bench", SensorState(now, first_poke))
    firing_specs = [
        CompiledSensor.model_validate({"time": {"delaySeconds": 2 + s}}) for s in range(FIRING_SPREAD_SECONDS)
    ]
    firing.lateness.clear()
    await add_in_batches(
        engine,
        [(f"fire/{total}/{i}", firing_specs[i % FIRING_SPREAD_SECONDS]) for i in range(FIRING_PER_STEP)],
    )
    concurrent = len(engine)
    rss_loaded = rss_mb()
    pokes_before = http_pokes(registry)
    cpu_loaded, server_cpu = await measure_cpu(LOADED_WINDOW_SECONDS, server)
    poke_rate = (http_pokes(registry) - pokes_before) / LOADED_WINDOW_SECONDS
    http_queued = registry.get_sample_value("leoflow_sensor_http_queued") or 0.0
    fired = len(firing.lateness)
    lateness = list(firing.lateness)

    for i in range(HTTP_SENSORS):
        engine.remove(f"http/{i}")
    await asyncio.sleep(1)
    idle_sensors = len(engine)
    cpu_idle, _ = await measure_cpu(IDLE_WINDOW_SECONDS, server)
    return {
        "load_average_1m": round(os.getloadavg()[0], 2),
        "concurrent_sensors": concurrent,
        "time_sensors": concurrent - HTTP_SENSORS,
        "http_sensors": HTTP_SENSORS,
        "add_seconds": round(add_seconds, 2),
        "rss_mb": round(rss_loaded, 1),
        "cpu_pct_with_http_polling": round(cpu_loaded, 1),
        "http_pokes_per_s": round(poke_rate, 1),
        "http_target_server_cpu_pct": round(server_cpu, 1),
        "http_pokes_queued_at_window_end": int(http_queued),
        "idle_sensors": idle_sensors,
        "idle_cpu_pct": round(cpu_idle, 1),
        "time_sensors_fired_in_window": fired,
        "lateness_p50_ms": round(1000 * percentile(lateness, 50), 1),
        "lateness_p99_ms": round(1000 * percentile(lateness, 99), 1),
        "lateness_max_ms": round(1000 * max(lateness, default=float("nan")), 1),
    }


async def bench() -> dict[str, Any]:
    server, target = start_target()
    registry = CollectorRegistry()
    firing = Firing()
    options = EngineOptions(http=HttpOptions(per_host_limit=128, total_limit=256, request_timeout=5))
    engine = SensorEngine(firing, metrics=SensorMetrics(registry), options=options)
    await engine.start()
    baseline_rss = rss_mb()
    steps: list[dict[str, Any]] = []
    stopped_by = "reached 1,000,000"
    waiting = 0
    try:
        for total in STEPS:
            result = await step(
                engine, registry, firing, target=target, server=server.pid, total=total, waiting=waiting
            )
            waiting = total - HTTP_SENSORS
            steps.append(result)
            print(result, flush=True)
            if result["rss_mb"] > RSS_GOAL_MB:
                stopped_by = f"RSS above {RSS_GOAL_MB} MB"
                break
            if result["lateness_p99_ms"] > LATENESS_GOAL_S * 1000:
                stopped_by = f"p99 lateness above {LATENESS_GOAL_S} s"
                break
    finally:
        await engine.close()
        server.kill()
        server.wait()
    passing = [
        s for s in steps if s["rss_mb"] <= RSS_GOAL_MB and s["lateness_p99_ms"] <= LATENESS_GOAL_S * 1000
    ]
    first = steps[0]
    per_sensor = (
        (steps[1]["rss_mb"] - first["rss_mb"])
        * 1024
        * 1024
        / (steps[1]["time_sensors"] - first["time_sensors"])
        if len(steps) > 1
        else None
    )
    return {
        "goals": {
            "rss_mb_at_100k": RSS_GOAL_MB,
            "idle_cpu_pct": CPU_GOAL_PCT,
            "time_sensor_p99_lateness_s": LATENESS_GOAL_S,
        },
        "at_100k": {
            "rss_mb": first["rss_mb"],
            "idle_cpu_pct": first["idle_cpu_pct"],
            "cpu_pct_with_http_polling": first["cpu_pct_with_http_polling"],
            "lateness_p99_ms": first["lateness_p99_ms"],
            "rss_ok": first["rss_mb"] <= RSS_GOAL_MB,
            "idle_cpu_ok": first["idle_cpu_pct"] <= CPU_GOAL_PCT,
            "lateness_ok": first["lateness_p99_ms"] <= LATENESS_GOAL_S * 1000,
        },
        "largest_count_within_rss_and_lateness_goals": passing[-1]["concurrent_sensors"] if passing else 0,
        "stopped_by": stopped_by,
        "process_rss_mb_before_sensors": round(baseline_rss, 1),
        "note": "CPU, poke rate and lateness depend on machine load: see load_average_1m per step",
        "rss_bytes_per_additional_time_sensor": round(per_sensor) if per_sensor else None,
        "http": {
            "sensors": HTTP_SENSORS,
            "poke_interval_s": HTTP_POKE_SECONDS,
            "per_host_limit": options.http.per_host_limit,
        },
        "steps": steps,
    }


def main() -> int:
    result = asyncio.run(bench())
    path = write_result("sensors", result)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Schedules create DAGRuns on the cluster: deterministic names, catchup within maxActiveRuns,
Replace cancelling the active run, and the DAG status recording the schedule."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from leoflow.controller.cron import CronScheduler
from tests.integration.controller.conftest import Harness, dag_yaml

TASK = "  work: {command: [work]}\n"


def scheduled(policy: str, catchup: bool, max_active: int) -> str:
    schedule = (
        f'schedule: {{cron: "0 * * * *", catchup: {str(catchup).lower()}, '
        f"concurrencyPolicy: {policy}, maxActiveRuns: {max_active}}}\n"
    )
    return dag_yaml("hourly", TASK).replace("tasks:", schedule + "tasks:")


async def _dag_created(h: Harness) -> datetime:
    dag = json.loads(await h.kubectl("get", "dag", "hourly", "-o", "json"))
    return datetime.fromisoformat(dag["metadata"]["creationTimestamp"])


async def _runs(h: Harness) -> dict[str, dict[str, Any]]:
    items = json.loads(await h.kubectl("get", "dagruns", "-o", "json"))["items"]
    return {item["metadata"]["name"]: item for item in items}


def _hour(moment: datetime, hours: int) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0) + timedelta(hours=hours)


async def test_missed_schedules_catch_up_within_max_active_runs(harness: Harness) -> None:
    await harness.apply_dag(scheduled("Allow", catchup=True, max_active=2))
    harness.script.tasks = {"work": {"kwok.leoflow.io/succeed-after": "10m"}}
    controller = await harness.start(cron=False)
    created = await _dag_created(harness)
    now = _hour(created, 3) + timedelta(minutes=5)
    cron = CronScheduler(
        writer=controller.writer, dags=controller.dags, runs=controller.runs, clock=lambda: now
    )
    await controller.dags.wait_synced()
    await cron.tick()
    first, second = _hour(created, 1), _hour(created, 2)
    names = [f"hourly-{first:%Y%m%dt%H%M}", f"hourly-{second:%Y%m%dt%H%M}"]
    runs = await _runs(harness)
    assert sorted(runs) == names
    assert runs[names[0]]["spec"]["logicalDate"] == first.isoformat().replace("+00:00", "Z")
    dag = json.loads(await harness.kubectl("get", "dag", "hourly", "-o", "json"))
    assert dag["status"]["lastScheduleTime"] == second.isoformat().replace("+00:00", "Z")
    # Ticking again changes nothing: both runs are active and the third fire waits for room.
    await harness.wait_run(names[1], lambda o: bool(o.get("status")))
    await cron.tick()
    assert sorted(await _runs(harness)) == names


async def test_replace_cancels_the_active_run_for_the_next_fire(harness: Harness) -> None:
    await harness.apply_dag(scheduled("Replace", catchup=False, max_active=1))
    harness.script.tasks = {"work": {"kwok.leoflow.io/succeed-after": "10m"}}
    controller = await harness.start(cron=False)
    created = await _dag_created(harness)
    clock = {"now": _hour(created, 1) + timedelta(minutes=1)}
    cron = CronScheduler(
        writer=controller.writer, dags=controller.dags, runs=controller.runs, clock=lambda: clock["now"]
    )
    await controller.dags.wait_synced()
    await cron.tick()
    [old] = await _runs(harness)
    await harness.wait_run(old, lambda o: (o.get("status") or {}).get("taskStates") == "r")
    clock["now"] = _hour(created, 2) + timedelta(minutes=1)
    await cron.tick()
    await harness.wait_phase(old, "Cancelled")
    assert len(await _runs(harness)) == 2

"""Task pods the API server refuses to create (reference/failures.md, entry 6).

An invalid pod or one a policy forbids is refused identically every time: the task fails at
once, whatever its retries, with the API server's own words. A full ResourceQuota is capacity: the
attempt spends the infrastructure budget, and once the quota frees up a retry runs.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from leoflow.controller.planner import PlanSettings
from leoflow.dev import kwok
from tests.integration.controller.conftest import Harness, dag_yaml, run_status

pytestmark = pytest.mark.cluster


async def _failed_at_once(harness: Harness, dag: str) -> dict[str, str]:
    await harness.start(plan=PlanSettings(infra_retries=3, infra_retry_delay_seconds=0.2))
    await harness.create_run("r1", dag)
    done = await harness.wait_phase("r1", "Failed", within=60)
    detail: dict[str, str] = run_status(done)["tasks"]["0"]
    # The user's two retries and the infrastructure budget both untouched: nothing was retried.
    assert (detail.get("attempt", 1), detail.get("infraAttempts", 0)) == (1, 0), detail
    assert detail["reason"] == "PodRefused"
    assert await harness.pods("r1") == []
    return detail


async def test_invalid_pod_fails_its_task_at_once_with_the_api_servers_message(harness: Harness) -> None:
    # The compiler does not check label values; the API server does (422).
    placement = {**kwok.simulated_pod_placement(), "nodeSelector": {"disk": "fast ssd"}}
    tasks = "  work: {command: [work], retries: 2}\n"
    await harness.apply_dag(dag_yaml("invalid", tasks, placement=placement))
    detail = await _failed_at_once(harness, "invalid")
    assert detail["message"].startswith("pod refused by the API server (HTTP 422 Invalid): "), detail
    assert 'spec.nodeSelector: Invalid value: "fast ssd"' in detail["message"], detail


async def test_pod_forbidden_by_pod_security_fails_its_task_at_once(harness: Harness) -> None:
    await asyncio.to_thread(
        harness.cluster.kubectl,
        "label", "namespace", harness.namespace, "pod-security.kubernetes.io/enforce=restricted",
    )  # fmt: skip
    await harness.apply_dag(dag_yaml("forbidden", "  work: {command: [work], retries: 2}\n"))
    detail = await _failed_at_once(harness, "forbidden")
    assert detail["message"].startswith("pod refused by the API server (HTTP 403 Forbidden): "), detail
    assert 'violates PodSecurity "restricted:latest"' in detail["message"], detail


async def test_exceeded_quota_waits_for_room_without_spending_any_retry(harness: Harness) -> None:
    await harness.kubectl("create", "resourcequota", "no-pods", "--hard=pods=0")
    # The dev cluster runs no quota controller: write the usage it would count, which quota
    # admission then enforces (without it admission cannot judge and lets pods through).
    usage = {"status": {"hard": {"pods": "0"}, "used": {"pods": "0"}}}
    await harness.kubectl(
        "patch", "resourcequota", "no-pods", "--subresource=status", "--type=merge", "-p", json.dumps(usage)
    )
    await harness.apply_dag(dag_yaml("quota", "  work: {command: [work], retries: 0}\n"))
    await harness.start(plan=PlanSettings(infra_retries=1, infra_retry_delay_seconds=0.5))
    await harness.create_run("r1", "quota")
    waiting = await harness.wait_run(
        "r1", lambda o: "waiting for quota" in ((o.get("status") or {}).get("message") or ""), within=60
    )
    message = waiting["status"]["message"]
    assert "exceeded quota: no-pods" in message, message
    # Several refusals later (backoff from 1 s), still the first attempt, no retry spent.
    await asyncio.sleep(5)
    status = run_status(await harness.run_object("r1"))
    assert status["taskStates"] == "q", status
    assert status["tasks"]["0"].get("attempt", 1) == 1, status
    assert not [e for e in await harness.events("r1") if e["reason"] == "TaskRetrying"]
    # Pods elsewhere end; the quota has room again.
    await harness.kubectl("delete", "resourcequota", "no-pods")
    done = await harness.wait_phase("r1", "Succeeded", within=90)
    detail = run_status(done).get("tasks", {}).get("0", {})
    assert detail.get("attempt", 1) == 1 and detail.get("infraAttempts", 0) == 0, detail


async def test_a_quota_wait_longer_than_its_bound_fails_the_attempt_as_exceeded_quota(
    harness: Harness,
) -> None:
    await harness.kubectl("create", "resourcequota", "no-pods", "--hard=pods=0")
    usage = {"status": {"hard": {"pods": "0"}, "used": {"pods": "0"}}}
    await harness.kubectl(
        "patch", "resourcequota", "no-pods", "--subresource=status", "--type=merge", "-p", json.dumps(usage)
    )
    await harness.apply_dag(dag_yaml("quota", "  work: {command: [work], retries: 0}\n"))
    await harness.start(plan=PlanSettings(infra_retries=0), quota_wait=3.0)
    await harness.create_run("r1", "quota")
    done = await harness.wait_phase("r1", "Failed", within=60)
    detail = run_status(done)["tasks"]["0"]
    assert detail["reason"] == "ExceededQuota", detail
    assert "exceeded quota: no-pods" in detail["message"], detail

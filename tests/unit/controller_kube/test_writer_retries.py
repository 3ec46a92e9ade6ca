"""The writer waits as long as the server asks, backs off on transient errors, and never retries a refusal."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from leoflow.controller.kube.errors import ApiError, NotLeader
from leoflow.controller.kube.ratelimit import Rate
from leoflow.controller.kube.transport import PODS, Transport
from leoflow.controller.kube.writer import RetryPolicy, Writer, default_limits

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}
PODS_PATH = "/api/v1/namespaces/ns/pods"


def writer(fake_api: Any, clock: Any, **kwargs: Any) -> Writer:
    return Writer(Transport(fake_api.client), clock=clock, jitter=lambda: 0.0, **kwargs)


def scripted(*responses: web.Response) -> Any:
    remaining = list(responses)

    async def route(request: web.Request) -> web.StreamResponse:
        return remaining.pop(0)

    return route


def errors_counted(verb: str, code: str) -> float:
    return REGISTRY.get_sample_value("leoflow_api_errors_total", {"verb": verb, "code": code}) or 0.0


def requests_timed(verb: str) -> float:
    return REGISTRY.get_sample_value("leoflow_api_request_seconds_count", {"verb": verb}) or 0.0


async def test_429_waits_the_servers_retry_after_then_succeeds_each_request_timed(
    fake_api: Any, clock: Any, make_status: Any
) -> None:
    fake_api.on(
        "POST",
        PODS_PATH,
        scripted(
            make_status(429, "TooManyRequests", headers={"Retry-After": "3"}),
            make_status(429, "TooManyRequests", headers={"Retry-After": "5"}),
            web.json_response({**POD, "metadata": {"name": "p", "uid": "u1"}}, status=201),
        ),
    )
    before = errors_counted("create", "429")
    timed_before = requests_timed("create")
    created = await writer(fake_api, clock).create_pod("ns", POD)

    assert created.created and created.object["metadata"]["uid"] == "u1"
    assert clock.sleeps == pytest.approx([3.0, 5.0])
    assert errors_counted("create", "429") == before + 2
    assert len(fake_api.requests) == 3
    assert requests_timed("create") == timed_before + 3


async def test_retry_after_pauses_the_whole_verb(fake_api: Any, clock: Any, make_status: Any) -> None:
    fake_api.on(
        "POST",
        PODS_PATH,
        scripted(
            make_status(429, "TooManyRequests", headers={"Retry-After": "4"}),
            web.json_response(POD, status=201),
            web.json_response(POD, status=201),
        ),
    )
    w = writer(fake_api, clock)
    await w.create_pod("ns", POD)
    paused_at = clock.time
    await w.create_pod("ns", POD)
    assert clock.time == paused_at, "the pause had already been served by the first caller"
    assert clock.sleeps == pytest.approx([4.0])


async def test_503_with_retry_after_is_honoured_and_500_backs_off_exponentially(
    fake_api: Any, clock: Any, make_status: Any
) -> None:
    fake_api.on(
        "POST",
        PODS_PATH,
        scripted(
            make_status(503, "ServiceUnavailable", headers={"Retry-After": "1"}),
            make_status(500, "InternalError", "etcdserver: leader changed"),
            make_status(500, "InternalError", "etcdserver: request timed out"),
            make_status(504, "Timeout"),
            web.json_response(POD, status=201),
        ),
    )
    await writer(fake_api, clock, retry=RetryPolicy(base_delay=0.1)).create_pod("ns", POD)
    # Retry-After 1 s, then backoff 0.1, 0.2, 0.4 (jitter pinned to its lower bound: half the ceiling).
    assert clock.sleeps == pytest.approx([1.0, 0.1, 0.2, 0.4])


async def test_permanent_error_is_raised_after_one_request(
    fake_api: Any, clock: Any, make_status: Any
) -> None:
    fake_api.on("POST", PODS_PATH, scripted(make_status(422, "Invalid", "spec.containers: Required value")))
    with pytest.raises(ApiError) as raised:
        await writer(fake_api, clock).create_pod("ns", POD)
    assert (raised.value.code, raised.value.transient) == (422, False)
    assert "spec.containers" in raised.value.message
    assert len(fake_api.requests) == 1 and clock.sleeps == []


async def test_a_pod_create_over_quota_comes_back_at_once_for_the_reconcilers_wait(
    fake_api: Any, clock: Any, make_status: Any
) -> None:
    quota = 'pods "p" is forbidden: exceeded quota: team, requested: pods=1, used: pods=10, limited: pods=10'
    fake_api.on("POST", PODS_PATH, scripted(make_status(403, "Forbidden", quota)))
    with pytest.raises(ApiError) as raised:
        await writer(fake_api, clock).create_pod("ns", POD)
    assert raised.value.quota_exceeded and raised.value.transient
    assert len(fake_api.requests) == 1 and clock.sleeps == []


async def test_transient_errors_give_up_after_the_attempt_budget(
    fake_api: Any, clock: Any, make_status: Any
) -> None:
    fake_api.on("POST", PODS_PATH, scripted(*[make_status(503, "ServiceUnavailable") for _ in range(3)]))
    with pytest.raises(ApiError) as raised:
        await writer(fake_api, clock, retry=RetryPolicy(max_attempts=3)).create_pod("ns", POD)
    assert raised.value.code == 503 and len(fake_api.requests) == 3


async def test_connection_refused_is_a_transient_error_with_code_zero(clock: Any) -> None:
    from kubernetes_asyncio.client import ApiClient, Configuration

    client = ApiClient(configuration=Configuration(host="http://127.0.0.1:1"))
    try:
        with pytest.raises(ApiError) as raised:
            await Writer(Transport(client), clock=clock, retry=RetryPolicy(max_attempts=2)).create_pod(
                "ns", POD
            )
    finally:
        await client.close()
    assert raised.value.code == 0 and raised.value.transient and len(clock.sleeps) == 1


async def test_rate_limit_paces_creates_per_verb(fake_api: Any, clock: Any) -> None:
    async def ok(request: web.Request) -> web.StreamResponse:
        return web.json_response(POD, status=201)

    fake_api.on("POST", PODS_PATH, ok)
    limits = {**default_limits(), "create": Rate(qps=10, burst=2)}
    w = writer(fake_api, clock, limits=limits)
    for _ in range(4):
        await w.create_pod("ns", POD)
    assert clock.sleeps == pytest.approx([0.1, 0.1])


async def test_status_update_rereads_and_recomputes_on_conflict(
    fake_api: Any, clock: Any, make_status: Any
) -> None:
    path = "/apis/leoflow.io/v1/namespaces/ns/dagruns/r"
    versions = iter(["1", "2"])

    async def read(request: web.Request) -> web.StreamResponse:
        version = next(versions)
        return web.json_response(
            {"metadata": {"name": "r", "resourceVersion": version}, "status": {"n": version}}
        )

    patches: list[Any] = []

    async def patch(request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        patches.append((request.headers["Content-Type"], body))
        if body["metadata"]["resourceVersion"] == "1":
            return make_status(409, "Conflict", "the object has been modified")
        return web.json_response({"metadata": {"resourceVersion": "3"}, "status": body["status"]})

    fake_api.on("GET", path, read)
    fake_api.on("PATCH", path + "/status", patch)
    from leoflow.controller.kube.transport import ResourceRef

    seen: list[str] = []

    def compute(current: dict[str, Any]) -> dict[str, Any]:
        seen.append(current["status"]["n"])
        return {"n": current["status"]["n"], "phase": "Running"}

    stored = await writer(fake_api, clock).update_status(
        ResourceRef("leoflow.io", "v1", "dagruns"), "ns", "r", compute
    )
    assert seen == ["1", "2"], "compute ran again on the fresh object"
    assert patches[-1] == (
        "application/merge-patch+json",
        {"metadata": {"resourceVersion": "2"}, "status": {"phase": "Running"}},
    )
    assert stored is not None and stored["status"] == {"phase": "Running"}


async def test_a_replica_that_is_not_leader_reads_but_never_writes(fake_api: Any, clock: Any) -> None:
    async def read(request: web.Request) -> web.StreamResponse:
        return web.json_response(POD)

    fake_api.on("GET", PODS_PATH + "/p", read)
    leading = False
    w = writer(fake_api, clock, is_leader=lambda: leading)
    assert await w.get(PODS, "ns", "p") == POD
    with pytest.raises(NotLeader):
        await w.create_pod("ns", POD)
    with pytest.raises(NotLeader):
        await w.delete_pod("ns", "p")
    assert [method for method, _, _ in fake_api.requests] == ["GET"]
    leading = True
    assert await w.delete_pod("ns", "p") is False, "the write went out (and found nothing to delete)"

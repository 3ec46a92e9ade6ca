from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator
from typing import Any

import jsonpatch
import pytest
from aiohttp.test_utils import TestClient, TestServer

from leoflow.agent_inject import Denial, Injection, InjectionSettings, inject
from leoflow.webhook import serving
from leoflow.webhook.serving import WebhookConfig, build_app

from .reviewing import SETTINGS, decoded_patch, pod, review


async def client_for(config: WebhookConfig) -> TestClient:
    client = TestClient(TestServer(build_app(config, ready=True)))
    await client.start_server()
    return client


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    c = await client_for(WebhookConfig(injection=SETTINGS))
    yield c
    await c.close()


async def post_review(client: TestClient, body: Any, query: str = "") -> dict[str, Any]:
    resp = await client.post(f"/mutate-pods{query}", json=body)
    assert resp.status == 200, await resp.text()
    answer = await resp.json()
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["kind"] == "AdmissionReview"
    assert answer["response"]["uid"] == body["request"]["uid"]
    response: dict[str, Any] = answer["response"]
    return response


async def test_labelled_pod_gets_the_agent_patch(client: TestClient) -> None:
    p = pod(command=["sh", "-c", "echo hi"])
    response = await post_review(client, review(p))
    assert response["allowed"] is True
    mutated = jsonpatch.apply_patch(p, decoded_patch(response))
    expected = inject(p, SETTINGS)
    assert isinstance(expected, Injection)
    assert mutated == expected.pod
    assert mutated["spec"]["containers"][0]["command"][:3] == [SETTINGS.agent_path, "run", "--"]


async def test_unlabelled_pod_is_allowed_without_a_patch(client: TestClient) -> None:
    response = await post_review(client, review(pod(labelled=False, command=["x"])))
    assert response == {"uid": response["uid"], "allowed": True}


async def test_dry_run_gets_exactly_the_same_answer(client: TestClient) -> None:
    p = pod(command=["x"])
    real = await post_review(client, review(p))
    dry = await post_review(client, review(p, dry_run=True))
    assert dry == real


async def test_other_kinds_and_operations_are_allowed_untouched(client: TestClient) -> None:
    assert "patch" not in await post_review(client, review(pod(command=["x"]), operation="UPDATE"))
    assert "patch" not in await post_review(client, review({"metadata": {}}, kind="ConfigMap"))
    assert "patch" not in await post_review(client, review(None, operation="DELETE"))


async def test_excluded_namespace_is_allowed_with_a_warning(client: TestClient) -> None:
    response = await post_review(client, review(pod(command=["x"]), namespace="kube-system"))
    assert response["allowed"] is True and "patch" not in response
    assert response["warnings"] == [
        "leoflow: namespace kube-system is excluded from agent injection; no agent added"
    ]


async def test_pod_that_cannot_be_injected_is_denied_with_the_reason(client: TestClient) -> None:
    response = await post_review(client, review(pod()))
    assert response["allowed"] is False
    assert response["status"]["code"] == 403
    assert response["status"]["message"].startswith('leoflow agent injection: container "main"')
    assert "leoflow.io/entrypoint" in response["status"]["message"]


async def test_warnings_reach_the_user(client: TestClient) -> None:
    response = await post_review(client, review(pod(command=["x"])))
    assert any("leoflow.io/dag" in w and w.startswith("leoflow: ") for w in response["warnings"])


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "body is not JSON"),
        (b"[1, 2]", "body must be a JSON object"),
        (b"\xff\xfe", "body is not JSON"),
        (b'{"a": NaN}', "body is not JSON: unexpected character, expected a JSON value: line 1 column 7"),
        (b"[" * 100_000, "body is not JSON"),
        (
            json.dumps({**review(pod()), "apiVersion": "admission.k8s.io/v1beta1"}).encode(),
            "expected apiVersion",
        ),
        (
            json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(),
            "review.request",
        ),
        (json.dumps(review(pod(), uid="")).encode(), "request.uid must not be empty"),
        (json.dumps({**review(pod()), "request": {"uid": "u", "kind": "Pod"}}).encode(), "request.kind"),
    ],
)
async def test_malformed_body_gets_400_with_the_reason(client: TestClient, body: bytes, reason: str) -> None:
    resp = await client.post("/mutate-pods", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert reason in await resp.text()


async def test_wrong_content_type_gets_400(client: TestClient) -> None:
    resp = await client.post(
        "/mutate-pods", data=json.dumps(review(pod())), headers={"Content-Type": "text/plain"}
    )
    assert resp.status == 400
    assert "Content-Type must be application/json" in await resp.text()


async def test_large_pod_within_the_limit_is_injected(client: TestClient) -> None:
    big = pod(command=["x"], annotations={"blob": "x" * (8 * 1024 * 1024)})
    response = await post_review(client, review(big))
    assert response["allowed"] is True
    assert any(op["path"] == "/spec/initContainers" for op in decoded_patch(response))


async def test_body_over_the_limit_is_refused_with_413_not_5xx(client: TestClient) -> None:
    huge = pod(command=["x"], annotations={"blob": "x" * (serving.MAX_BODY_BYTES + 1)})
    resp = await client.post("/mutate-pods", json=review(huge))
    assert resp.status == 413


async def test_mutation_slower_than_the_budget_is_denied_before_the_api_server_gives_up() -> None:
    release = threading.Event()

    def stuck(pod: dict[str, Any], settings: InjectionSettings) -> Injection | Denial:
        release.wait(30)
        return inject(pod, settings)

    client = await client_for(WebhookConfig(injection=SETTINGS, mutate=stuck))
    try:
        # Large enough to be mutated off the event loop, where the deadline applies.
        big = pod(command=["x"], annotations={"blob": "x" * (serving.INLINE_BODY_BYTES + 1)})
        response = await post_review(client, review(big), query="?timeout=1s")
        assert response["allowed"] is False
        assert "did not finish within 0.75s" in response["status"]["message"]
        health = await client.get("/healthz")
        assert health.status == 200
    finally:
        release.set()
        await client.close()


async def test_internal_error_is_a_denial_not_a_5xx() -> None:
    def broken(pod: dict[str, Any], settings: InjectionSettings) -> Injection | Denial:
        raise RuntimeError("bug")

    client = await client_for(WebhookConfig(injection=SETTINGS, mutate=broken))
    try:
        response = await post_review(client, review(pod(command=["x"])))
        assert response["allowed"] is False
        assert "internal error while injecting the agent (RuntimeError)" in response["status"]["message"]
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("timeout", "budget"),
    [(None, 9.5), ("10s", 9.5), ("5s", 4.5), ("1s", 0.75), ("1m0s", 59.5), ("500ms", 0.375), ("junk", 9.5)],
)
def test_budget_follows_the_api_server_timeout(timeout: str | None, budget: float) -> None:
    assert serving.budget_seconds(timeout) == pytest.approx(budget)


async def test_health_readiness_and_metrics(client: TestClient) -> None:
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    await post_review(client, review(pod(command=["x"])))
    await client.post("/mutate-pods", data=b"nope", headers={"Content-Type": "application/json"})
    text = await (await client.get("/metrics")).text()
    assert 'leoflow_webhook_reviews_total{outcome="injected"} 1.0' in text
    assert 'leoflow_webhook_reviews_total{outcome="malformed"} 1.0' in text
    assert "leoflow_webhook_review_duration_seconds_count 1.0" in text


async def test_not_ready_until_marked_ready() -> None:
    client = TestClient(TestServer(build_app(WebhookConfig(injection=SETTINGS))))
    await client.start_server()
    try:
        assert (await client.get("/readyz")).status == 503
    finally:
        await client.close()

"""The reviewer behind the agent server: what it asks the API server, what it believes, and how
long it remembers (against a scripted TokenReview endpoint)."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from leoflow.controller.kube.errors import ApiError
from leoflow.controller.tokenreview import (
    IdentityMismatch,
    PodBinding,
    ReviewerOptions,
    ReviewUnavailable,
    TokenRejected,
    TokenReviewer,
    token_lifetime_left,
)

POD = {"namespace": "team-a", "pod": "etl-extract-1", "uid": "uid-1"}


def jwt(exp: float | None = None) -> str:
    claims = {"aud": ["leoflow"], "sub": "system:serviceaccount:team-a:default"}
    if exp is not None:
        claims["exp"] = exp  # type: ignore[assignment]
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJSUzI1NiJ9.{payload}.c2lnbmF0dXJl"


def authenticated(
    username: str = "system:serviceaccount:team-a:default",
    pod: str | None = "etl-extract-1",
    uid: str | None = "uid-1",
    audiences: list[str] | None = None,
) -> dict[str, Any]:
    extra: dict[str, list[str]] = {}
    if pod is not None:
        extra["authentication.kubernetes.io/pod-name"] = [pod]
    if uid is not None:
        extra["authentication.kubernetes.io/pod-uid"] = [uid]
    return {
        "kind": "TokenReview",
        "status": {
            "authenticated": True,
            "user": {"username": username, "uid": "sa-uid", "extra": extra},
            "audiences": audiences if audiences is not None else ["leoflow"],
        },
    }


REFUSED = {"kind": "TokenReview", "status": {"authenticated": False, "error": "invalid bearer token"}}


@dataclass
class ScriptedApi:
    """Answers every TokenReview with ``answer`` (or raises ``error``) and records the requests."""

    answer: dict[str, Any] = field(default_factory=authenticated)
    error: ApiError | None = None
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    release: asyncio.Event | None = None

    async def request(self, method: str, path: str, *, body: object = None, **_: Any) -> dict[str, Any]:
        self.requests.append((method, path, body))
        if self.release is not None:
            await self.release.wait()
        if self.error is not None:
            raise self.error
        return self.answer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def reviewer(api: ScriptedApi, clock: Clock | None = None, **options: Any) -> TokenReviewer:
    return TokenReviewer(
        api, ReviewerOptions(**options), clock=clock or Clock(), wall_clock=lambda: 1_800_000_000
    )


async def test_review_asks_for_the_leoflow_audience_and_returns_the_pod_binding() -> None:
    api = ScriptedApi()

    binding = await reviewer(api).verify("the-token", **POD)

    assert binding == PodBinding("team-a", "default", "etl-extract-1", "uid-1")
    [(method, path, body)] = api.requests
    assert (method, path) == ("POST", "/apis/authentication.k8s.io/v1/tokenreviews")
    assert body["spec"] == {"token": "the-token", "audiences": ["leoflow"]}


@pytest.mark.parametrize(
    ("claim", "named"),
    [
        ({"namespace": "team-b", "pod": "etl-extract-1", "uid": "uid-1"}, "namespace 'team-a'"),
        ({"namespace": "team-a", "pod": "etl-load-1", "uid": "uid-1"}, "pod 'etl-extract-1'"),
        ({"namespace": "team-a", "pod": "etl-extract-1", "uid": "uid-2"}, "uid 'uid-1'"),
    ],
    ids=["namespace", "pod", "uid"],
)
async def test_a_token_speaks_only_for_its_own_pod(claim: dict[str, str], named: str) -> None:
    with pytest.raises(IdentityMismatch, match=named):
        await reviewer(ScriptedApi()).verify("the-token", **claim)


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (REFUSED, "invalid bearer token"),
        (authenticated(username="kubernetes-admin"), "not to a service account"),
        (authenticated(pod=None, uid=None), "not bound to a pod"),
        (authenticated(uid=None), "not bound to a pod"),
        (authenticated(audiences=["https://kubernetes.default.svc"]), "audience"),
        ({"kind": "TokenReview"}, "not authenticated"),
    ],
    ids=["refused", "not-a-service-account", "secret-token", "no-uid", "wrong-audience", "no-status"],
)
async def test_tokens_the_api_server_does_not_vouch_for_a_pod_are_rejected(
    answer: dict[str, Any], why: str
) -> None:
    with pytest.raises(TokenRejected, match=why):
        await reviewer(ScriptedApi(answer=answer)).verify("the-token", **POD)


async def test_an_empty_token_is_rejected_without_asking() -> None:
    api = ScriptedApi()
    with pytest.raises(TokenRejected, match="no token"):
        await reviewer(api).verify("", **POD)
    assert api.requests == []


async def test_a_positive_answer_is_reused_until_its_ttl() -> None:
    api, clock = ScriptedApi(), Clock()
    tokens = reviewer(api, clock, positive_ttl=60)

    for _ in range(5):
        await tokens.verify("the-token", **POD)
    clock.now += 59
    await tokens.verify("the-token", **POD)
    assert len(api.requests) == 1

    clock.now += 2
    await tokens.verify("the-token", **POD)
    assert len(api.requests) == 2


async def test_a_cached_token_is_still_checked_against_the_claimed_pod() -> None:
    tokens = reviewer(ScriptedApi())
    await tokens.verify("the-token", **POD)

    with pytest.raises(IdentityMismatch):
        await tokens.verify("the-token", namespace="team-a", pod="etl-load-1", uid="uid-2")


async def test_trust_never_outlives_the_token() -> None:
    api, clock = ScriptedApi(), Clock()
    tokens = reviewer(api, clock, positive_ttl=60)
    expiring = jwt(exp=1_800_000_000 + 5)

    await tokens.verify(expiring, **POD)
    clock.now += 6
    await tokens.verify(expiring, **POD)

    assert len(api.requests) == 2


async def test_a_refusal_is_remembered_only_for_a_moment() -> None:
    api, clock = ScriptedApi(answer=REFUSED), Clock()
    tokens = reviewer(api, clock, negative_ttl=2)

    for _ in range(3):
        with pytest.raises(TokenRejected):
            await tokens.verify("bad", **POD)
    assert len(api.requests) == 1

    clock.now += 3
    api.answer = authenticated()
    await tokens.verify("bad", **POD)
    assert len(api.requests) == 2


async def test_the_cache_is_bounded_and_evicts_the_least_recently_used() -> None:
    api = ScriptedApi()
    tokens = reviewer(api, max_entries=2)

    await tokens.verify("a", **POD)
    await tokens.verify("b", **POD)
    await tokens.verify("a", **POD)
    await tokens.verify("c", **POD)
    assert len(api.requests) == 3
    await tokens.verify("a", **POD)
    assert len(api.requests) == 3, "a was used recently and stays"
    await tokens.verify("b", **POD)
    assert len(api.requests) == 4, "b was the least recently used and was evicted"


async def test_concurrent_reports_with_one_token_share_one_review() -> None:
    api = ScriptedApi(release=asyncio.Event())
    tokens = reviewer(api)

    calls = [asyncio.ensure_future(tokens.verify("the-token", **POD)) for _ in range(10)]
    await asyncio.sleep(0)
    calls[0].cancel()
    assert api.release is not None
    api.release.set()
    results = await asyncio.gather(*calls[1:])

    assert len(api.requests) == 1
    assert {b.pod for b in results} == {"etl-extract-1"}


async def test_an_api_outage_is_unavailable_and_not_cached() -> None:
    api = ScriptedApi(error=ApiError("tokenreview", 0, "ClientConnectorError", "connection refused"))
    tokens = reviewer(api)

    with pytest.raises(ReviewUnavailable):
        await tokens.verify("the-token", **POD)
    api.error = None
    await tokens.verify("the-token", **POD)
    assert len(api.requests) == 2


async def test_a_controller_without_tokenreview_rbac_says_so() -> None:
    api = ScriptedApi(error=ApiError("tokenreview", 403, "Forbidden", "cannot create tokenreviews"))

    with pytest.raises(ReviewUnavailable, match="may not create TokenReviews"):
        await reviewer(api).verify("the-token", **POD)


@pytest.mark.parametrize(
    ("token", "left"),
    [
        (jwt(exp=1_800_000_100), 100.0),
        (jwt(), None),
        ("not-a-jwt", None),
        ("a.!!!.c", None),
        ("a." + base64.urlsafe_b64encode(b"[1]").decode() + ".c", None),
    ],
    ids=["exp", "no-exp", "opaque", "bad-base64", "not-an-object"],
)
def test_token_lifetime_is_read_from_the_jwt_when_it_can_be(token: str, left: float | None) -> None:
    assert token_lifetime_left(token, 1_800_000_000) == left

"""The aiohttp application: ``POST /mutate-pods``, ``/healthz``, ``/readyz``, ``/metrics``.

A review is answered within the budget the API server gives in ``?timeout=`` (minus a margin),
whatever happens: a body that is not a review gets 400 with the reason, a pod that cannot be
injected or an error of ours gets ``allowed: false`` with a message (fail closed, as the
``failurePolicy: Fail`` configuration intends), never a 5xx. Dry-run reviews are answered the
same way: the mutation is pure, so there is nothing to skip.

The mutation is CPU work of well under a millisecond for ordinary pods, so it runs on the event
loop; a large body (big pods, big ConfigMap-like env) goes to a worker thread with the budget as
its deadline, so one huge pod cannot stall the other reviews or outlive the API server's wait.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from leoflow.agent_inject import Denial, Injection, InjectionSettings, inject
from leoflow.webhook import reviews
from leoflow.webhook.metrics import WebhookMetrics

log = logging.getLogger(__name__)

# Big pods (Istio caps reviews at 6 MiB, twice etcd's object limit); aiohttp's default is 1 MiB.
MAX_BODY_BYTES = 16 * 1024 * 1024
# Bodies above this are mutated off the event loop, under the deadline.
INLINE_BODY_BYTES = 64 * 1024
# The API server's default when ``?timeout=`` is absent (admissionregistration v1).
DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_EXCLUDED_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease", "leoflow-system")

Mutate = Callable[[dict[str, Any], InjectionSettings], Injection | Denial]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def parse_go_duration(text: str) -> float | None:
    """Seconds in a Go duration such as ``10s`` or ``1m30s`` (what the API server sends); else None."""
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def budget_seconds(timeout: str | None) -> float:
    """Our deadline: the API server's timeout less a margin for the network and its own work."""
    seconds = parse_go_duration(timeout) if timeout else None
    if seconds is None or seconds <= 0:
        seconds = DEFAULT_TIMEOUT_SECONDS
    return max(seconds - min(0.5, seconds / 4), 0.05)


@dataclass(frozen=True)
class WebhookConfig:
    injection: InjectionSettings
    excluded_namespaces: frozenset[str] = frozenset(DEFAULT_EXCLUDED_NAMESPACES)
    mutate: Mutate = inject
    metrics: WebhookMetrics = field(default_factory=WebhookMetrics)


CONFIG = web.AppKey("config", WebhookConfig)
READY = web.AppKey("ready", list[bool])


def _json(review: reviews.Review) -> web.Response:
    return web.Response(body=orjson.dumps(review), content_type="application/json")


def _malformed(config: WebhookConfig, reason: str) -> web.Response:
    config.metrics.reviews.labels("malformed").inc()
    log.info("malformed admission review", extra={"reason": reason})
    return web.Response(status=400, text=f"malformed AdmissionReview: {reason}\n")


async def _mutate(
    config: WebhookConfig, pod: dict[str, Any], *, budget: float, offload: bool
) -> Injection | Denial:
    if not offload:
        return config.mutate(pod, config.injection)
    loop = asyncio.get_running_loop()
    return await asyncio.wait_for(loop.run_in_executor(None, config.mutate, pod, config.injection), budget)


async def mutate_pods(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    if request.content_type != "application/json":
        return _malformed(config, f"Content-Type must be application/json, got {request.content_type!r}")
    body = await request.read()
    started = time.perf_counter()
    try:
        review = reviews.parse(body)
    except reviews.MalformedReview as err:
        return _malformed(config, str(err))
    try:
        outcome, answer = await _answer(config, review, request.query.get("timeout"), len(body))
    except Exception as err:
        log.exception("admission review failed", extra={"uid": review.uid})
        outcome = "error"
        answer = reviews.denied(
            review.uid,
            f"leoflow webhook: internal error while injecting the agent ({type(err).__name__})",
        )
    config.metrics.reviews.labels(outcome).inc()
    config.metrics.duration.observe(time.perf_counter() - started)
    return _json(answer)


async def _answer(
    config: WebhookConfig, review: reviews.Request, timeout_param: str | None, size: int
) -> tuple[str, reviews.Review]:
    if not review.is_pod_create or review.object is None:
        return "ignored", reviews.allowed(review.uid)
    if review.namespace in config.excluded_namespaces:
        return "excluded", reviews.allowed(
            review.uid,
            warnings=(
                f"leoflow: namespace {review.namespace} is excluded from agent injection; no agent added",
            ),
        )
    budget = budget_seconds(timeout_param)
    try:
        result = await _mutate(config, review.object, budget=budget, offload=size > INLINE_BODY_BYTES)
    except TimeoutError:
        log.warning(
            "mutation exceeded its budget", extra={"uid": review.uid, "budget_s": budget, "bytes": size}
        )
        message = (
            f"leoflow webhook: injecting the agent did not finish within {budget:.2f}s; retry the request"
        )
        return "timeout", reviews.denied(review.uid, message)
    if isinstance(result, Denial):
        log.info(
            "pod denied", extra={"uid": review.uid, "namespace": review.namespace, "reason": result.message}
        )
        return "denied", reviews.denied(review.uid, f"leoflow agent injection: {result.message}")
    if not result.patch:
        return "unchanged", reviews.allowed(review.uid, warnings=_prefixed(result.warnings))
    return "injected", reviews.allowed(review.uid, patch=result.patch, warnings=_prefixed(result.warnings))


def _prefixed(warnings: Iterable[str]) -> tuple[str, ...]:
    return tuple(f"leoflow: {w}" for w in warnings)


async def healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    if request.app[READY][0]:
        return web.Response(text="ok\n")
    return web.Response(status=503, text="not ready\n")


async def metrics(request: web.Request) -> web.Response:
    registry = request.app[CONFIG].metrics.registry
    response = web.Response(body=generate_latest(registry))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def build_app(config: WebhookConfig, *, ready: bool = False) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[CONFIG] = config
    app[READY] = [ready]
    app.router.add_post("/mutate-pods", mutate_pods)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app

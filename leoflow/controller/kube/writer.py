"""The only code in the controller that changes anything in the API server.

Every write goes through one place so that pacing, retries and error meaning are decided once:
per-verb token buckets, ``Retry-After`` honoured (and spread across the verb), jittered
exponential backoff for transient errors, and the idempotency rules that make retries safe:

* creates use deterministic names, so a retried create that already happened comes back as
  ``AlreadyExists`` and the existing object is returned for adoption (the caller checks the
  attempt annotation before trusting it);
* deletes carry a UID precondition, so a retried delete never removes a newer pod of that name;
  "not found" is success;
* status goes out as minimal JSON merge patches on the ``status`` subresource; read-modify-write
  updates carry the resourceVersion and, on 409, re-read and recompute through a callback.
"""

from __future__ import annotations

import datetime
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Histogram

from leoflow.controller.kube.errors import ApiError, NotLeader
from leoflow.controller.kube.ratelimit import Clock, MonotonicClock, Rate, TokenBucket
from leoflow.controller.kube.transport import CORE_EVENTS, PODS, KubeObject, ResourceRef, Transport

log = logging.getLogger(__name__)

API_REQUEST_SECONDS = Histogram(
    "leoflow_api_request_seconds",
    "One Kubernetes API request by verb, sent to answered (each retry on its own): with "
    "leoflow_task_transition_controller_seconds it tells the API server's share of a transition",
    ["verb"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

MERGE_PATCH = "application/merge-patch+json"

VERBS = ("get", "create", "delete", "patch", "event")


def default_limits() -> dict[str, Rate]:
    """Generous enough not to be the bottleneck of a burst of pod starts (the bare-client baseline
    on the dev cluster creates ~440 pods/s); the API server's 429s and Retry-After do the rest.
    Operators of shared clusters lower them."""
    return {
        "get": Rate(qps=500, burst=1000),
        "create": Rate(qps=500, burst=1000),
        "delete": Rate(qps=500, burst=1000),
        "patch": Rate(qps=500, burst=1000),
        "event": Rate(qps=20, burst=100),
    }


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay: float = 0.1
    max_delay: float = 10.0
    max_conflicts: int = 8
    """How many times a read-modify-write may lose a 409 race before giving up."""


@dataclass(frozen=True)
class Created:
    """The object after a create: ``created`` is False when it already existed (adopt it)."""

    object: KubeObject
    created: bool


def merge_patch(old: Any, new: Any) -> Any:
    """The smallest RFC 7386 merge patch turning ``old`` into ``new`` (None when they are equal)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return None if old == new else new
    patch: dict[str, Any] = {}
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            sub = merge_patch(old[key], value) if isinstance(value, dict) else value
            if isinstance(value, dict) and sub is None:
                continue
            patch[key] = sub
    for key in old:
        if key not in new:
            patch[key] = None
    return patch or None


def _timestamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _EventSeries:
    name: str
    count: int


@dataclass
class Writer:
    transport: Transport
    limits: dict[str, Rate] = field(default_factory=default_limits)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    clock: Clock = field(default_factory=MonotonicClock)
    jitter: Callable[[], float] = random.random
    component: str = "leoflow-controller"
    is_leader: Callable[[], bool] | None = None
    """Fence: when set (to ``LeaderElector.is_leader``'s getter), every write first checks it and
    raises :class:`NotLeader` instead of writing; reads are always allowed."""

    def __post_init__(self) -> None:
        missing = [verb for verb in VERBS if verb not in self.limits]
        if missing:
            raise ValueError(f"writer rate limits: no limit for verb(s) {', '.join(missing)}")
        self._buckets = {verb: TokenBucket(rate, self.clock) for verb, rate in self.limits.items()}
        self._latency = {verb: API_REQUEST_SECONDS.labels(verb) for verb in self.limits}
        self._events: dict[tuple[str, str, str, str], _EventSeries] = {}

    async def call(
        self,
        verb: str,
        method: str,
        path: str,
        *,
        body: object = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
        retry_conflicts: bool = True,
        retry_quota: bool = True,
    ) -> KubeObject:
        """One API call, paced by ``verb``'s bucket and retried while the error is transient.
        ``retry_quota=False`` hands an exceeded quota back at once, to a caller that waits for
        room in its own time instead of holding a worker here."""
        bucket = self._buckets[verb]
        attempt = 0
        while True:
            await bucket.acquire()
            if method != "GET" and self.is_leader is not None and not self.is_leader():
                raise NotLeader(f"{verb} {path}: this replica is not the leader")
            try:
                return await self._send(verb, method, path, body=body, query=query, content_type=content_type)
            except ApiError as error:
                attempt += 1
                if (
                    not error.transient
                    or error.already_exists
                    or (error.code == 409 and not retry_conflicts)
                    or (error.quota_exceeded and not retry_quota)
                    or attempt >= self.retry.max_attempts
                ):
                    raise
                delay = self._delay(error, attempt)
                if error.retry_after is not None:
                    bucket.pause_for(delay)
                log.info(
                    "api call failed, retrying",
                    extra={
                        "verb": verb,
                        "path": path,
                        "code": error.code,
                        "reason": error.reason,
                        "attempt": attempt,
                        "delay": round(delay, 3),
                    },
                )
                await self.clock.sleep(delay)

    async def _send(
        self,
        verb: str,
        method: str,
        path: str,
        *,
        body: object,
        query: list[tuple[str, str]] | None,
        content_type: str,
    ) -> KubeObject:
        sent = time.perf_counter()
        try:
            return await self.transport.request(
                method, path, body=body, query=query, content_type=content_type, verb=verb
            )
        finally:
            self._latency[verb].observe(time.perf_counter() - sent)

    def _delay(self, error: ApiError, attempt: int) -> float:
        if error.retry_after is not None:
            # A little jitter on top so the callers the server paused do not return in lockstep.
            return error.retry_after + self.jitter() * min(1.0, 0.1 * error.retry_after + 0.05)
        ceiling = min(self.retry.max_delay, self.retry.base_delay * 2.0 ** (attempt - 1))
        return ceiling * (0.5 + 0.5 * self.jitter())

    async def get(self, resource: ResourceRef, namespace: str | None, name: str) -> KubeObject | None:
        try:
            return await self.call("get", "GET", resource.path(namespace, name))
        except ApiError as error:
            if error.not_found:
                return None
            raise

    async def create(
        self, resource: ResourceRef, namespace: str, body: KubeObject, *, retry_quota: bool = True
    ) -> Created:
        """Creates ``body``; if its name is taken, returns the existing object with created=False."""
        try:
            created = await self.call(
                "create", "POST", resource.path(namespace), body=body, retry_quota=retry_quota
            )
            return Created(created, True)
        except ApiError as error:
            if not error.already_exists:
                raise
        name = str(body.get("metadata", {}).get("name", ""))
        existing = await self.get(resource, namespace, name)
        if existing is None:
            # Deleted between our create and our read: the name is free again.
            return await self.create(resource, namespace, body, retry_quota=retry_quota)
        return Created(existing, False)

    async def create_pod(self, namespace: str, pod: KubeObject) -> Created:
        """A task pod: an exceeded quota comes back at once (the reconciler's quota wait)."""
        return await self.create(PODS, namespace, pod, retry_quota=False)

    async def delete_pod(
        self, namespace: str, name: str, *, uid: str | None = None, grace_period_seconds: int | None = None
    ) -> bool:
        """Deletes the pod (only if its UID is ``uid``). False when it was already gone or replaced."""
        options: dict[str, Any] = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "propagationPolicy": "Background",
        }
        if uid:
            options["preconditions"] = {"uid": uid}
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        try:
            await self.call(
                "delete", "DELETE", PODS.path(namespace, name), body=options, retry_conflicts=False
            )
        except ApiError as error:
            # 409 here is a failed UID precondition: a different pod now owns the name.
            if error.not_found or error.code == 409:
                return False
            raise
        return True

    async def patch_status(
        self, resource: ResourceRef, namespace: str | None, name: str, patch: KubeObject
    ) -> KubeObject:
        """Applies a merge patch to ``status`` (give it ``{"status": {...}}``) without a precondition."""
        return await self.call(
            "patch", "PATCH", resource.path(namespace, name, "status"), body=patch, content_type=MERGE_PATCH
        )

    async def update_status(
        self,
        resource: ResourceRef,
        namespace: str | None,
        name: str,
        compute: Callable[[KubeObject], KubeObject | None],
    ) -> KubeObject | None:
        """Read-modify-write of ``status``: ``compute(current)`` returns the new status (or None
        for no change); the minimal merge patch is sent with the read's resourceVersion, and a 409
        re-reads and calls ``compute`` again. Returns the stored object (None if it is gone)."""
        conflicts = 0
        while True:
            current = await self.get(resource, namespace, name)
            if current is None:
                return None
            status = compute(current)
            if status is None:
                return current
            diff = merge_patch(current.get("status") or {}, status)
            if diff is None:
                return current
            version = current.get("metadata", {}).get("resourceVersion")
            body = {"metadata": {"resourceVersion": version}, "status": diff}
            try:
                return await self.call(
                    "patch",
                    "PATCH",
                    resource.path(namespace, name, "status"),
                    body=body,
                    content_type=MERGE_PATCH,
                    retry_conflicts=False,
                )
            except ApiError as error:
                if error.not_found:
                    return None
                conflicts += 1
                if not error.conflict or conflicts >= self.retry.max_conflicts:
                    raise

    async def create_event(
        self, involved: KubeObject, reason: str, message: str, *, type: str = "Normal"
    ) -> bool:
        """Records a core/v1 Event on ``involved``; repeats of the same event bump its count.

        Events are for people, never for correctness: failures are logged, never raised.
        """
        meta = involved.get("metadata") or {}
        namespace = str(meta.get("namespace") or "default")
        key = (str(meta.get("uid", "")), reason, message, type)
        now = _timestamp()
        series = self._events.get(key)
        try:
            if series is not None:
                series.count += 1
                try:
                    await self.call(
                        "event",
                        "PATCH",
                        CORE_EVENTS.path(namespace, series.name),
                        body={"count": series.count, "lastTimestamp": now},
                        content_type=MERGE_PATCH,
                    )
                    return True
                except ApiError as error:
                    if not error.not_found:
                        raise
            name = f"{meta.get('name', 'unknown')}.{uuid.uuid4().hex[:16]}"
            event = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": {
                    "apiVersion": involved.get("apiVersion", ""),
                    "kind": involved.get("kind", ""),
                    "name": meta.get("name", ""),
                    "namespace": namespace,
                    "uid": meta.get("uid", ""),
                    "resourceVersion": meta.get("resourceVersion", ""),
                },
                "reason": reason,
                "message": message[:1024],
                "type": type,
                "count": 1,
                "firstTimestamp": now,
                "lastTimestamp": now,
                "source": {"component": self.component},
                "reportingComponent": self.component,
                "reportingInstance": self.component,
            }
            await self.call("event", "POST", CORE_EVENTS.path(namespace), body=event)
            self._events[key] = _EventSeries(name, 1)
            if len(self._events) > 4096:
                self._events.pop(next(iter(self._events)))
            return True
        except ApiError as error:
            log.warning(
                "could not record event",
                extra={"reason": reason, "object": meta.get("name"), "error": str(error)},
            )
            return False

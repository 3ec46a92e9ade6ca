"""Who is really reporting: an agent's projected token, checked with a TokenReview.

Every agent report claims a pod (namespace, name, uid). The claim is only believed when the
report's token is a service-account token for the ``leoflow`` audience that the API server
itself bound to that very pod: the TokenReview answers with the service account and the
``authentication.kubernetes.io/pod-name``/``pod-uid`` extras of the bound pod, and all three
must match the claim. So a pod cannot report for another pod, even in its own namespace.

Reviews cost an API round trip, so a positive answer is cached briefly, keyed by the token's
SHA-256 (never the token itself), bounded in size and never past the token's own expiry.
Refusals are cached for a moment only, to blunt a flood of the same bad token. Concurrent
reviews of the same token share one request.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from leoflow.agent_inject.names import TOKEN_AUDIENCE
from leoflow.controller.kube.errors import ApiError

log = logging.getLogger(__name__)

TOKENREVIEWS_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name"
POD_UID_EXTRA = "authentication.kubernetes.io/pod-uid"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


class RequestTransport(Protocol):
    """What the reviewer needs of :class:`leoflow.controller.kube.transport.Transport`."""

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: object = None,
        content_type: str = "application/json",
        verb: str = "",
    ) -> dict[str, Any]: ...


class TokenRejected(Exception):
    """The token is missing, malformed, expired, for another audience or not a pod's token."""


class IdentityMismatch(Exception):
    """The token is valid but belongs to another pod than the one the report claims."""


class ReviewUnavailable(Exception):
    """The API server could not be asked (down, throttling): the caller should be retried."""


@dataclass(frozen=True)
class PodBinding:
    """What the API server vouches for: the service account and the pod the token is bound to."""

    namespace: str
    service_account: str
    pod: str
    uid: str


@dataclass(frozen=True)
class ReviewerOptions:
    # Projected tokens live at least ten minutes (the webhook asks for an hour), so a minute of
    # trust costs little, and a deleted pod's token stops working within it.
    positive_ttl: float = 60.0
    negative_ttl: float = 2.0
    max_entries: int = 20_000
    audience: str = TOKEN_AUDIENCE


@dataclass
class _Entry:
    binding: PodBinding | None
    refusal: str
    expires: float


class TokenReviewer:
    """Authenticates agent tokens with the TokenReview API and checks the pod they are bound to."""

    def __init__(
        self,
        transport: RequestTransport,
        options: ReviewerOptions | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._transport = transport
        self._options = options or ReviewerOptions()
        self._clock = clock
        self._wall_clock = wall_clock
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[_Entry]] = {}
        self.reviews_sent = 0

    async def verify(self, token: str, *, namespace: str, pod: str, uid: str) -> PodBinding:
        """Returns the token's binding when it is bound to exactly this pod.

        Raises :class:`TokenRejected`, :class:`IdentityMismatch` or :class:`ReviewUnavailable`.
        """
        binding = await self.authenticate(token)
        mismatch = binding_mismatch(binding, namespace=namespace, pod=pod, uid=uid)
        if mismatch:
            raise IdentityMismatch(mismatch)
        return binding

    async def authenticate(self, token: str) -> PodBinding:
        """The pod the token is bound to, from the cache or a TokenReview."""
        if not token:
            raise TokenRejected("no token: the agent sends the pod's projected token (LEOFLOW_TOKEN_FILE)")
        key = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
        entry = self._cached(key)
        if entry is None:
            entry = await self._review_once(key, token)
        if entry.binding is None:
            raise TokenRejected(entry.refusal)
        return entry.binding

    def _cached(self, key: str) -> _Entry | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        if entry.expires <= self._clock():
            del self._cache[key]
            return None
        self._cache.move_to_end(key)
        return entry

    async def _review_once(self, key: str, token: str) -> _Entry:
        # The review runs as its own task: a caller that goes away (the agent hung up) must not
        # cancel the answer the other callers of the same token are waiting for.
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._review_and_store(key, token))
            task.add_done_callback(_consume_outcome)
            self._inflight[key] = task
        return await asyncio.shield(task)

    async def _review_and_store(self, key: str, token: str) -> _Entry:
        try:
            entry = await self._review(token)
        finally:
            del self._inflight[key]
        self._store(key, entry)
        return entry

    async def _review(self, token: str) -> _Entry:
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": [self._options.audience]},
        }
        self.reviews_sent += 1
        try:
            answer = await self._transport.request("POST", TOKENREVIEWS_PATH, body=body, verb="tokenreview")
        except ApiError as exc:
            if exc.transient:
                raise ReviewUnavailable(f"TokenReview failed: {exc}") from exc
            # 401/403 mean our own credentials or RBAC are wrong, not the agent's token: say so.
            log.error("TokenReview refused to the controller", extra={"error": str(exc)})
            raise ReviewUnavailable(f"the controller may not create TokenReviews: {exc}") from exc
        now = self._clock()
        try:
            binding = binding_from_review(answer, self._options.audience)
        except TokenRejected as exc:
            return _Entry(None, str(exc), now + self._options.negative_ttl)
        ttl = self._options.positive_ttl
        remaining = token_lifetime_left(token, self._wall_clock())
        if remaining is not None:
            ttl = min(ttl, remaining)
        return _Entry(binding, "", now + max(ttl, 0.0))

    def _store(self, key: str, entry: _Entry) -> None:
        self._cache[key] = entry
        self._cache.move_to_end(key)
        while len(self._cache) > self._options.max_entries:
            self._cache.popitem(last=False)


def binding_from_review(review: dict[str, Any], audience: str) -> PodBinding:
    """The pod binding the API server vouches for, or :class:`TokenRejected` saying why not."""
    status = review.get("status")
    if not isinstance(status, dict) or not status.get("authenticated"):
        reason = status.get("error") if isinstance(status, dict) else ""
        raise TokenRejected(f"token not authenticated: {reason or 'invalid or expired token'}")
    audiences = status.get("audiences")
    if isinstance(audiences, list) and audiences and audience not in audiences:
        raise TokenRejected(f"token is not for the {audience!r} audience")
    user = status.get("user")
    username = user.get("username") if isinstance(user, dict) else None
    if not isinstance(username, str) or not username.startswith(SERVICE_ACCOUNT_PREFIX):
        raise TokenRejected(f"token belongs to {username!r}, not to a service account")
    namespace, _, service_account = username.removeprefix(SERVICE_ACCOUNT_PREFIX).partition(":")
    extra = user.get("extra") if isinstance(user, dict) else None
    pod = _single_extra(extra, POD_NAME_EXTRA)
    uid = _single_extra(extra, POD_UID_EXTRA)
    if not namespace or not service_account:
        raise TokenRejected(f"malformed service-account user {username!r}")
    if not pod or not uid:
        raise TokenRejected(
            f"token of {username} is not bound to a pod: use the pod's projected token, not a secret"
        )
    return PodBinding(namespace=namespace, service_account=service_account, pod=pod, uid=uid)


def binding_mismatch(binding: PodBinding, *, namespace: str, pod: str, uid: str) -> str:
    """Why the token may not speak for the claimed pod; empty when it may."""
    if binding.namespace != namespace:
        return f"token belongs to namespace {binding.namespace!r}, the report claims {namespace!r}"
    if binding.pod != pod:
        return f"token is bound to pod {binding.pod!r}, the report claims {pod!r}"
    if binding.uid != uid:
        return f"token is bound to pod uid {binding.uid!r}, the report claims {uid!r}"
    return ""


def token_lifetime_left(token: str, now: float) -> float | None:
    """Seconds until the JWT's ``exp``, read without verification (the review verified it)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        return None
    return float(exp) - now


def _consume_outcome(task: asyncio.Future[_Entry]) -> None:
    # Every caller may have gone away; retrieving the outcome keeps asyncio from logging it.
    if not task.cancelled():
        task.exception()


def _single_extra(extra: object, key: str) -> str:
    if not isinstance(extra, dict):
        return ""
    values = extra.get(key)
    if isinstance(values, list) and len(values) == 1 and isinstance(values[0], str):
        return values[0]
    return ""

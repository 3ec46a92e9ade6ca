"""What an API failure means: transient (retry, maybe after Retry-After) or permanent (fail now).

One table decides for the whole controller, so a 422 is never retried in a loop and a 429 never
fails a task (reference/failures.md, entries 6 and 23). The Kubernetes ``Status.reason`` travels
with the code because the code alone is ambiguous: 409 is both ``AlreadyExists`` (adopt) and
``Conflict`` (re-read and retry), 403 is both RBAC (permanent) and ``exceeded quota`` (capacity).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client import Counter

API_ERRORS = Counter(
    "leoflow_api_errors",
    "Kubernetes API calls that failed, by verb and HTTP code (0: no response)",
    ["verb", "code"],
)


class ErrorKind(enum.Enum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"


TRANSIENT_CODES = frozenset({409, 410, 429, 500, 502, 503, 504})
PERMANENT_CODES = frozenset({400, 401, 403, 404, 405, 406, 413, 415, 422})


def classify(code: int, reason: str = "", message: str = "") -> ErrorKind:
    """Transient means the same request may succeed later; everything unknown is permanent."""
    if code == 0:
        return ErrorKind.TRANSIENT
    if code == 403 and "exceeded quota" in message:
        return ErrorKind.TRANSIENT
    if code in TRANSIENT_CODES or reason in {"ServerTimeout", "Timeout", "TooManyRequests"}:
        return ErrorKind.TRANSIENT
    return ErrorKind.PERMANENT


@dataclass
class ApiError(Exception):
    """A failed API call. ``code`` 0 means no HTTP response (connection refused, reset, timeout)."""

    verb: str
    code: int
    reason: str
    message: str
    retry_after: float | None = None

    def __post_init__(self) -> None:
        super().__init__(self.verb, self.code, self.reason, self.message)

    def __str__(self) -> str:
        return f"{self.verb}: HTTP {self.code} {self.reason}: {self.message}"

    @property
    def kind(self) -> ErrorKind:
        return classify(self.code, self.reason, self.message)

    @property
    def transient(self) -> bool:
        return self.kind is ErrorKind.TRANSIENT

    @property
    def quota_exceeded(self) -> bool:
        return self.code == 403 and "exceeded quota" in self.message

    @property
    def not_found(self) -> bool:
        return self.code == 404

    @property
    def already_exists(self) -> bool:
        return self.code == 409 and self.reason == "AlreadyExists"

    @property
    def conflict(self) -> bool:
        """An optimistic-concurrency clash: re-read the object and try again."""
        return self.code == 409 and self.reason != "AlreadyExists"

    @property
    def gone(self) -> bool:
        return self.code == 410


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header; the API server only ever sends delta-seconds."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return max(seconds, 0.0)


def error_from_response(verb: str, code: int, headers: Mapping[str, str], body: bytes) -> ApiError:
    reason, message = "", body.decode("utf-8", "replace")[:500]
    try:
        status = json.loads(body)
    except ValueError:
        status = None
    if isinstance(status, dict):
        reason = str(status.get("reason") or "")
        message = str(status.get("message") or message)
    retry_after = parse_retry_after(headers.get("Retry-After") or headers.get("retry-after"))
    API_ERRORS.labels(verb=verb, code=str(code)).inc()
    return ApiError(verb, code, reason or f"HTTP{code}", message, retry_after)


def error_from_status_object(verb: str, status: Mapping[str, object]) -> ApiError:
    """An ``ERROR`` watch event carries a Status object instead of an HTTP error."""
    code = status.get("code")
    error = ApiError(
        verb,
        code if isinstance(code, int) else 500,
        str(status.get("reason") or ""),
        str(status.get("message") or ""),
    )
    API_ERRORS.labels(verb=verb, code=str(error.code)).inc()
    return error


def connection_error(verb: str, exc: BaseException) -> ApiError:
    API_ERRORS.labels(verb=verb, code="0").inc()
    return ApiError(verb, 0, type(exc).__name__, str(exc) or type(exc).__name__)


class NotLeader(Exception):
    """A write was refused locally because this replica does not hold the leader Lease."""

"""The controller's end of leoflow.agent.v1: agents report here, the run engine hears at once.

This is the fast path of the design: the moment a task's command exits, its agent sends
``Finished`` and the run engine (a :class:`ReportSink`) can create the downstream pods without
waiting for the kubelet, the pod watch or a resync. The server only translates and guards:

* each request becomes an :class:`AgentReport` (or, for ``WaitStart``, an awaited
  ``sink.wait_start``), built by pure functions that refuse malformed messages with
  INVALID_ARGUMENT naming the field;
* the token in the request is checked with a TokenReview and must be bound to the very pod the
  identity claims (UNAUTHENTICATED, PERMISSION_DENIED), so a pod cannot report for another;
* the sink's verdict becomes the status the agent acts on: OK is the acknowledgement,
  FAILED_PRECONDITION (a fenced, stale attempt) and NOT_FOUND (an unknown pod) make the agent give
  up, UNAVAILABLE (the sink or the API server is not able to answer now) makes it retry, and
  UNAVAILABLE with the ``leoflow-reconnect`` trailer (a standby replica) makes it dial again first.

No input ends the server: every failure is a status for that call alone. See docs/agent-server.md.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message
from prometheus_client import CollectorRegistry

from leoflow.agent.v1 import agent_pb2
from leoflow.certs.servingfiles import ServingFiles, ServingPair
from leoflow.controller.metrics import ControllerMetrics
from leoflow.controller.tokenreview import (
    IdentityMismatch,
    PodBinding,
    ReviewUnavailable,
    TokenRejected,
)

log = logging.getLogger(__name__)

ReportKind = Literal["started", "heartbeat", "terminating", "finished"]

# docs/agent.md: the agent refuses outputs over 64 KiB in total; anything bigger is not our agent.
OUTPUTS_CAP_BYTES = 65536
# Kubernetes object names and UIDs fit in 253 characters; longer is not a real pod.
MAX_NAME_LENGTH = 253
# Room for 64 KiB of outputs, the identity, the token and the protobuf framing.
MAX_MESSAGE_BYTES = 256 * 1024
MAX_ERROR_TEXT = 4096
ANSWER_MARGIN_SECONDS = 0.25
"""A call is answered this long (at most a quarter of its time) before its deadline, the agent's
--rpc-timeout, so a report that cannot be recorded in time gets UNAVAILABLE and a log line
instead of a silent timeout."""
OUTPUT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class AgentIdentity:
    namespace: str
    pod: str
    uid: str
    dag: str
    run: str
    task: str
    attempt: int


@dataclass(frozen=True)
class AgentReport:
    identity: AgentIdentity  # as claimed in the message AND verified against the token
    kind: ReportKind
    at: datetime  # timezone-aware UTC, when the agent saw it
    exit_code: int | None = None  # finished only
    signal: int | None = None
    oom: bool = False  # from the agent's cgroup OOM evidence
    outputs: Mapping[str, str] = field(default_factory=dict)
    outputs_error: str = ""
    agent_error: str = ""
    duration_seconds: float | None = None
    peak_rss_bytes: int | None = None


class StaleAttempt(Exception):
    """Raised by the sink: the attempt is fenced (the run moved on). The agent stops retrying."""


class UnknownPod(Exception):
    """Raised by the sink: no such Leoflow pod (or its uid differs). The agent stops retrying."""


class NotLeading(Exception):
    """Raised by the sink: this replica does not run the engine. The answer is UNAVAILABLE with
    the trailer ``leoflow-reconnect: not-leader``, and the agent dials again before it retries, so
    the Service (which selects the leader's pod) routes the new connection to the leader."""


RECONNECT_TRAILER = "leoflow-reconnect"


class ReportSink(Protocol):
    async def report(self, report: AgentReport) -> None:
        """Returns once the report is recorded in memory and the run is queued."""

    async def wait_start(self, identity: AgentIdentity) -> None:
        """Returns when the attempt may exec (WaitStart)."""


class IdentityVerifier(Protocol):
    """What the server needs of :class:`leoflow.controller.tokenreview.TokenReviewer`."""

    async def verify(self, token: str, *, namespace: str, pod: str, uid: str) -> PodBinding: ...


@dataclass(frozen=True)
class ServerTls:
    """The serving certificate and key (PEM files). New connections pick up replaced files;
    a half-replaced pair (new certificate, old key) is not served."""

    cert_file: Path
    key_file: Path


class CertificateUnavailable(Exception):
    """``start``: the TLS files do not hold a serving certificate and key (yet)."""


class InvalidReport(Exception):
    """A message the agent could not have sent: the text names the offending field."""


# --- pure translation: proto message in, AgentIdentity / AgentReport out -----------------------


def identity_from_proto(message: agent_pb2.TaskIdentity | None) -> AgentIdentity:
    if message is None:
        raise InvalidReport("identity is required")
    for name in ("pod_namespace", "pod_name", "pod_uid"):
        if not getattr(message, name):
            raise InvalidReport(f"identity.{name} is required")
    for name in ("pod_namespace", "pod_name", "pod_uid", "container", "dag", "run", "task"):
        if len(getattr(message, name)) > MAX_NAME_LENGTH:
            raise InvalidReport(f"identity.{name} is longer than {MAX_NAME_LENGTH} characters")
    if message.attempt < 0:
        raise InvalidReport(f"identity.attempt must not be negative, got {message.attempt}")
    return AgentIdentity(
        namespace=message.pod_namespace,
        pod=message.pod_name,
        uid=message.pod_uid,
        dag=message.dag,
        run=message.run,
        task=message.task,
        attempt=message.attempt,
    )


def timestamp_from_unix_ms(unix_ms: int, now: datetime) -> datetime:
    """The agent's clock when it is a plausible time, otherwise when we received the report."""
    if unix_ms <= 0:
        return now
    try:
        return datetime.fromtimestamp(unix_ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return now


def outputs_from_proto(outputs: Mapping[str, bytes], agent_refusal: str) -> tuple[dict[str, str], str]:
    """Decoded outputs and the reason they were refused (then empty), as docs/agent.md defines them."""
    total = sum(len(value) for value in outputs.values())
    if total > OUTPUTS_CAP_BYTES:
        raise InvalidReport(f"outputs total {total} bytes, over the {OUTPUTS_CAP_BYTES}-byte cap")
    for name in outputs:
        if not OUTPUT_NAME.fullmatch(name) or len(name) > MAX_NAME_LENGTH:
            raise InvalidReport(
                f"outputs[{name[:80]!r}]: an output name starts with a letter or digit and holds "
                "only letters, digits, '.', '_' and '-'"
            )
    if agent_refusal:
        return {}, _bounded(agent_refusal)
    decoded: dict[str, str] = {}
    for name in sorted(outputs):
        try:
            decoded[name] = outputs[name].decode("utf-8")
        except UnicodeDecodeError as exc:
            return {}, (
                f"output {name!r} is not UTF-8 text (invalid byte at offset {exc.start}): "
                "outputs are strings; encode binary results (base64) or store them elsewhere"
            )
    return decoded, ""


def report_from_started(request: agent_pb2.StartedRequest, now: datetime) -> AgentReport:
    identity = identity_from_proto(_identity_field(request))
    return AgentReport(identity, "started", timestamp_from_unix_ms(request.start_time_unix_ms, now))


def report_from_heartbeat(request: agent_pb2.HeartbeatRequest, now: datetime) -> AgentReport:
    return AgentReport(identity_from_proto(_identity_field(request)), "heartbeat", now)


def report_from_terminating(request: agent_pb2.TerminatingRequest, now: datetime) -> AgentReport:
    identity = identity_from_proto(_identity_field(request))
    return AgentReport(identity, "terminating", now, signal=request.signal or None)


def report_from_finished(request: agent_pb2.FinishedRequest, now: datetime) -> AgentReport:
    identity = identity_from_proto(_identity_field(request))
    outputs, outputs_error = outputs_from_proto(request.outputs, request.outputs_error)
    return AgentReport(
        identity,
        "finished",
        timestamp_from_unix_ms(request.end_time_unix_ms, now),
        exit_code=request.exit_code,
        signal=request.signal or None,
        oom=request.HasField("oom") and request.oom.oom_killed,
        outputs=outputs,
        outputs_error=outputs_error,
        agent_error=_bounded(request.agent_error),
        duration_seconds=request.duration_ms / 1000 if request.duration_ms >= 0 else None,
        peak_rss_bytes=request.peak_rss_bytes,
    )


class _HasIdentity(Protocol):
    @property
    def identity(self) -> agent_pb2.TaskIdentity: ...

    def HasField(self, field_name: str) -> bool: ...


def _identity_field(request: _HasIdentity) -> agent_pb2.TaskIdentity | None:
    return request.identity if request.HasField("identity") else None


def _bounded(text: str) -> str:
    return text if len(text) <= MAX_ERROR_TEXT else text[:MAX_ERROR_TEXT] + "... (truncated)"


def bearer_token(metadata: object, identity: agent_pb2.TaskIdentity | None) -> str:
    """``authorization: Bearer`` metadata wins; the agent itself sends it in ``identity.token``."""
    if isinstance(metadata, tuple | list):
        for item in metadata:
            key, value = item
            if key == "authorization" and isinstance(value, str) and value[:7].lower() == "bearer ":
                return value[7:].strip()
    return identity.token if identity is not None else ""


# --- the service --------------------------------------------------------------------------------

SERVICE_NAME = "leoflow.agent.v1.AgentService"
Parsed = TypeVar("Parsed")


@dataclass(frozen=True)
class _Method(Generic[Parsed]):
    """One RPC: how its request parses and what it becomes (a report, or WaitStart's identity)."""

    kind: str
    request_type: type[Message]
    build: Callable[[Any, datetime], Parsed]
    identity_of: Callable[[Parsed], AgentIdentity]


def _wait_start_identity(request: agent_pb2.WaitStartRequest, now: datetime) -> AgentIdentity:
    return identity_from_proto(_identity_field(request))


def _report_identity(report: AgentReport) -> AgentIdentity:
    return report.identity


_REPORTS: dict[str, _Method[AgentReport]] = {
    "Started": _Method("started", agent_pb2.StartedRequest, report_from_started, _report_identity),
    "Heartbeat": _Method("heartbeat", agent_pb2.HeartbeatRequest, report_from_heartbeat, _report_identity),
    "Terminating": _Method(
        "terminating", agent_pb2.TerminatingRequest, report_from_terminating, _report_identity
    ),
    "Finished": _Method("finished", agent_pb2.FinishedRequest, report_from_finished, _report_identity),
}
_EMPTY_RESPONSES: dict[str, bytes] = {
    "Started": agent_pb2.StartedResponse().SerializeToString(),
    "Heartbeat": agent_pb2.HeartbeatResponse().SerializeToString(),
    "Terminating": agent_pb2.TerminatingResponse().SerializeToString(),
    "Finished": agent_pb2.FinishedResponse().SerializeToString(),
}
_WAIT_START = _Method(
    "wait_start", agent_pb2.WaitStartRequest, _wait_start_identity, lambda identity: identity
)


class _Refusal(Exception):
    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        result: str = "rejected",
        trailer: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.result = result
        self.trailer = trailer


Context = grpc.aio.ServicerContext[bytes, bytes]


class AgentServer:
    """Serves leoflow.agent.v1.AgentService over grpc.aio and hands reports to ``sink``.

    ``reviewer`` None accepts unauthenticated reports (tests and local experiments only).
    ``tls`` None serves plaintext, likewise only when asked for. ``metrics`` is the controller's
    :class:`ControllerMetrics` (its ``leoflow_agent_reports_total``); without it the counts go to
    a private registry.
    """

    def __init__(
        self,
        sink: ReportSink,
        reviewer: IdentityVerifier | None,
        *,
        tls: ServerTls | None,
        metrics: ControllerMetrics | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sink = sink
        self._reviewer = reviewer
        self._tls = tls
        self._metrics = metrics if metrics is not None else ControllerMetrics(CollectorRegistry())
        self._now = now
        self._server: grpc.aio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Binds and serves; returns the bound port (``port`` 0 picks a free one)."""
        if self._server is not None:
            raise RuntimeError("the agent server is already started")
        if self._reviewer is None:
            log.warning("agent reports are not authenticated: no token reviewer configured")
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
            ]
        )
        server.add_generic_rpc_handlers((self._handlers(),))
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            if self._tls is None:
                bound = server.add_insecure_port(address)
            else:
                bound = server.add_secure_port(address, _reloading_credentials(self._tls))
        except (OSError, ValueError) as exc:
            raise CertificateUnavailable(str(exc)) from exc
        except RuntimeError as exc:
            raise OSError(f"agent server cannot listen on {address}: {exc}") from exc
        if bound == 0:
            raise OSError(f"agent server cannot listen on {address}")
        await server.start()
        self._server = server
        log.info("agent server listening", extra={"address": f"{host}:{bound}", "tls": self._tls is not None})
        return bound

    async def stop(self, grace: float = 5.0) -> None:
        """Stops accepting calls and lets running ones finish for ``grace`` seconds."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace)

    def _handlers(self) -> grpc.GenericRpcHandler[bytes, bytes]:
        # Requests arrive as bytes and are parsed here, so a message that does not parse is an
        # INVALID_ARGUMENT like any other malformed report instead of a traceback in grpc's log.
        handlers: dict[str, grpc.RpcMethodHandler[bytes, bytes]] = {
            name: grpc.unary_unary_rpc_method_handler(self._report_handler(name)) for name in _REPORTS
        }
        handlers["WaitStart"] = grpc.unary_unary_rpc_method_handler(self._wait_start)
        return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)

    def _report_handler(self, name: str) -> Callable[[bytes, Context], Awaitable[bytes]]:
        method, response = _REPORTS[name], _EMPTY_RESPONSES[name]

        async def handle(raw: bytes, context: Context) -> bytes:
            async def deliver(report: AgentReport) -> bytes:
                await self._sink.report(report)
                return response

            return await self._handle(method, raw, context, deliver)

        return handle

    async def _wait_start(self, raw: bytes, context: Context) -> bytes:
        async def deliver(identity: AgentIdentity) -> bytes:
            try:
                await self._sink.wait_start(identity)
            except StaleAttempt as exc:
                # CANCEL is the protocol's own "do not run it": the agent logs the message and exits 125.
                return agent_pb2.WaitStartResponse(
                    decision=agent_pb2.WaitStartResponse.DECISION_CANCEL,
                    message=str(exc) or "this attempt is no longer wanted",
                ).SerializeToString()
            return agent_pb2.WaitStartResponse(
                decision=agent_pb2.WaitStartResponse.DECISION_START
            ).SerializeToString()

        return await self._handle(_WAIT_START, raw, context, deliver)

    async def _handle(
        self,
        method: _Method[Parsed],
        raw: bytes,
        context: Context,
        deliver: Callable[[Parsed], Awaitable[bytes]],
    ) -> bytes:
        """Parses, authenticates, delivers, and turns every failure into the status the agent acts on."""
        call = _CallTiming(time.perf_counter())
        remaining = context.time_remaining()
        budget = None if remaining is None else remaining - min(ANSWER_MARGIN_SECONDS, remaining / 4)
        try:
            try:
                async with asyncio.timeout(budget):
                    response = await self._checked(method, raw, context, deliver, call)
            except TimeoutError as exc:
                # Answered before the agent gives up on the call: it retries at once, and the
                # refusal is logged (a call the agent abandons ends in silence).
                raise _Refusal(
                    grpc.StatusCode.UNAVAILABLE,
                    f"not recorded within the call's deadline (still in {call.stage}); retry",
                ) from exc
        except _Refusal as refusal:
            self._metrics.agent_report(method.kind, refusal.result)
            log.info(
                "agent report refused",
                extra={
                    "kind": method.kind,
                    "code": refusal.code.name,
                    "reason": refusal.message,
                    **call.fields(),
                },
            )
            await context.abort(refusal.code, refusal.message, refusal.trailer)
        except asyncio.CancelledError:
            # The agent's deadline passed (or it hung up) before an answer: it retries, and nothing
            # else would say where the time went.
            log.warning("agent call abandoned before an answer", extra={"kind": method.kind, **call.fields()})
            raise
        self._metrics.agent_report(method.kind, "accepted")
        if log.isEnabledFor(logging.DEBUG):
            # Every report passes here: its timing fields are built only when someone reads them.
            log.debug("agent report accepted", extra={"kind": method.kind, **call.fields()})
        return response

    async def _checked(
        self,
        method: _Method[Parsed],
        raw: bytes,
        context: Context,
        deliver: Callable[[Parsed], Awaitable[bytes]],
        call: _CallTiming,
    ) -> bytes:
        try:
            request = _parse(method.request_type, raw)
            built = method.build(request, self._now())
            claimed = method.identity_of(built)
            call.pod = f"{claimed.namespace}/{claimed.pod}"
            if self._reviewer is not None:
                token = bearer_token(context.invocation_metadata(), getattr(request, "identity", None))
                call.enter("review")
                await self._reviewer.verify(
                    token, namespace=claimed.namespace, pod=claimed.pod, uid=claimed.uid
                )
            call.enter("deliver")
            return await deliver(built)
        except InvalidReport as exc:
            raise _Refusal(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from exc
        except TokenRejected as exc:
            raise _Refusal(grpc.StatusCode.UNAUTHENTICATED, str(exc)) from exc
        except IdentityMismatch as exc:
            raise _Refusal(grpc.StatusCode.PERMISSION_DENIED, str(exc)) from exc
        except ReviewUnavailable as exc:
            raise _Refusal(grpc.StatusCode.UNAVAILABLE, str(exc)) from exc
        except StaleAttempt as exc:
            raise _Refusal(grpc.StatusCode.FAILED_PRECONDITION, str(exc) or "stale attempt", "stale") from exc
        except UnknownPod as exc:
            raise _Refusal(grpc.StatusCode.NOT_FOUND, str(exc) or "unknown pod") from exc
        except NotLeading as exc:
            raise _Refusal(
                grpc.StatusCode.UNAVAILABLE,
                str(exc) or "this controller replica is not the leader; reconnect",
                "redirected",
                ((RECONNECT_TRAILER, "not-leader"),),
            ) from exc
        except Exception as exc:
            # A sink that cannot record now (not the leader yet, shutting down, a bug): the agent
            # retries within its --finish-timeout, and the pod watch is the fallback.
            log.exception("agent report could not be recorded", extra={"kind": method.kind})
            raise _Refusal(
                grpc.StatusCode.UNAVAILABLE, f"the controller could not record the report: {exc!r}"
            ) from exc


@dataclass
class _CallTiming:
    """Where one call spends its time, for the log lines that say why an answer was slow."""

    began: float
    pod: str = ""
    stage: str = "parse"
    stage_began: float = 0.0
    review_seconds: float | None = None

    def enter(self, stage: str) -> None:
        now = time.perf_counter()
        if self.stage == "review":
            self.review_seconds = now - self.stage_began
        self.stage, self.stage_began = stage, now

    def fields(self) -> dict[str, object]:
        now = time.perf_counter()
        review = self.review_seconds
        if self.stage == "review":
            review = now - self.stage_began
        return {
            "pod": self.pod,
            "stage": self.stage,
            "review_ms": None if review is None else round(review * 1000, 1),
            "elapsed_ms": round((now - self.began) * 1000, 1),
        }


def _parse(request_type: type[Message], raw: bytes) -> Message:
    try:
        return request_type.FromString(raw)
    except DecodeError as exc:
        raise InvalidReport(f"the request does not parse as {request_type.DESCRIPTOR.full_name}") from exc


# --- TLS ----------------------------------------------------------------------------------------


def _reloading_credentials(tls: ServerTls) -> grpc.ServerCredentials:
    """Credentials whose certificate is re-read when the files change (checked per handshake).

    grpc swaps the configuration for new handshakes only; open connections keep theirs.
    Raises ``OSError``/``ValueError`` when the files do not hold a valid pair now.
    """
    files = ServingFiles(tls.cert_file, tls.key_file)

    def configuration(pair: ServingPair) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration([(pair.key_pem, pair.cert_pem)])

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        pair = files.changed()
        return None if pair is None else configuration(pair)

    # The stub says the fetcher must return a configuration; grpc's docs (and code) take None as
    # "unchanged", which is what keeps the per-handshake check cheap.
    return grpc.dynamic_ssl_server_credentials(
        configuration(files.load()),
        fetch,  # type: ignore[arg-type]
        require_client_authentication=False,
    )

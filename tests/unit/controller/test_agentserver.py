"""The agent server over a real grpc.aio socket: what each RPC hands the run engine, and which
status every refusal gets (the agent acts on the status: OK acknowledges, UNAVAILABLE retries,
anything else gives up)."""

from __future__ import annotations

import asyncio
import datetime
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from leoflow.agent.v1 import agent_pb2, agent_pb2_grpc
from leoflow.certs.authority import issue_serving, new_ca
from leoflow.controller.agentserver import (
    OUTPUTS_CAP_BYTES,
    RECONNECT_TRAILER,
    AgentIdentity,
    AgentReport,
    AgentServer,
    InvalidReport,
    NotLeading,
    ServerTls,
    StaleAttempt,
    UnknownPod,
    report_from_finished,
)
from leoflow.controller.metrics import ControllerMetrics
from leoflow.controller.tokenreview import (
    IdentityMismatch,
    PodBinding,
    ReviewUnavailable,
    TokenRejected,
    binding_mismatch,
)

NOW = datetime.datetime(2026, 11, 24, 8, 0, tzinfo=datetime.UTC)
TOKEN = "token-of-etl-extract-1"
OTHER_TOKEN = "token-of-etl-load-1"
BINDINGS = {
    TOKEN: PodBinding("team-a", "default", "etl-extract-1", "uid-1"),
    OTHER_TOKEN: PodBinding("team-a", "default", "etl-load-1", "uid-2"),
}
SERVICE = "/leoflow.agent.v1.AgentService/"
EXITED = datetime.datetime(2026, 11, 24, 7, 59, 58, 123000, tzinfo=datetime.UTC)


@dataclass
class RecordingSink:
    """Records reports; ``failures[kind]`` is raised instead; WaitStart returns once ``go`` is set."""

    reports: list[AgentReport] = field(default_factory=list)
    failures: dict[str, Exception] = field(default_factory=dict)
    waiting: list[AgentIdentity] = field(default_factory=list)
    wait_failure: Exception | None = None
    go: asyncio.Event = field(default_factory=asyncio.Event)
    waiter_arrived: asyncio.Event = field(default_factory=asyncio.Event)
    held: set[str] = field(default_factory=set)
    """Kinds of report that never return (a run status that never records the attempt)."""
    holding: asyncio.Event = field(default_factory=asyncio.Event)

    async def report(self, report: AgentReport) -> None:
        if report.kind in self.held:
            self.holding.set()
            await asyncio.Event().wait()
        failure = self.failures.get(report.kind)
        if failure is not None:
            raise failure
        self.reports.append(report)

    async def wait_start(self, identity: AgentIdentity) -> None:
        self.waiting.append(identity)
        self.waiter_arrived.set()
        await self.go.wait()
        if self.wait_failure is not None:
            raise self.wait_failure


@dataclass
class TableReviewer:
    """Knows which pod each token is bound to, as the API server's TokenReview would say."""

    tokens: dict[str, PodBinding] = field(default_factory=lambda: dict(BINDINGS))
    unavailable: bool = False
    hung: bool = False
    """The API server never answers the TokenReview."""
    seen: list[str] = field(default_factory=list)

    async def verify(self, token: str, *, namespace: str, pod: str, uid: str) -> PodBinding:
        self.seen.append(token)
        if self.hung:
            await asyncio.Event().wait()
        if self.unavailable:
            raise ReviewUnavailable("TokenReview failed: HTTP 0 ServerDisconnectedError")
        binding = self.tokens.get(token)
        if binding is None:
            raise TokenRejected("token not authenticated: invalid bearer token")
        mismatch = binding_mismatch(binding, namespace=namespace, pod=pod, uid=uid)
        if mismatch:
            raise IdentityMismatch(mismatch)
        return binding


@dataclass
class Served:
    sink: RecordingSink
    reviewer: TableReviewer
    registry: CollectorRegistry
    stub: agent_pb2_grpc.AgentServiceStub
    channel: grpc.aio.Channel
    port: int

    def count(self, kind: str, result: str) -> float:
        value = self.registry.get_sample_value(
            "leoflow_agent_reports_total", {"kind": kind, "result": result}
        )
        return value or 0.0


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    sink, reviewer, registry = RecordingSink(), TableReviewer(), CollectorRegistry()
    server = AgentServer(sink, reviewer, tls=None, metrics=ControllerMetrics(registry), now=lambda: NOW)
    port = await server.start("127.0.0.1", 0)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Served(sink, reviewer, registry, agent_pb2_grpc.AgentServiceStub(channel), channel, port)  # type: ignore[no-untyped-call]
    finally:
        await channel.close()
        await server.stop(grace=0)


def identity(**changes: Any) -> agent_pb2.TaskIdentity:
    fields: dict[str, Any] = {
        "pod_namespace": "team-a",
        "pod_name": "etl-extract-1",
        "pod_uid": "uid-1",
        "container": "main",
        "dag": "etl",
        "run": "etl-20261124",
        "task": "extract",
        "attempt": 2,
        "token": TOKEN,
        "agent_version": "v0.1.0",
    }
    fields.update(changes)
    return agent_pb2.TaskIdentity(**fields)


EXPECTED_IDENTITY = AgentIdentity("team-a", "etl-extract-1", "uid-1", "etl", "etl-20261124", "extract", 2)


def finished(**changes: Any) -> agent_pb2.FinishedRequest:
    fields: dict[str, Any] = {
        "identity": identity(),
        "exit_code": 3,
        "duration_ms": 1204,
        "peak_rss_bytes": 3407872,
        "oom": agent_pb2.OomEvidence(source=agent_pb2.OomEvidence.SOURCE_CGROUP_V2),
        "outputs": {"answer": b"42"},
        "end_time_unix_ms": int(EXITED.timestamp() * 1000),
    }
    fields.update(changes)
    return agent_pb2.FinishedRequest(**fields)


async def refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


# --- each RPC becomes the right report ------------------------------------------------------------


async def test_finished_carries_exit_code_outputs_duration_and_peak_rss(served: Served) -> None:
    await served.stub.Finished(finished())

    [report] = served.sink.reports
    assert report == AgentReport(
        identity=EXPECTED_IDENTITY,
        kind="finished",
        at=EXITED,
        exit_code=3,
        signal=None,
        oom=False,
        outputs={"answer": "42"},
        duration_seconds=1.204,
        peak_rss_bytes=3407872,
    )
    assert served.count("finished", "accepted") == 1


async def test_finished_after_a_signal_and_the_oom_killer_says_so(served: Served) -> None:
    oom = agent_pb2.OomEvidence(
        source=agent_pb2.OomEvidence.SOURCE_CGROUP_V2, oom_kill_before=0, oom_kill_after=1, oom_killed=True
    )
    await served.stub.Finished(finished(exit_code=137, signal=9, oom=oom, outputs={}))

    [report] = served.sink.reports
    assert (report.exit_code, report.signal, report.oom, report.outputs) == (137, 9, True, {})


async def test_agent_error_and_refused_outputs_pass_through_to_the_run_engine(served: Served) -> None:
    message = "outputs in /leoflow/outputs total 70004 bytes, over the 65536-byte cap"
    await served.stub.Finished(
        finished(exit_code=125, outputs={}, outputs_error=message, agent_error="exec: not found")
    )

    [report] = served.sink.reports
    assert (report.outputs, report.outputs_error, report.agent_error) == ({}, message, "exec: not found")


async def test_non_utf8_output_becomes_an_outputs_error_naming_it(served: Served) -> None:
    await served.stub.Finished(finished(outputs={"answer": b"42", "blob": b"\x89PNG\xff"}))

    [report] = served.sink.reports
    assert report.outputs == {}
    assert "'blob' is not UTF-8" in report.outputs_error
    assert report.exit_code == 3


async def test_finished_without_an_end_time_is_stamped_when_received(served: Served) -> None:
    await served.stub.Finished(finished(end_time_unix_ms=0))
    await served.stub.Finished(finished(end_time_unix_ms=2**62))

    assert [r.at for r in served.sink.reports] == [NOW, NOW]


async def test_started_heartbeat_and_terminating_reports(served: Served) -> None:
    await served.stub.Started(
        agent_pb2.StartedRequest(identity=identity(), command=["sh", "-c", "true"], start_time_unix_ms=1_000)
    )
    await served.stub.Heartbeat(agent_pb2.HeartbeatRequest(identity=identity(), elapsed_ms=10_000))
    await served.stub.Terminating(agent_pb2.TerminatingRequest(identity=identity(), signal=15))

    started, heartbeat, terminating = served.sink.reports
    assert (started.kind, started.at) == (
        "started",
        datetime.datetime(1970, 1, 1, 0, 0, 1, tzinfo=datetime.UTC),
    )
    assert (heartbeat.kind, heartbeat.at) == ("heartbeat", NOW)
    assert (terminating.kind, terminating.signal, terminating.at) == ("terminating", 15, NOW)
    assert {r.identity for r in served.sink.reports} == {EXPECTED_IDENTITY}
    for kind in ("started", "heartbeat", "terminating"):
        assert served.count(kind, "accepted") == 1


async def test_a_pod_without_task_labels_reports_with_empty_task_fields(served: Served) -> None:
    await served.stub.Started(agent_pb2.StartedRequest(identity=identity(dag="", run="", task="", attempt=0)))

    [report] = served.sink.reports
    assert report.identity == AgentIdentity("team-a", "etl-extract-1", "uid-1", "", "", "", 0)


async def test_wait_start_holds_the_agent_until_the_run_engine_lets_it_go(served: Served) -> None:
    call = asyncio.ensure_future(served.stub.WaitStart(agent_pb2.WaitStartRequest(identity=identity())))
    await asyncio.wait_for(served.sink.waiter_arrived.wait(), timeout=10)
    assert not call.done()

    served.sink.go.set()
    answer = await call

    assert answer.decision == agent_pb2.WaitStartResponse.DECISION_START
    assert served.sink.waiting == [EXPECTED_IDENTITY]
    assert served.count("wait_start", "accepted") == 1


async def test_wait_start_for_a_stale_attempt_cancels_it_with_the_reason(served: Served) -> None:
    served.sink.wait_failure = StaleAttempt("attempt 2 superseded by attempt 3")
    served.sink.go.set()

    answer = await served.stub.WaitStart(agent_pb2.WaitStartRequest(identity=identity()))

    assert answer.decision == agent_pb2.WaitStartResponse.DECISION_CANCEL
    assert answer.message == "attempt 2 superseded by attempt 3"


async def test_wait_start_for_an_unknown_pod_is_not_found(served: Served) -> None:
    served.sink.wait_failure = UnknownPod("no pod team-a/etl-extract-1 with uid uid-1")
    served.sink.go.set()

    error = await refused(served.stub.WaitStart(agent_pb2.WaitStartRequest(identity=identity())))

    assert error.code() == grpc.StatusCode.NOT_FOUND


# --- the run engine's verdicts ----------------------------------------------------------------------


async def test_stale_attempt_is_failed_precondition_so_the_agent_stops_retrying(served: Served) -> None:
    served.sink.failures["finished"] = StaleAttempt("attempt 2 of extract is fenced: the run has attempt 3")

    error = await refused(served.stub.Finished(finished()))

    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "fenced" in (error.details() or "")
    assert served.count("finished", "stale") == 1


async def test_unknown_pod_is_not_found(served: Served) -> None:
    served.sink.failures["started"] = UnknownPod("no Leoflow pod team-a/etl-extract-1")

    error = await refused(served.stub.Started(agent_pb2.StartedRequest(identity=identity())))

    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert served.count("started", "rejected") == 1


async def test_a_standby_answers_unavailable_with_the_trailer_that_sends_the_agent_to_the_leader(
    served: Served,
) -> None:
    served.sink.failures["finished"] = NotLeading("controller replica is not the leader")

    error = await refused(served.stub.Finished(finished()))

    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert (RECONNECT_TRAILER, "not-leader") in tuple(error.trailing_metadata() or ())
    assert served.count("finished", "redirected") == 1


async def test_other_refusals_carry_no_reconnect_trailer(served: Served) -> None:
    served.sink.failures["finished"] = RuntimeError("shutting down")

    error = await refused(served.stub.Finished(finished()))

    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert all(key != RECONNECT_TRAILER for key, _ in tuple(error.trailing_metadata() or ()))


async def test_a_failing_run_engine_answers_unavailable_and_the_server_keeps_serving(served: Served) -> None:
    served.sink.failures["finished"] = RuntimeError("shutting down")

    error = await refused(served.stub.Finished(finished()))
    assert error.code() == grpc.StatusCode.UNAVAILABLE

    del served.sink.failures["finished"]
    await served.stub.Finished(finished())
    assert len(served.sink.reports) == 1


async def test_a_report_the_run_engine_cannot_record_in_time_is_answered_unavailable_before_the_deadline(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    # Without an answer the agent sees DEADLINE_EXCEEDED and the controller logs nothing: a report
    # stuck on every retry was the agent waiting out its --finish-timeout in silence.
    served.sink.held.add("finished")
    caplog.set_level(logging.INFO, logger="leoflow.controller.agentserver")

    error = await refused(served.stub.Finished(finished(), timeout=1.0))

    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "deadline" in (error.details() or "") and "deliver" in (error.details() or "")
    assert served.count("finished", "rejected") == 1
    [line] = [r for r in caplog.records if r.getMessage() == "agent report refused"]
    assert line.stage == "deliver"
    assert line.pod == "team-a/etl-extract-1"


async def test_a_token_review_that_hangs_is_answered_unavailable_naming_the_review(served: Served) -> None:
    served.reviewer.hung = True

    error = await refused(served.stub.Started(agent_pb2.StartedRequest(identity=identity()), timeout=1.0))

    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "review" in (error.details() or "")
    assert served.sink.reports == []


async def test_a_call_the_agent_abandons_is_logged_with_where_it_waited(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    served.sink.held.add("finished")
    caplog.set_level(logging.INFO, logger="leoflow.controller.agentserver")
    call = served.stub.Finished(finished())
    await asyncio.wait_for(served.sink.holding.wait(), timeout=10)

    call.cancel()

    for _ in range(200):
        abandoned = [r for r in caplog.records if r.getMessage() == "agent call abandoned before an answer"]
        if abandoned:
            break
        await asyncio.sleep(0.01)
    assert [(r.kind, r.stage) for r in abandoned] == [("finished", "deliver")]
    await served.stub.Heartbeat(agent_pb2.HeartbeatRequest(identity=identity()))
    assert [r.kind for r in served.sink.reports] == ["heartbeat"]


# --- who may report -----------------------------------------------------------------------------------


async def test_missing_token_is_unauthenticated(served: Served) -> None:
    error = await refused(served.stub.Finished(finished(identity=identity(token=""))))

    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert served.sink.reports == []
    assert served.count("finished", "rejected") == 1


async def test_garbage_token_is_unauthenticated(served: Served) -> None:
    error = await refused(served.stub.Heartbeat(agent_pb2.HeartbeatRequest(identity=identity(token="x.y.z"))))

    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert served.sink.reports == []


async def test_a_pod_cannot_report_for_another_pod(served: Served) -> None:
    forged = identity(token=OTHER_TOKEN)

    error = await refused(served.stub.Finished(finished(identity=forged)))

    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "etl-load-1" in (error.details() or "")
    assert served.sink.reports == []


async def test_a_recreated_pod_of_the_same_name_cannot_report_for_the_old_uid(served: Served) -> None:
    error = await refused(served.stub.Finished(finished(identity=identity(pod_uid="uid-of-old-pod"))))

    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_bearer_metadata_is_accepted_instead_of_the_identity_token(served: Served) -> None:
    await served.stub.Started(
        agent_pb2.StartedRequest(identity=identity(token="")),
        metadata=(("authorization", f"Bearer {TOKEN}"),),
    )

    assert served.reviewer.seen == [TOKEN]
    assert len(served.sink.reports) == 1


async def test_review_outage_is_unavailable_so_the_agent_retries(served: Served) -> None:
    served.reviewer.unavailable = True

    error = await refused(served.stub.Finished(finished()))

    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert served.sink.reports == []


async def test_wait_start_is_authenticated_before_the_run_engine_hears_of_it(served: Served) -> None:
    error = await refused(
        served.stub.WaitStart(agent_pb2.WaitStartRequest(identity=identity(token=OTHER_TOKEN)))
    )

    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert served.sink.waiting == []


# --- malformed messages ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "field_named"),
    [
        (agent_pb2.FinishedRequest(exit_code=0), "identity is required"),
        (finished(identity=identity(pod_namespace="")), "identity.pod_namespace"),
        (finished(identity=identity(pod_name="")), "identity.pod_name"),
        (finished(identity=identity(pod_uid="")), "identity.pod_uid"),
        (finished(identity=identity(attempt=-1)), "identity.attempt"),
        (finished(identity=identity(run="r" * 300)), "identity.run"),
        (finished(outputs={"big": b"x" * (OUTPUTS_CAP_BYTES + 1)}), "outputs total 65537 bytes"),
        (finished(outputs={"../etc/passwd": b"x"}), "outputs['../etc/passwd']"),
        (finished(outputs={".hidden": b"x"}), "outputs['.hidden']"),
    ],
    ids=[
        "no-identity",
        "no-namespace",
        "no-pod",
        "no-uid",
        "negative-attempt",
        "long-run",
        "big-outputs",
        "path-output",
        "dot-output",
    ],
)
async def test_malformed_finished_is_invalid_argument_naming_the_field(
    served: Served, request_: agent_pb2.FinishedRequest, field_named: str
) -> None:
    error = await refused(served.stub.Finished(request_))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_named in (error.details() or "")
    assert served.sink.reports == []
    assert served.reviewer.seen == [], "a malformed message never costs a TokenReview"


async def test_outputs_exactly_at_the_cap_are_accepted(served: Served) -> None:
    await served.stub.Finished(finished(outputs={"a": b"x" * (OUTPUTS_CAP_BYTES - 1), "b": b"y"}))

    [report] = served.sink.reports
    assert len(report.outputs["a"]) == OUTPUTS_CAP_BYTES - 1


async def test_random_bytes_on_every_method_never_take_the_server_down(served: Served) -> None:
    rng = random.Random(7)
    valid = finished().SerializeToString()
    payloads = [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300))) for _ in range(60)]
    # Valid messages with bytes flipped, cut short or extended reach deeper into the parser.
    for _ in range(60):
        mutated = bytearray(valid)
        for _ in range(rng.randrange(1, 6)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        payloads.append(
            bytes(mutated[: rng.randrange(len(mutated) + 1)])
            + bytes(rng.randrange(256) for _ in range(rng.randrange(3)))
        )
    methods = ["Started", "Heartbeat", "Terminating", "Finished"]
    codes: set[grpc.StatusCode] = set()
    for payload in payloads:
        call = served.channel.unary_unary(SERVICE + rng.choice(methods))
        try:
            await asyncio.wait_for(call(payload), timeout=10)
            codes.add(grpc.StatusCode.OK)
        except grpc.aio.AioRpcError as exc:
            codes.add(exc.code())
    assert codes <= {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
    }
    await served.stub.Finished(finished())
    assert served.sink.reports[-1].identity == EXPECTED_IDENTITY


async def test_an_oversized_message_is_refused_without_harm(served: Served) -> None:
    error = await refused(served.stub.Finished(finished(agent_error="e" * (1 << 20))))

    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    await served.stub.Finished(finished())
    assert len(served.sink.reports) == 1


async def test_an_agent_that_hangs_up_during_wait_start_leaves_the_server_serving(served: Served) -> None:
    call = served.stub.WaitStart(agent_pb2.WaitStartRequest(identity=identity()))
    await asyncio.wait_for(served.sink.waiter_arrived.wait(), timeout=10)
    call.cancel()

    await served.stub.Heartbeat(agent_pb2.HeartbeatRequest(identity=identity()))
    assert [r.kind for r in served.sink.reports] == ["heartbeat"]


# --- serving ----------------------------------------------------------------------------------------------


async def test_unauthenticated_server_accepts_reports_without_tokens() -> None:
    sink = RecordingSink()
    server = AgentServer(sink, None, tls=None)
    port = await server.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = agent_pb2_grpc.AgentServiceStub(channel)  # type: ignore[no-untyped-call]
            await stub.Finished(finished(identity=identity(token="")))
    finally:
        await server.stop(grace=0)
    assert len(sink.reports) == 1


async def test_a_port_in_use_is_a_clear_error(served: Served) -> None:
    second = AgentServer(RecordingSink(), None, tls=None)
    with pytest.raises(OSError, match=f"127.0.0.1:{served.port}"):
        await second.start("127.0.0.1", served.port)


def write_serving_pair(directory: Path, common_name: str) -> bytes:
    now = datetime.datetime.now(datetime.UTC)
    ca = new_ca(common_name=common_name, now=now, validity=datetime.timedelta(hours=1))
    pair = issue_serving(
        ca,
        dns_names=("leoflow-controller",),
        ip_addresses=("127.0.0.1",),
        now=now,
        validity=datetime.timedelta(hours=1),
    )
    # Replace, never rewrite in place, as a Secret volume update does.
    for name, content in (("tls.crt", pair.cert_pem), ("tls.key", pair.key_pem)):
        staged = directory / f".{name}.new"
        staged.write_bytes(content)
        staged.replace(directory / name)
    return ca.cert_pem


async def finished_over_tls(port: int, ca_pem: bytes) -> None:
    credentials = grpc.ssl_channel_credentials(root_certificates=ca_pem)
    options = (("grpc.ssl_target_name_override", "leoflow-controller"),)
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials, options=options) as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)  # type: ignore[no-untyped-call]
        await asyncio.wait_for(stub.Finished(finished()), timeout=10)


async def test_tls_serves_the_certificate_files_and_picks_up_a_rotation(tmp_path: Path) -> None:
    first_ca = write_serving_pair(tmp_path, "first-ca")
    sink = RecordingSink()
    server = AgentServer(sink, TableReviewer(), tls=ServerTls(tmp_path / "tls.crt", tmp_path / "tls.key"))
    port = await server.start("127.0.0.1", 0)
    try:
        await finished_over_tls(port, first_ca)
        second_ca = write_serving_pair(tmp_path, "second-ca")
        await finished_over_tls(port, second_ca)
        with pytest.raises(grpc.aio.AioRpcError) as old_trust:
            await finished_over_tls(port, first_ca)
    finally:
        await server.stop(grace=0)
    assert old_trust.value.code() == grpc.StatusCode.UNAVAILABLE
    assert len(sink.reports) == 2


async def test_plaintext_clients_are_refused_by_a_tls_server(tmp_path: Path) -> None:
    write_serving_pair(tmp_path, "ca")
    server = AgentServer(RecordingSink(), None, tls=ServerTls(tmp_path / "tls.crt", tmp_path / "tls.key"))
    port = await server.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = agent_pb2_grpc.AgentServiceStub(channel)  # type: ignore[no-untyped-call]
            error = await refused(stub.Finished(finished(), timeout=5))
    finally:
        await server.stop(grace=0)
    assert error.code() in {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


# --- the pure translation, for any message ------------------------------------------------------------

texts = st.text(max_size=300)


@settings(max_examples=300, deadline=None)
@given(
    namespace=texts,
    pod=texts,
    uid=texts,
    attempt=st.integers(-(2**31), 2**31 - 1),
    outputs=st.dictionaries(st.text(max_size=20), st.binary(max_size=40_000), max_size=4),
    end_ms=st.integers(-(2**63), 2**63 - 1),
    duration_ms=st.integers(-(2**63), 2**63 - 1),
    exit_code=st.integers(-(2**31), 2**31 - 1),
)
def test_any_finished_message_becomes_a_report_or_an_invalid_argument(
    *,
    namespace: str,
    pod: str,
    uid: str,
    attempt: int,
    outputs: dict[str, bytes],
    end_ms: int,
    duration_ms: int,
    exit_code: int,
) -> None:
    request = agent_pb2.FinishedRequest(
        identity=identity(pod_namespace=namespace, pod_name=pod, pod_uid=uid, attempt=attempt),
        outputs=outputs,
        end_time_unix_ms=end_ms,
        duration_ms=duration_ms,
        exit_code=exit_code,
    )
    try:
        report = report_from_finished(request, NOW)
    except InvalidReport as exc:
        assert str(exc).startswith(("identity", "outputs"))
        return
    assert report.at.tzinfo is not None
    assert report.identity.attempt >= 0
    assert all(report.identity.__dict__[name] for name in ("namespace", "pod", "uid"))
    assert sum(len(v.encode()) for v in report.outputs.values()) <= OUTPUTS_CAP_BYTES
    assert not (report.outputs and report.outputs_error)

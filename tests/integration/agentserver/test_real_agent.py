"""The real Go agent against the controller's AgentServer: what the run engine hears from a task,
and that the server's refusals make the agent stop retrying (the wire contract, end to end)."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from leoflow.certs.authority import issue_serving, new_ca
from leoflow.controller.agentserver import (
    AgentIdentity,
    AgentReport,
    AgentServer,
    ServerTls,
    StaleAttempt,
)
from leoflow.controller.tokenreview import IdentityMismatch, PodBinding, TokenRejected, binding_mismatch

from .conftest import AgentRunner

# What tests/agent/conftest.py's AgentRunner puts in the agent's environment.
IDENTITY = AgentIdentity("team-a", "etl-extract-1", "0b6f4a9e-uid", "etl", "etl-20261124", "extract", 2)
AGENT_TOKEN = "projected-token"
AGENT_BINDING = PodBinding(IDENTITY.namespace, "default", IDENTITY.pod, IDENTITY.uid)


@dataclass
class RunEngine:
    """Stands in for the controller runtime: records reports, refuses when told to."""

    reports: list[AgentReport] = field(default_factory=list)
    refusals: dict[str, Exception] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    heartbeat: asyncio.Event = field(default_factory=asyncio.Event)
    start_refusal: Exception | None = None

    async def report(self, report: AgentReport) -> None:
        self.calls.append(report.kind)
        refusal = self.refusals.get(report.kind)
        if refusal is not None:
            raise refusal
        self.reports.append(report)
        if report.kind == "heartbeat":
            self.heartbeat.set()

    async def wait_start(self, identity: AgentIdentity) -> None:
        self.calls.append("wait_start")
        if self.start_refusal is not None:
            raise self.start_refusal


@dataclass
class OneTokenReviewer:
    """The API server's view: AGENT_TOKEN is bound to the agent's pod, nothing else is valid."""

    binding: PodBinding = AGENT_BINDING

    async def verify(self, token: str, *, namespace: str, pod: str, uid: str) -> PodBinding:
        if token != AGENT_TOKEN:
            raise TokenRejected("token not authenticated")
        mismatch = binding_mismatch(self.binding, namespace=namespace, pod=pod, uid=uid)
        if mismatch:
            raise IdentityMismatch(mismatch)
        return self.binding


@asynccontextmanager
async def controller(
    engine: RunEngine, reviewer: OneTokenReviewer | None = None, tls: ServerTls | None = None
) -> AsyncIterator[str]:
    server = AgentServer(engine, reviewer or OneTokenReviewer(), tls=tls)
    port = await server.start("127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=0)


async def test_a_task_reports_started_heartbeats_and_finished_with_outputs(
    agent: AgentRunner, tmp_path: Path
) -> None:
    engine = RunEngine()
    gate = tmp_path / "gate"
    script = f"""
printf '{{"rows": 42}}' > "$LEOFLOW_OUTPUTS_DIR/summary"
while [ ! -e {gate} ]; do sleep 0.01; done
exit 3"""
    async with controller(engine) as addr:
        run = asyncio.create_task(
            agent.run("--heartbeat-interval", "20ms", "--", "sh", "-c", script, addr=addr)
        )
        await asyncio.wait_for(engine.heartbeat.wait(), timeout=30)
        gate.touch()
        result = await run

    assert result.code == 3, result.stderr
    kinds = [r.kind for r in engine.reports]
    assert kinds[0] == "started"
    assert "heartbeat" in kinds
    assert kinds[-1] == "finished"
    assert kinds.count("finished") == 1
    assert {r.identity for r in engine.reports} == {IDENTITY}

    started, done = engine.reports[0], engine.reports[-1]
    assert done.exit_code == 3
    assert done.signal is None
    assert not done.oom
    assert done.outputs == {"summary": '{"rows": 42}'}
    assert done.outputs_error == ""
    assert done.duration_seconds is not None and done.duration_seconds > 0
    assert done.peak_rss_bytes is not None and done.peak_rss_bytes > 0
    assert started.at <= done.at
    assert done.at.tzinfo is datetime.UTC
    assert "leoflow-agent:" not in result.stderr, "every report was acknowledged"


async def test_a_killed_task_reports_its_signal(agent: AgentRunner) -> None:
    engine = RunEngine()
    async with controller(engine) as addr:
        result = await agent.run("--", "sh", "-c", "kill -KILL $$", addr=addr)

    assert result.code == 137
    done = engine.reports[-1]
    assert (done.kind, done.exit_code, done.signal) == ("finished", 137, 9)


async def test_a_stale_attempt_makes_the_agent_stop_retrying(agent: AgentRunner) -> None:
    engine = RunEngine(refusals={"finished": StaleAttempt("attempt 2 of extract is fenced: the run is at 3")})
    async with controller(engine) as addr:
        result = await agent.run("--finish-timeout", "20s", "--", "sh", "-c", "exit 0", addr=addr)

    assert result.code == 0
    assert engine.calls.count("finished") == 1, "FAILED_PRECONDITION is final: no retry"
    assert "FailedPrecondition" in result.stderr
    assert "fenced" in result.stderr


async def test_a_run_engine_that_is_not_ready_is_retried_until_it_is(agent: AgentRunner) -> None:
    engine = RunEngine(refusals={"finished": RuntimeError("not the leader yet")})

    async def recover() -> None:
        while engine.calls.count("finished") < 2:
            await asyncio.sleep(0.01)
        del engine.refusals["finished"]

    async with controller(engine) as addr:
        recovering = asyncio.create_task(recover())
        result = await agent.run("--finish-timeout", "30s", "--", "sh", "-c", "exit 5", addr=addr)
        await recovering

    assert result.code == 5
    assert engine.calls.count("finished") >= 3
    assert engine.reports[-1].exit_code == 5


async def test_a_pod_presenting_another_pods_token_is_refused_once(agent: AgentRunner) -> None:
    engine = RunEngine()
    elsewhere = OneTokenReviewer(PodBinding("team-a", "default", "etl-load-1", "other-uid"))
    async with controller(engine, elsewhere) as addr:
        result = await agent.run("--finish-timeout", "20s", "--", "sh", "-c", "exit 0", addr=addr)

    assert result.code == 0
    assert engine.calls == [], "nothing reached the run engine"
    assert "PermissionDenied" in result.stderr
    assert result.stderr.count("Finished report refused") == 1


async def test_wait_start_lets_the_command_run_and_a_stale_attempt_never_runs(
    agent: AgentRunner, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    engine = RunEngine()
    async with controller(engine) as addr:
        allowed = await agent.run("--wait-start", "--", "sh", "-c", f"touch {marker}", addr=addr)
    assert allowed.code == 0, allowed.stderr
    assert marker.exists()
    assert engine.calls[0] == "wait_start"

    marker.unlink()
    fenced = RunEngine(start_refusal=StaleAttempt("attempt 2 is no longer wanted"))
    async with controller(fenced) as addr:
        cancelled = await agent.run("--wait-start", "--", "sh", "-c", f"touch {marker}", addr=addr)
    assert cancelled.code == 125
    assert not marker.exists()
    assert "attempt 2 is no longer wanted" in cancelled.stderr


async def test_the_agent_reports_over_tls_with_the_ca_bundle(agent: AgentRunner, tmp_path: Path) -> None:
    now = datetime.datetime.now(datetime.UTC)
    ca = new_ca(common_name="leoflow-test-ca", now=now, validity=datetime.timedelta(hours=1))
    pair = issue_serving(
        ca,
        dns_names=("leoflow-controller",),
        ip_addresses=("127.0.0.1",),
        now=now,
        validity=datetime.timedelta(hours=1),
    )
    (tmp_path / "tls.crt").write_bytes(pair.cert_pem)
    (tmp_path / "tls.key").write_bytes(pair.key_pem)
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    engine = RunEngine()
    tls = ServerTls(tmp_path / "tls.crt", tmp_path / "tls.key")
    async with controller(engine, tls=tls) as addr:
        result = await agent.run(
            "--ca-file", str(tmp_path / "ca.crt"), "--", "sh", "-c", "exit 0", addr=addr, insecure=False
        )

    assert result.code == 0, result.stderr
    assert [r.kind for r in engine.reports] == ["started", "finished"]

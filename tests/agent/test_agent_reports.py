"""The real leoflow-agent binary against a grpc.aio controller speaking leoflow.agent.v1."""

from __future__ import annotations

import asyncio
import datetime
import json
import socket
from pathlib import Path

import grpc

from leoflow.agent.v1 import agent_pb2
from leoflow.certs.authority import issue_serving, new_ca

from .conftest import AgentRunner
from .controller import Behaviour, RecordingController, serving


async def test_full_report_sequence_carries_identity_outcome_and_outputs(
    agent: AgentRunner, tmp_path: Path
) -> None:
    controller = RecordingController()
    gate = tmp_path / "gate"
    script = f"""
echo -n 42 > "$LEOFLOW_OUTPUTS_DIR/answer"
while [ ! -e {gate} ]; do sleep 0.01; done
exit 3"""
    async with serving(controller) as addr:
        run = asyncio.create_task(
            agent.run("--heartbeat-interval", "20ms", "--", "sh", "-c", script, addr=addr)
        )
        await asyncio.wait_for(controller.heartbeat_seen.wait(), timeout=30)
        gate.touch()
        result = await run

    assert result.code == 3, result.stderr
    assert controller.events[0] == "Started"
    assert "Heartbeat" in controller.events
    assert controller.events[-1] == "Finished"
    assert controller.events.count("Finished") == 1

    started = controller.started[0]
    assert list(started.command) == ["sh", "-c", script]
    identity = started.identity
    assert (identity.pod_namespace, identity.pod_name, identity.pod_uid, identity.container) == (
        "team-a",
        "etl-extract-1",
        "0b6f4a9e-uid",
        "main",
    )
    assert (identity.dag, identity.run, identity.task, identity.attempt) == (
        "etl",
        "etl-20261124",
        "extract",
        2,
    )
    assert identity.token == "projected-token"
    assert identity.agent_version == "test"

    finished = controller.finished[0]
    assert finished.exit_code == 3
    assert finished.signal == 0
    assert finished.peak_rss_bytes > 0
    assert finished.end_time_unix_ms >= started.start_time_unix_ms
    assert finished.oom.source != agent_pb2.OomEvidence.SOURCE_UNSPECIFIED
    assert not finished.oom.oom_killed
    assert dict(finished.outputs) == {"answer": b"42"}
    assert finished.identity.token == "projected-token"

    summary = json.loads(result.termination)
    assert summary["exitCode"] == 3
    assert summary["outputs"] == {"answer": "42"}


async def test_identity_comes_from_the_pods_identity_volume_where_no_env_sets_it(
    agent_binary: Path, tmp_path: Path
) -> None:
    # The volume's file names come from leoflow.agent_inject.names: the webhook's side of the contract.
    runner = AgentRunner(agent_binary, tmp_path, identity_files=True, extra_env={"LEOFLOW_RUN": "from-env"})
    controller = RecordingController()
    script = 'echo "$LEOFLOW_POD_UID $LEOFLOW_ATTEMPT $LEOFLOW_RUN $LEOFLOW_TOKEN_FILE"'
    async with serving(controller) as addr:
        result = await runner.run("--", "sh", "-c", script, addr=addr)

    assert result.code == 0, result.stderr
    assert result.stderr == ""
    identity = controller.started[0].identity
    assert (identity.pod_namespace, identity.pod_name, identity.pod_uid, identity.container) == (
        "team-a",
        "etl-extract-1",
        "0b6f4a9e-uid",
        "main",
    )
    assert (identity.dag, identity.run, identity.task, identity.attempt) == ("etl", "from-env", "extract", 2)
    assert identity.token == "projected-token"
    # The command sees what the webhook's env used to show it.
    assert result.stdout.split() == ["0b6f4a9e-uid", "2", "from-env", str(tmp_path / "identity" / "token")]


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


async def test_controller_down_still_runs_the_command_and_passes_its_exit_code(
    agent: AgentRunner, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    result = await agent.run(
        "--finish-timeout", "1s", "--", "sh", "-c", f"touch {marker}; exit 9", addr=closed_port(), bound=30
    )
    assert result.code == 9
    assert marker.exists()
    assert "Finished report not acknowledged" in result.stderr
    assert json.loads(result.termination)["exitCode"] == 9


async def test_slow_acknowledgement_is_retried_until_it_arrives(agent: AgentRunner) -> None:
    controller = RecordingController(Behaviour(slow_finished=1, finished_delay=3))
    async with serving(controller) as addr:
        result = await agent.run("--rpc-timeout", "300ms", "--finish-timeout", "20s", "--", "true", addr=addr)
    assert result.code == 0, result.stderr
    assert controller.events.count("Finished") >= 2
    assert len(controller.finished) >= 1
    assert "giving up" not in result.stderr


async def test_controller_that_never_acknowledges_does_not_hold_the_exit(agent: AgentRunner) -> None:
    controller = RecordingController(Behaviour(slow_finished=1000, finished_delay=60))
    async with serving(controller) as addr:
        result = await agent.run(
            "--rpc-timeout",
            "300ms",
            "--finish-timeout",
            "1s",
            "--",
            "sh",
            "-c",
            "exit 4",
            addr=addr,
            bound=30,
        )
    assert result.code == 4
    assert "Finished report not acknowledged" in result.stderr
    assert json.loads(result.termination)["exitCode"] == 4


async def test_refusing_status_is_not_retried(agent: AgentRunner) -> None:
    controller = RecordingController(Behaviour(finished_status=grpc.StatusCode.UNAUTHENTICATED))
    async with serving(controller) as addr:
        result = await agent.run("--", "sh", "-c", "exit 1", addr=addr)
    assert result.code == 1
    assert controller.events.count("Finished") == 1
    assert "Finished report refused by the controller (Unauthenticated)" in result.stderr


async def test_malformed_reply_is_reported_and_the_exit_code_survives(agent: AgentRunner) -> None:
    """A server whose replies are not valid protobuf for the declared response type."""

    def garbage(_request: bytes, _context: grpc.aio.ServicerContext) -> bytes:
        return b"\xff\xff\xff\xff"

    def identity(raw: bytes) -> bytes:
        return raw

    handler = grpc.method_handlers_generic_handler(
        "leoflow.agent.v1.AgentService",
        {
            name: grpc.unary_unary_rpc_method_handler(
                garbage, request_deserializer=identity, response_serializer=identity
            )
            for name in ("Started", "Heartbeat", "Terminating", "Finished")
        },
    )
    async with serving(handlers=(handler,)) as addr:
        result = await agent.run("--finish-timeout", "3s", "--", "sh", "-c", "exit 6", addr=addr, bound=30)
    assert result.code == 6
    assert "Finished report refused by the controller (Internal)" in result.stderr
    assert json.loads(result.termination)["exitCode"] == 6


async def test_endpoint_that_is_not_grpc_at_all(agent: AgentRunner) -> None:
    async def http1(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(http1, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        result = await agent.run(
            "--finish-timeout", "1s", "--", "sh", "-c", "exit 2", addr=f"127.0.0.1:{port}", bound=30
        )
    assert result.code == 2
    assert "Finished report" in result.stderr


async def test_tls_with_the_ca_bundle_reports_and_without_it_refuses(
    agent: AgentRunner, tmp_path: Path
) -> None:
    now = datetime.datetime.now(datetime.UTC)
    ca = new_ca(common_name="leoflow-test-ca", now=now, validity=datetime.timedelta(hours=1))
    serving_pair = issue_serving(
        ca,
        dns_names=("leoflow-controller",),
        ip_addresses=("127.0.0.1",),
        now=now,
        validity=datetime.timedelta(hours=1),
    )
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(ca.cert_pem)
    credentials = grpc.ssl_server_credentials([(serving_pair.key_pem, serving_pair.cert_pem)])
    controller = RecordingController()
    async with serving(controller, credentials=credentials) as addr:
        trusted = await agent.run("--ca-file", str(ca_file), "--", "true", addr=addr, insecure=False)
        untrusted = await agent.run("--finish-timeout", "1s", "--", "true", addr=addr, insecure=False)
    assert trusted.code == 0, trusted.stderr
    assert controller.events == ["Started", "Finished"]
    assert untrusted.code == 0
    assert "certificate" in untrusted.stderr


async def test_wait_start_holds_the_command_until_the_controller_says_go(
    agent: AgentRunner, tmp_path: Path
) -> None:
    controller = RecordingController()
    marker = tmp_path / "ran"
    async with serving(controller) as addr:
        run = asyncio.create_task(agent.run("--wait-start", "--", "touch", str(marker), addr=addr))
        await asyncio.wait_for(controller.waiting_for_start.wait(), timeout=30)
        assert not marker.exists()
        controller.go.set()
        result = await run
    assert result.code == 0, result.stderr
    assert marker.exists()
    assert controller.events == ["WaitStart", "Started", "Finished"]

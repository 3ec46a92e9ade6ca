"""The agent server's certificate comes from a mounted Secret that the kubelet swaps in place and
that may not exist yet when the controller starts: a swap reaches new connections without
dropping open ones, a half-written pair is never served, and missing files make the controller
wait for them instead of crashing."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import grpc
import pytest

from leoflow.agent.v1 import agent_pb2_grpc
from leoflow.cli.controller import _start_agents_when_certified
from leoflow.controller.agentserver import AgentServer, CertificateUnavailable, ServerTls
from leoflow.dev.processes import free_port

from .test_agentserver import RecordingSink, TableReviewer, finished, finished_over_tls, write_serving_pair

OPTIONS = (("grpc.ssl_target_name_override", "leoflow-controller"),)


def tls(directory: Path) -> ServerTls:
    return ServerTls(directory / "tls.crt", directory / "tls.key")


async def test_an_open_connection_survives_a_certificate_swap(tmp_path: Path) -> None:
    first_ca = write_serving_pair(tmp_path, "first-ca")
    sink = RecordingSink()
    server = AgentServer(sink, TableReviewer(), tls=tls(tmp_path))
    port = await server.start("127.0.0.1", 0)
    try:
        credentials = grpc.ssl_channel_credentials(root_certificates=first_ca)
        async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials, options=OPTIONS) as channel:
            stub = agent_pb2_grpc.AgentServiceStub(channel)  # type: ignore[no-untyped-call]
            await asyncio.wait_for(stub.Finished(finished()), timeout=10)
            second_ca = write_serving_pair(tmp_path, "second-ca")
            await finished_over_tls(port, second_ca)
            # Only the first CA is trusted here: a new handshake would fail, so this call can only
            # succeed on the connection opened before the swap.
            await asyncio.wait_for(stub.Finished(finished()), timeout=10)
    finally:
        await server.stop(grace=0)
    assert len(sink.reports) == 3


async def test_a_half_written_pair_is_not_served(tmp_path: Path) -> None:
    first_ca = write_serving_pair(tmp_path, "first-ca")
    first_key = (tmp_path / "tls.key").read_bytes()
    server = AgentServer(RecordingSink(), TableReviewer(), tls=tls(tmp_path))
    port = await server.start("127.0.0.1", 0)
    try:
        second_ca = write_serving_pair(tmp_path, "second-ca")
        (tmp_path / "tls.key").write_bytes(first_key)  # the new key is not there yet
        await finished_over_tls(port, first_ca)
        with pytest.raises(grpc.aio.AioRpcError):
            await finished_over_tls(port, second_ca)
    finally:
        await server.stop(grace=0)


async def test_missing_certificate_files_are_reported_not_crashed_on(tmp_path: Path) -> None:
    server = AgentServer(RecordingSink(), TableReviewer(), tls=tls(tmp_path))
    with pytest.raises(CertificateUnavailable, match=r"tls\.crt"):
        await server.start("127.0.0.1", 0)


async def test_the_controller_waits_for_its_certificate_then_serves_agents(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    sink = RecordingSink()
    server = AgentServer(sink, TableReviewer(), tls=tls(tmp_path))
    port = free_port()
    waiting = asyncio.create_task(_start_agents_when_certified(server, ("127.0.0.1", port), tls(tmp_path)))
    try:
        await asyncio.sleep(0.3)
        assert not waiting.done()
        assert "waiting for the serving certificate files" in caplog.text
        ca = write_serving_pair(tmp_path, "late-ca")
        await asyncio.wait_for(waiting, timeout=10)
        await finished_over_tls(port, ca)
    finally:
        waiting.cancel()
        await server.stop(grace=0)
    assert len(sink.reports) == 1

"""An in-process AgentService for tests: records every report and can be told to misbehave.

It implements the real proto through the generated ``leoflow.agent.v1`` stubs, so the tests
exercise the same wire contract the controller will serve.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import grpc

from leoflow.agent.v1 import agent_pb2, agent_pb2_grpc


@dataclass
class Behaviour:
    """How the controller answers Finished: the first ``slow_finished`` calls hang for
    ``finished_delay`` seconds before acknowledging; ``finished_status`` refuses every call."""

    slow_finished: int = 0
    finished_delay: float = 0.0
    finished_status: grpc.StatusCode | None = None


@dataclass
class RecordingController(agent_pb2_grpc.AgentServiceServicer):
    behaviour: Behaviour = field(default_factory=Behaviour)
    events: list[str] = field(default_factory=list)
    started: list[agent_pb2.StartedRequest] = field(default_factory=list)
    finished: list[agent_pb2.FinishedRequest] = field(default_factory=list)
    heartbeat_seen: asyncio.Event = field(default_factory=asyncio.Event)
    waiting_for_start: asyncio.Event = field(default_factory=asyncio.Event)
    go: asyncio.Event = field(default_factory=asyncio.Event)

    async def WaitStart(
        self, request: agent_pb2.WaitStartRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.WaitStartResponse:
        self.events.append("WaitStart")
        self.waiting_for_start.set()
        await self.go.wait()
        return agent_pb2.WaitStartResponse(decision=agent_pb2.WaitStartResponse.DECISION_START)

    async def Started(
        self, request: agent_pb2.StartedRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.StartedResponse:
        self.events.append("Started")
        self.started.append(request)
        return agent_pb2.StartedResponse()

    async def Heartbeat(
        self, request: agent_pb2.HeartbeatRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.HeartbeatResponse:
        self.events.append("Heartbeat")
        self.heartbeat_seen.set()
        return agent_pb2.HeartbeatResponse()

    async def Terminating(
        self, request: agent_pb2.TerminatingRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.TerminatingResponse:
        self.events.append("Terminating")
        return agent_pb2.TerminatingResponse()

    async def Finished(
        self, request: agent_pb2.FinishedRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.FinishedResponse:
        self.events.append("Finished")
        if self.behaviour.finished_status is not None:
            await context.abort(self.behaviour.finished_status, "refused by the test controller")
        if self.behaviour.slow_finished > 0:
            self.behaviour.slow_finished -= 1
            await asyncio.sleep(self.behaviour.finished_delay)
        self.finished.append(request)
        return agent_pb2.FinishedResponse()


@asynccontextmanager
async def serving(
    servicer: agent_pb2_grpc.AgentServiceServicer | None = None,
    *,
    handlers: tuple[grpc.GenericRpcHandler, ...] = (),
    credentials: grpc.ServerCredentials | None = None,
) -> AsyncIterator[str]:
    """Serves on 127.0.0.1 and yields host:port."""
    server = grpc.aio.server()
    if servicer is not None:
        agent_pb2_grpc.add_AgentServiceServicer_to_server(servicer, server)
    if handlers:
        server.add_generic_rpc_handlers(handlers)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=None)

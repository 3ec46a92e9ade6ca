"""The reviewer against the real API server: pod-bound tokens from the TokenRequest API (what the
kubelet projects into a pod) are accepted for their own pod only, and nothing else is."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from leoflow.agent.v1 import agent_pb2, agent_pb2_grpc
from leoflow.controller.agentserver import AgentIdentity, AgentReport, AgentServer
from leoflow.controller.kube.transport import Transport
from leoflow.controller.tokenreview import (
    IdentityMismatch,
    PodBinding,
    TokenRejected,
    TokenReviewer,
)
from leoflow.dev import kwok
from leoflow.dev.testing import ClusterHandle

pytestmark = pytest.mark.cluster

SERVICE_ACCOUNT = "task-runner"


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    uid: str


async def create_pod(transport: Transport, namespace: str, name: str) -> Pod:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "leoflow"}},
        "spec": {
            **kwok.simulated_pod_placement(),
            "serviceAccountName": SERVICE_ACCOUNT,
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "leoflow.dev/base:1"}],
        },
    }
    created = await transport.request("POST", f"/api/v1/namespaces/{namespace}/pods", body=body)
    return Pod(namespace, name, created["metadata"]["uid"])


async def request_token(
    transport: Transport, namespace: str, *, audiences: list[str], bound_to: Pod | None
) -> str:
    spec: dict[str, Any] = {"audiences": audiences, "expirationSeconds": 600}
    if bound_to is not None:
        spec["boundObjectRef"] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": bound_to.name,
            "uid": bound_to.uid,
        }
    answer = await transport.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{SERVICE_ACCOUNT}/token",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
    )
    token = answer["status"]["token"]
    assert isinstance(token, str)
    return token


@dataclass
class Scene:
    transport: Transport
    extract: Pod
    load: Pod
    token: str  # bound to extract, audience leoflow


@pytest.fixture
async def scene(cluster: ClusterHandle, namespace: str, kube: Any) -> Scene:
    cluster.kubectl("create", "serviceaccount", SERVICE_ACCOUNT, "-n", namespace)
    transport = Transport(kube)
    extract = await create_pod(transport, namespace, "etl-extract-1")
    load = await create_pod(transport, namespace, "etl-load-1")
    token = await request_token(transport, namespace, audiences=["leoflow"], bound_to=extract)
    return Scene(transport, extract, load, token)


def claim(pod: Pod) -> dict[str, str]:
    return {"namespace": pod.namespace, "pod": pod.name, "uid": pod.uid}


async def test_a_pod_bound_token_is_accepted_for_its_own_pod(scene: Scene) -> None:
    binding = await TokenReviewer(scene.transport).verify(scene.token, **claim(scene.extract))

    assert binding == PodBinding(
        scene.extract.namespace, SERVICE_ACCOUNT, scene.extract.name, scene.extract.uid
    )


async def test_a_pod_bound_token_is_refused_for_another_pod(scene: Scene) -> None:
    with pytest.raises(IdentityMismatch, match="etl-extract-1"):
        await TokenReviewer(scene.transport).verify(scene.token, **claim(scene.load))


async def test_a_token_for_another_audience_is_refused(scene: Scene) -> None:
    apiserver_token = await request_token(
        scene.transport,
        scene.extract.namespace,
        audiences=["https://kubernetes.default.svc"],
        bound_to=scene.extract,
    )

    with pytest.raises(TokenRejected):
        await TokenReviewer(scene.transport).verify(apiserver_token, **claim(scene.extract))


async def test_a_service_account_token_not_bound_to_a_pod_is_refused(scene: Scene) -> None:
    unbound = await request_token(
        scene.transport, scene.extract.namespace, audiences=["leoflow"], bound_to=None
    )

    with pytest.raises(TokenRejected, match="not bound to a pod"):
        await TokenReviewer(scene.transport).verify(unbound, **claim(scene.extract))


@pytest.mark.parametrize("garbage", ["garbage", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"])
async def test_garbage_is_refused(scene: Scene, garbage: str) -> None:
    with pytest.raises(TokenRejected, match="not authenticated"):
        await TokenReviewer(scene.transport).verify(garbage, **claim(scene.extract))


async def test_the_token_of_a_deleted_pod_stops_working(scene: Scene) -> None:
    await scene.transport.request(
        "DELETE",
        f"/api/v1/namespaces/{scene.extract.namespace}/pods/{scene.extract.name}",
        query=[("gracePeriodSeconds", "0")],
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            await TokenReviewer(scene.transport).verify(scene.token, **claim(scene.extract))
        except TokenRejected:
            return
        if time.monotonic() > deadline:
            raise AssertionError("the deleted pod's token was still accepted after 30 s")
        await asyncio.sleep(0.5)


@dataclass
class Recorder:
    reports: list[AgentReport]

    async def report(self, report: AgentReport) -> None:
        self.reports.append(report)

    async def wait_start(self, identity: AgentIdentity) -> None:
        return None


@pytest.fixture
async def agent_stub(scene: Scene) -> AsyncIterator[tuple[agent_pb2_grpc.AgentServiceStub, Recorder]]:
    recorder = Recorder([])
    server = AgentServer(recorder, TokenReviewer(scene.transport), tls=None)
    port = await server.start("127.0.0.1", 0)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield agent_pb2_grpc.AgentServiceStub(channel), recorder  # type: ignore[no-untyped-call]
    await server.stop(grace=0)


def finished(pod: Pod, token: str) -> agent_pb2.FinishedRequest:
    identity = agent_pb2.TaskIdentity(
        pod_namespace=pod.namespace,
        pod_name=pod.name,
        pod_uid=pod.uid,
        container="main",
        dag="etl",
        run="etl-1",
        task=pod.name.removeprefix("etl-").removesuffix("-1"),
        attempt=0,
        token=token,
    )
    return agent_pb2.FinishedRequest(identity=identity, exit_code=0, outputs={"rows": b"42"})


async def test_the_agent_server_accepts_a_pods_own_report_and_refuses_a_forged_one(
    scene: Scene, agent_stub: tuple[agent_pb2_grpc.AgentServiceStub, Recorder]
) -> None:
    stub, recorder = agent_stub

    await stub.Finished(finished(scene.extract, scene.token))
    with pytest.raises(grpc.aio.AioRpcError) as forged:
        await stub.Finished(finished(scene.load, scene.token))

    assert forged.value.code() == grpc.StatusCode.PERMISSION_DENIED
    [report] = recorder.reports
    assert (report.identity.pod, report.identity.uid, report.outputs) == (
        scene.extract.name,
        scene.extract.uid,
        {"rows": "42"},
    )

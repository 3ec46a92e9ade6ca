"""The agent protocol's shape, as the controller will rely on it."""

from __future__ import annotations

from leoflow.agent.v1 import agent_pb2


def test_every_request_carries_the_task_identity() -> None:
    service = agent_pb2.DESCRIPTOR.services_by_name["AgentService"]
    for method in service.methods:
        identity = method.input_type.fields_by_name.get("identity")
        assert identity is not None, f"{method.name} request has no identity"
        assert identity.message_type.full_name == "leoflow.agent.v1.TaskIdentity"


def test_identity_names_the_pod_the_task_and_the_token() -> None:
    fields = set(agent_pb2.TaskIdentity.DESCRIPTOR.fields_by_name)
    assert {"pod_namespace", "pod_name", "pod_uid", "dag", "run", "task", "attempt", "token"} <= fields


def test_finished_round_trips_outcome_oom_evidence_and_outputs() -> None:
    sent = agent_pb2.FinishedRequest(
        exit_code=137,
        signal=9,
        duration_ms=1500,
        peak_rss_bytes=64 << 20,
        oom=agent_pb2.OomEvidence(
            source=agent_pb2.OomEvidence.SOURCE_CGROUP_V1,
            oom_kill_before=0,
            oom_kill_after=1,
            oom_killed=True,
        ),
        outputs={"rows": b"1200"},
    )
    received = agent_pb2.FinishedRequest.FromString(sent.SerializeToString())
    assert received.oom.oom_killed
    assert received.exit_code == 128 + received.signal
    assert dict(received.outputs) == {"rows": b"1200"}

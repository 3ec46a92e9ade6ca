"""bench/realnode's pod start steps, read from containerd's own log lines (as containerd 1.6/1.7
writes them for the CRI calls of a pod with an init container)."""

# The fixture is containerd's lines verbatim, which are long.
# ruff: noqa: E501

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench" / "realnode"))

from crilog import pod_starts

SANDBOX = "9470897b9afed3bdad3c5a4c9ad9238463c9d5c32c0662c8c44c531fab69ec34"
META = "&PodSandboxMetadata{Name:chain-004-t5-1-d0bcba41,Uid:cfede3e6,Namespace:realnode-agent-1,Attempt:0,}"
LOG = rf"""time="2026-11-24T10:29:49.297444906Z" level=info msg="RunPodSandbox for {META}"
time="2026-11-24T10:29:49.300000000Z" level=info msg="RunPodSandbox for &PodSandboxMetadata{{Name:other,Uid:u,Namespace:ns,Attempt:0,}}"
time="2026-11-24T10:29:49.377046785Z" level=info msg="RunPodSandbox for {META} returns sandbox id \"{SANDBOX}\""
time="2026-11-24T10:29:49.380000000Z" level=info msg="CreateContainer within sandbox \"{SANDBOX}\" for container &ContainerMetadata{{Name:leoflow-agent-init,Attempt:0,}}"
time="2026-11-24T10:29:49.381000000Z" level=info msg="CreateContainer within sandbox \"{SANDBOX}\" for &ContainerMetadata{{Name:leoflow-agent-init,Attempt:0,}} returns container id \"aa01\""
time="2026-11-24T10:29:49.382000000Z" level=info msg="StartContainer for \"aa01\""
time="2026-11-24T10:29:49.440000000Z" level=info msg="StartContainer for \"aa01\" returns successfully"
time="2026-11-24T10:29:49.450000000Z" level=warning msg="cleaning up after shim disconnected" id=aa01 namespace=k8s.io
time="2026-11-24T10:29:49.883501867Z" level=info msg="CreateContainer within sandbox \"{SANDBOX}\" for container &ContainerMetadata{{Name:main,Attempt:0,}}"
time="2026-11-24T10:29:49.891583568Z" level=info msg="CreateContainer within sandbox \"{SANDBOX}\" for &ContainerMetadata{{Name:main,Attempt:0,}} returns container id \"c856\""
time="2026-11-24T10:29:49.892189838Z" level=info msg="StartContainer for \"c856\""
time="2026-11-24T10:29:49.943598110Z" level=info msg="StartContainer for \"c856\" returns successfully"
"""


def at(clock: str) -> float:
    return datetime.fromisoformat(f"2026-11-24T10:29:{clock}+00:00").timestamp()


def test_each_step_of_a_pod_start_is_read_with_its_own_timestamp() -> None:
    start = pod_starts(LOG)[("realnode-agent-1", "chain-004-t5-1-d0bcba41")]
    assert start.sandbox_requested == at("49.297444")
    assert start.sandbox_ready == at("49.377046")
    init, main = start.containers["leoflow-agent-init"], start.containers["main"]
    assert (init.create_requested, init.started) == (at("49.380000"), at("49.440000"))
    assert (main.create_requested, main.started) == (at("49.883501"), at("49.943598"))


def test_a_pod_whose_sandbox_never_came_up_has_only_its_request() -> None:
    start = pod_starts(LOG)[("ns", "other")]
    assert start.sandbox_requested == at("49.300000")
    assert start.sandbox_ready is None and not start.containers


def test_lines_that_are_not_cri_calls_are_ignored() -> None:
    assert (
        pod_starts('garbage\ntime="x" level=info msg="StartContainer for \\"ffff\\" returns successfully"\n')
        == {}
    )

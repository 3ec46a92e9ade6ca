"""When containerd did each step of starting a pod, read from its own log.

Between "the API server accepted the pod" and "the command's first stamp" the kubelet asks
containerd, over CRI, for a sandbox, then for each (init) container in turn. containerd logs every
such call at info level with a nanosecond timestamp from the host clock the stamps also use, so the
pod start cost splits into its steps without any extra tracing. Only the call lines are read:

    RunPodSandbox for &PodSandboxMetadata{Name:P,Uid:U,Namespace:N,Attempt:0,} [returns sandbox id "S"]
    CreateContainer within sandbox "S" for container &ContainerMetadata{Name:C,Attempt:0,}
    CreateContainer within sandbox "S" for &ContainerMetadata{Name:C,...} returns container id "I"
    StartContainer for "I" returns successfully
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

_LINE = re.compile(r'^time="(?P<ts>[^"]+)" level=\w+ msg="(?P<msg>.*)"')
_SANDBOX = re.compile(
    r"^RunPodSandbox for &PodSandboxMetadata\{Name:(?P<pod>[^,]+),Uid:[^,]*,Namespace:(?P<ns>[^,]+),"
    r'[^}]*\}(?: returns sandbox id \\"(?P<id>[0-9a-f]+)\\")?$'
)
_CREATE = re.compile(
    r'^CreateContainer within sandbox \\"(?P<sandbox>[0-9a-f]+)\\" for (?:container )?'
    r'&ContainerMetadata\{Name:(?P<name>[^,]+),[^}]*\}(?: returns container id \\"(?P<id>[0-9a-f]+)\\")?$'
)
_STARTED = re.compile(r'^StartContainer for \\"(?P<id>[0-9a-f]+)\\" returns successfully$')


@dataclass
class ContainerStart:
    create_requested: float | None = None
    started: float | None = None
    """StartContainer returned: the process has been started."""


@dataclass
class PodStart:
    """The CRI calls that started one pod, in Unix seconds."""

    sandbox_requested: float | None = None
    sandbox_ready: float | None = None
    containers: dict[str, ContainerStart] = field(default_factory=dict)


def _unix(stamp: str) -> float:
    # fromisoformat keeps microseconds of containerd's nanoseconds: enough here.
    return datetime.fromisoformat(stamp).timestamp()


def pod_starts(log: str) -> dict[tuple[str, str], PodStart]:
    """Every pod's start steps by (namespace, name). A pod started twice (a retried sandbox) keeps
    its first request and its last completion."""
    pods: dict[tuple[str, str], PodStart] = {}
    by_sandbox: dict[str, PodStart] = {}
    by_container: dict[str, ContainerStart] = {}
    for line in log.splitlines():
        if not (outer := _LINE.match(line)):
            continue
        msg = outer.group("msg")
        if match := _SANDBOX.match(msg):
            pod = pods.setdefault((match.group("ns"), match.group("pod")), PodStart())
            if match.group("id") is None:
                if pod.sandbox_requested is None:
                    pod.sandbox_requested = _unix(outer.group("ts"))
            else:
                pod.sandbox_ready = _unix(outer.group("ts"))
                by_sandbox[match.group("id")] = pod
        elif (match := _CREATE.match(msg)) and match.group("sandbox") in by_sandbox:
            containers = by_sandbox[match.group("sandbox")].containers
            container = containers.setdefault(match.group("name"), ContainerStart())
            if match.group("id") is None:
                if container.create_requested is None:
                    container.create_requested = _unix(outer.group("ts"))
            else:
                by_container[match.group("id")] = container
        elif (match := _STARTED.match(msg)) and match.group("id") in by_container:
            by_container[match.group("id")].started = _unix(outer.group("ts"))
    return pods

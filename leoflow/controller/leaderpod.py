"""The leader's pod carries ``leoflow.io/leader=true``, so the agents' Service reaches the leader.

Agent reports are of use only to the replica that runs the engine: a standby would buffer them
where nobody reconciles, and the fast path would be lost for every agent the Service happened to
send there. The Service the agents dial selects this label. The leader sets it on its own pod when
it starts leading, and again every sweep, and clears it from any other pod that still carries it
(a replica that died, or was cut off from the API server, while leading). Every replica clears it
from its own pod when it starts (a restarted container keeps its pod's labels) and when it stops
leading.

In between, for a moment no pod or two pods carry it. A standby refuses reports with a reconnect
hint (``agentserver.NotLeading``), the agent dials again, and the Service routes the new
connection. Writes go through the transport, not the writer: the writer refuses every write once
the Lease is lost, and that is exactly when this replica must take its label off.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from leoflow.controller.kube.errors import ApiError
from leoflow.controller.kube.transport import PODS, Transport
from leoflow.controller.kube.writer import MERGE_PATCH

log = logging.getLogger(__name__)

LEADER_LABEL = "leoflow.io/leader"
PATCH_TIMEOUT_SECONDS = 5.0
"""Each label request is bounded: a replica that lost the Lease to an API outage campaigns again
after this, not after the transport's 30 s request timeout."""


@dataclass(frozen=True)
class PodRef:
    namespace: str
    name: str


def own_pod_from_environment(environ: Mapping[str, str] = os.environ) -> PodRef | None:
    """The pod this process runs in, from the downward-API variables the manifests set
    (``POD_NAMESPACE``, ``POD_NAME``); None outside a pod, where no Service routes to it."""
    namespace, name = environ.get("POD_NAMESPACE", ""), environ.get("POD_NAME", "")
    return PodRef(namespace, name) if namespace and name else None


def label_patch(leading: bool) -> dict[str, object]:
    """A merge patch that sets the label, or removes it (null deletes a key in a merge patch)."""
    return {"metadata": {"labels": {LEADER_LABEL: "true" if leading else None}}}


class LeaderPodLabel:
    def __init__(self, transport: Transport, pod: PodRef) -> None:
        self._transport = transport
        self._pod = pod

    async def claim(self) -> None:
        """Labels this replica's pod and unlabels every other pod of its namespace that has the label."""
        await self._patch(self._pod.name, leading=True)
        try:
            async with asyncio.timeout(PATCH_TIMEOUT_SECONDS):
                others = await self._transport.request(
                    "GET",
                    PODS.path(self._pod.namespace),
                    query=[("labelSelector", f"{LEADER_LABEL}=true")],
                    verb="list",
                )
        except (ApiError, TimeoutError) as error:
            log.warning("leader label: listing labelled pods failed", extra={"error": repr(error)})
            return
        for item in others.get("items") or []:
            name = str((item.get("metadata") or {}).get("name", ""))
            if name and name != self._pod.name:
                log.info("leader label taken off a former leader", extra={"pod": self._where(name)})
                await self._patch(name, leading=False)

    async def clear(self) -> None:
        """Unlabels this replica's pod."""
        await self._patch(self._pod.name, leading=False)

    def _where(self, name: str) -> str:
        return f"{self._pod.namespace}/{name}"

    async def _patch(self, name: str, *, leading: bool) -> None:
        # Failures are logged, not raised: the next claim (every sweep) repairs the label, and a
        # standby that still has it refuses reports with the reconnect hint meanwhile.
        try:
            async with asyncio.timeout(PATCH_TIMEOUT_SECONDS):
                await self._transport.request(
                    "PATCH",
                    PODS.path(self._pod.namespace, name),
                    body=label_patch(leading),
                    content_type=MERGE_PATCH,
                    verb="patch",
                )
        except (ApiError, TimeoutError) as error:
            if isinstance(error, ApiError) and error.not_found:
                return
            log.warning(
                "leader label: patching a pod failed",
                extra={"pod": self._where(name), "leading": leading, "error": repr(error)},
            )

"""Which task pods sit on a node that stopped reporting: the Node watch behind the classifier's
``node_not_ready_since`` and ``node_gone``.

Left to Kubernetes, a task on a dead node waits the taint manager's 300 s toleration, then stays
Terminating for ever, because no kubelet confirms the deletion (reference/failures.md, entry 8).
The controller therefore watches Nodes itself (list and watch, nothing else): a node whose Ready
condition is False or Unknown has been "not ready since" that condition's ``lastTransitionTime``
(set by the kubelet or the node lifecycle controller, so it survives a controller restart), and
the classifier fails its pods after ``ClassifySettings.node_lost_grace``. A Node seen deleted is
gone at once; one missing from the cache without a deletion seen (deleted while the controller
was down) is not ready from the moment it was first missed.

The cache keeps only what this module and the classifier read of a Node (:func:`node_essentials`):
a real Node carries ``status.images`` (every image on the machine, often tens of KB), its
capacity, addresses and daemon endpoints, none of which decides whether its kubelet is there.

Pods are indexed by node, so a readiness change requeues exactly the runs with pods there.
A pod on such a node is deleted with grace 0: a graceful delete would wait for a kubelet that is
not there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from leoflow.controller.kube.informer import EventType, Informer, InformerOptions
from leoflow.controller.kube.transport import KubeObject, ResourceRef, Transport
from leoflow.controller.podnames import RUN_LABEL
from leoflow.controller.podstatus import PodContext, node_not_ready_since, node_ready

log = logging.getLogger(__name__)

NODES = ResourceRef("", "v1", "nodes")

_KEPT_METADATA = ("name", "uid", "resourceVersion", "labels")


def node_essentials(node: KubeObject) -> KubeObject:
    """What the Node cache keeps: the name and resourceVersion the informer keys and diffs by,
    the uid and labels (small, and what tells a re-created node or a node pool apart), and
    ``status.conditions``, from which ``node_ready`` and ``node_not_ready_since`` judge the node."""
    meta = node.get("metadata") or {}
    status = node.get("status") or {}
    kept: KubeObject = {key: node[key] for key in ("apiVersion", "kind") if key in node}
    kept["metadata"] = {key: meta[key] for key in _KEPT_METADATA if key in meta}
    if "conditions" in status:
        kept["status"] = {"conditions": status["conditions"]}
    return kept


class NodeWatch:
    """A cluster-wide Node informer, an index node -> task pods, and the facts the classifier
    needs about a pod's node. ``requeue(run_key)`` is called for each run with a pod on a node
    whose readiness changed."""

    def __init__(self, transport: Transport, requeue: Callable[[str], None]) -> None:
        # Readiness moves on watch events; a periodic resync would only requeue runs for nothing.
        self.informer = Informer(
            transport, NODES, options=InformerOptions(resync_period=None), transform=node_essentials
        )
        self.informer.add_handler(self.on_node_event)
        self._requeue = requeue
        self._pods: dict[str, dict[str, str]] = {}
        self._node_of: dict[str, str] = {}
        self._deleted: set[str] = set()
        self._missing_since: dict[str, datetime] = {}

    def on_node_event(self, kind: EventType, old: KubeObject | None, new: KubeObject | None) -> None:
        name = str(((new or old or {}).get("metadata") or {}).get("name", ""))
        if kind is EventType.RESYNC:
            return
        if kind is EventType.DELETED:
            if name in self._pods:
                self._deleted.add(name)
        else:
            self._deleted.discard(name)
            self._missing_since.pop(name, None)
            if kind is EventType.MODIFIED and node_ready(old) == node_ready(new):
                return
        runs = set(self._pods.get(name, {}).values())
        if runs:
            log.info("node readiness changed", extra={"node": name, "event": kind.value, "runs": len(runs)})
        for run in runs:
            self._requeue(run)

    def on_pod_event(self, kind: EventType, old: KubeObject | None, new: KubeObject | None) -> None:
        obj = new or old or {}
        meta = obj.get("metadata") or {}
        key = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
        node = str((obj.get("spec") or {}).get("nodeName") or "")
        run = (meta.get("labels") or {}).get(RUN_LABEL)
        if kind is EventType.DELETED or not node or not run:
            self._unindex(key)
            return
        if self._node_of.get(key) != node:
            self._unindex(key)
            self._node_of[key] = node
        self._pods.setdefault(node, {})[key] = f"{meta.get('namespace', '')}/{run}"

    def context(self, pod: Mapping[str, Any], base: PodContext, now: datetime) -> PodContext:
        """``base`` with what is known of ``pod``'s node (nothing before the first LIST)."""
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        if not node or not self.informer.has_synced:
            return base
        if node in self._deleted:
            return replace(base, node_gone=True)
        obj = self.informer.get("", node)
        if obj is None:
            return replace(base, node_not_ready_since=self._missing_since.setdefault(node, now))
        return replace(base, node_not_ready_since=node_not_ready_since(obj, now))

    def unreachable(self, pod: Mapping[str, Any] | None, now: datetime) -> bool:
        """Whether no kubelet will confirm ``pod``'s deletion: its node is gone or not Ready."""
        if pod is None:
            return False
        facts = self.context(pod, PodContext(), now)
        return facts.node_gone or facts.node_not_ready_since is not None

    def _unindex(self, key: str) -> None:
        node = self._node_of.pop(key, None)
        if node is None:
            return
        pods = self._pods.get(node)
        if pods is not None:
            pods.pop(key, None)
            if not pods:
                del self._pods[node]
                # Nothing of ours is left there: forget the node's fate with it.
                self._deleted.discard(node)
                self._missing_since.pop(node, None)

"""KWOK simulated nodes: thousands of pods whose lifecycle is driven by annotations, no kubelet.

KWOK manages only nodes annotated ``kwok.x-k8s.io/node: fake``; they carry the label
``leoflow.io/node-type: kwok`` and a ``kwok.x-k8s.io/node=fake:NoSchedule`` taint so that only pods
that ask for simulation (a toleration plus a node selector) land there and everything else goes to
the real node. The pod stages (``data/kwok-stages.yaml``) document the annotations.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

NODE_TYPE_LABEL = "leoflow.io/node-type"
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_TAINT: dict[str, str] = {"key": KWOK_ANNOTATION, "value": "fake", "effect": "NoSchedule"}
ANNOTATION_PREFIX = "kwok.leoflow.io/"
# Generous so scale benchmarks (10,000 live pods) fit on a handful of nodes.
_CAPACITY = {"cpu": "64", "memory": "512Gi", "pods": "5000"}


def stages_yaml() -> str:
    return resources.files("leoflow.dev").joinpath("data/kwok-stages.yaml").read_text()


def node_name(index: int) -> str:
    return f"kwok-{index}"


def node_manifest(index: int) -> dict[str, Any]:
    name = node_name(index)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                NODE_TYPE_LABEL: "kwok",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "spec": {"taints": [KWOK_TAINT]},
        "status": {"allocatable": dict(_CAPACITY), "capacity": dict(_CAPACITY)},
    }


def simulated_pod_placement() -> dict[str, Any]:
    """The pod spec fragment that sends a pod to the KWOK nodes."""
    return {
        "nodeSelector": {NODE_TYPE_LABEL: "kwok"},
        "tolerations": [{"key": KWOK_ANNOTATION, "operator": "Exists", "effect": "NoSchedule"}],
    }

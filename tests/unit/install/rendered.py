"""Walking rendered objects: every container of every pod template, and RBAC rules by subject."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
MANIFESTS = REPO / "manifests"


def pod_specs(objects: Iterable[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for obj in objects:
        spec = obj.get("spec") or {}
        template = (spec.get("jobTemplate") or {}).get("spec", spec).get("template")
        if obj["kind"] == "Pod":
            yield obj["metadata"]["name"], spec
        elif template is not None:
            yield f"{obj['kind']}/{obj['metadata']['name']}", template["spec"]


def containers(objects: Iterable[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for owner, spec in pod_specs(objects):
        for key in ("initContainers", "containers", "ephemeralContainers"):
            for container in spec.get(key) or []:
                yield f"{owner}:{container['name']}", container


def find(objects: Iterable[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise AssertionError(f"no {kind} {name} in the manifests")

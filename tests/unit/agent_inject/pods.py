"""Pod builders shared by the injection tests."""

from __future__ import annotations

from typing import Any

from leoflow.agent_inject import InjectionSettings

SETTINGS = InjectionSettings(agent_image="registry.local/leoflow-agent:1", controller_addr="10.0.0.1:9443")
AGENT = SETTINGS.agent_path


def pod(*containers: dict[str, Any], labels: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": "p",
        "labels": {"leoflow.io/inject": "true"} if labels is None else labels,
    }
    metadata.update(extra.pop("metadata", {}))
    spec: dict[str, Any] = {"containers": list(containers)}
    spec.update(extra)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def container(name: str = "main", **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox:1.37", **fields}

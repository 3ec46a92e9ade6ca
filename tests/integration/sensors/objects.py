"""Kubernetes objects the sensor tests wait on: a Job that KWOK completes."""

from __future__ import annotations

from typing import Any

from leoflow.dev import kwok


def kwok_job(name: str, succeed_after: str) -> dict[str, Any]:
    """A one-pod Job whose pod KWOK runs and completes ``succeed_after`` after it starts."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": {"kwok.leoflow.io/succeed-after": succeed_after}},
                "spec": {
                    **kwok.simulated_pod_placement(),
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "leoflow.dev/base:1"}],
                },
            },
        },
    }

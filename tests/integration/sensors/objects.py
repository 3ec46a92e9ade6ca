"""Kubernetes objects the sensor tests create and read: a Job that KWOK completes, a run's status."""

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


def run_status(run: dict[str, Any]) -> dict[str, Any]:
    """A DAGRun's status, empty before the controller first wrote it."""
    found: dict[str, Any] = run.get("status") or {}
    return found

"""How a DAGRun keeps the definition it started with.

When a run starts, the controller stores the DAG spec it is about to run in an immutable ConfigMap
named after the DAG and the definition hash, and records the hash in ``DAGRun.status.definitionHash``.
Runs of the same version share the ConfigMap (each run adds itself as an owner, so garbage
collection removes it with the last run). The spec is gzipped JSON in ``binaryData``: a 10,000-task
spec compresses to a few tens of KiB, far below the ConfigMap size limit.
"""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

from leoflow.spec.resources import DagSpec, definition_hash, dump

SNAPSHOT_KEY = "spec.json.gz"


class SnapshotError(ValueError):
    """A definition ConfigMap that is missing its data or does not match its hash."""


def definition_configmap_name(dag: str, hash_: str) -> str:
    return f"{dag}-def-{hash_}"


def snapshot_configmap(dag: str, spec: DagSpec, namespace: str | None = None) -> dict[str, Any]:
    payload = json.dumps(dump(spec), sort_keys=True, separators=(",", ":")).encode()
    metadata: dict[str, Any] = {
        "name": definition_configmap_name(dag, spec.definitionHash),
        "labels": {
            "app.kubernetes.io/managed-by": "leoflow",
            "leoflow.io/dag": dag,
            "leoflow.io/definition-hash": spec.definitionHash,
        },
    }
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "immutable": True,
        "binaryData": {SNAPSHOT_KEY: base64.b64encode(gzip.compress(payload, mtime=0)).decode()},
    }


def load_snapshot(configmap: dict[str, Any]) -> DagSpec:
    try:
        raw = gzip.decompress(base64.b64decode(configmap["binaryData"][SNAPSHOT_KEY]))
        data = json.loads(raw)
    except (KeyError, TypeError, ValueError, OSError) as err:
        raise SnapshotError(f"definition ConfigMap has no readable {SNAPSHOT_KEY}: {err}") from err
    spec = DagSpec.model_validate(data)
    if definition_hash(data) != spec.definitionHash:
        raise SnapshotError(f"definition ConfigMap content does not match its hash {spec.definitionHash}")
    return spec

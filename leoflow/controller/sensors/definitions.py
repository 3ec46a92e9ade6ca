"""Which index a task has in a run's definition, for sensors that wait on another run's task.

``DAGRun.status.taskStates`` is one character per task *index*, and indices belong to one version of
the DAG. A run records its version in ``status.definitionHash`` and the definition itself sits in
an immutable snapshot ConfigMap (``leoflow.spec.snapshots``), so the mapping for a (DAG, hash) never
changes: the engine asks once per version and keeps the answer. A controller that already holds
the definitions can pass its own lookup instead of this one.
"""

from __future__ import annotations

import json
from typing import Any

from leoflow.controller.sensors.apicalls import call, object_path
from leoflow.spec.snapshots import SnapshotError, definition_configmap_name, load_snapshot


class DefinitionUnavailable(Exception):
    pass


class SnapshotTaskIndex:
    def __init__(self, api_client: Any, request_timeout: float = 30.0) -> None:
        self._api = api_client
        self._timeout = request_timeout

    async def __call__(self, namespace: str, dag: str, definition_hash: str) -> dict[str, int]:
        name = definition_configmap_name(dag, definition_hash)
        path = object_path("configmaps", namespace, name)
        status, raw = await call(self._api, "GET", path, request_timeout=self._timeout)
        if status != 200:
            raise DefinitionUnavailable(f"definition ConfigMap {namespace}/{name}: HTTP {status}")
        try:
            spec = load_snapshot(json.loads(raw))
        except (SnapshotError, ValueError) as err:
            raise DefinitionUnavailable(f"definition ConfigMap {namespace}/{name}: {err}") from err
        return spec.task_index()

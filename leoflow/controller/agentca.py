"""The agents' trust anchor in every namespace that runs tasks: the ``leoflow-ca`` ConfigMap.

An injected agent verifies the controller's TLS certificate against ``ca.crt`` projected from a
ConfigMap in its pod's own namespace (a projected volume cannot read another namespace). An
install puts the CA in the controller's namespace only, and the projection is optional, so
without a copy the agent cannot verify the controller and every report falls back to the
termination message. So before creating the first task pod in a namespace, the controller
creates the ConfigMap there, or brings an existing one up to date, from its own CA file (the
``ca.crt`` of the Secret it serves agents from: ``--agent-ca-file``). Namespaces done are
remembered with the CA they got; when the file changes (rotation), the next pod created in each
namespace first brings its copy up to date. Copies carry a label, so they can be listed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from leoflow.controller.kube.transport import CONFIGMAPS, KubeObject
from leoflow.controller.kube.writer import MERGE_PATCH, Writer
from leoflow.controller.podnames import MANAGED_BY, MANAGED_BY_LABEL

log = logging.getLogger(__name__)

CA_CONFIGMAP = "leoflow-ca"
CA_KEY = "ca.crt"
CA_COPY_LABEL = "leoflow.io/agent-ca"
"""On every copy the controller made, so ``kubectl get cm -A -l leoflow.io/agent-ca`` lists them."""


def ca_configmap(namespace: str, pem: str, name: str = CA_CONFIGMAP) -> KubeObject:
    """The ConfigMap the agents of ``namespace`` read the controller's CA from."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {CA_COPY_LABEL: "true", MANAGED_BY_LABEL: MANAGED_BY},
        },
        "data": {CA_KEY: pem},
    }


def ca_patch(existing: Mapping[str, Any], pem: str) -> KubeObject | None:
    """The merge patch that makes ``existing`` carry ``pem`` and the copy label, or ``None``."""
    data = existing.get("data") or {}
    labels = (existing.get("metadata") or {}).get("labels") or {}
    if data.get(CA_KEY) == pem and labels.get(CA_COPY_LABEL) == "true":
        return None
    return {"metadata": {"labels": {CA_COPY_LABEL: "true"}}, "data": {CA_KEY: pem}}


class AgentCaDistribution:
    """Copies the CA in ``ca_file`` into task namespaces, once per namespace and CA."""

    def __init__(self, writer: Writer, ca_file: Path, name: str = CA_CONFIGMAP) -> None:
        self.writer = writer
        self.ca_file = ca_file
        self.name = name
        self._done: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._pem: tuple[int, str, str] | None = None
        self._unreadable: str | None = None

    async def ensure(self, namespace: str) -> None:
        """Before a task pod is created in ``namespace``: the ConfigMap there holds the current CA.

        An unreadable CA file is logged (once per error) and skipped: the agent's fallback still
        gets results home, and refusing every pod would stop all work for a certificate problem.
        API errors propagate, so the pod create is retried with the reconcile.
        """
        current = self._read()
        if current is None:
            return
        pem, digest = current
        if self._done.get(namespace) == digest:
            return
        lock = self._locks.setdefault(namespace, asyncio.Lock())
        async with lock:
            if self._done.get(namespace) == digest:
                return
            created = await self.writer.create(CONFIGMAPS, namespace, ca_configmap(namespace, pem, self.name))
            patch = None if created.created else ca_patch(created.object, pem)
            if patch is not None:
                await self.writer.call(
                    "patch",
                    "PATCH",
                    CONFIGMAPS.path(namespace, self.name),
                    body=patch,
                    content_type=MERGE_PATCH,
                )
            self._done[namespace] = digest
            how = "created" if created.created else ("updated" if patch is not None else "current")
            log.info("agent CA copied", extra={"namespace": namespace, "configmap": self.name, "result": how})

    def _read(self) -> tuple[str, str] | None:
        """The CA PEM and its digest, re-read only when the file's mtime changes."""
        try:
            mtime = self.ca_file.stat().st_mtime_ns
            if self._pem is None or self._pem[0] != mtime:
                pem = self.ca_file.read_text()
                if "-----BEGIN CERTIFICATE-----" not in pem:
                    raise ValueError("no PEM certificate in it")
                self._pem = (mtime, pem, hashlib.sha256(pem.encode()).hexdigest())
        except (OSError, ValueError) as exc:
            error = f"{self.ca_file}: {exc}"
            if error != self._unreadable:
                log.warning("agent CA not copied: cannot read the CA file", extra={"error": error})
                self._unreadable = error
            return None
        self._unreadable = None
        return self._pem[1], self._pem[2]

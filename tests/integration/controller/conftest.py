"""An in-process controller scoped to the test's namespace, DAGs compiled from leoflow.yaml text,
and KWOK annotations per task and attempt so simulated pods succeed, fail or stall on cue."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from leoflow.controller.app import Controller, ControllerSettings
from leoflow.controller.podnames import ATTEMPT_LABEL, TASK_LABEL
from leoflow.controller.reconcile import ReconcileSettings
from leoflow.dev import cluster as dev_cluster
from leoflow.dev import images
from leoflow.dev.kwok import simulated_pod_placement
from leoflow.dev.testing import ClusterHandle
from leoflow.spec.compiler import compile_text

SUCCEED = {"kwok.leoflow.io/succeed-after": "200ms"}


def fail(reason: str = "Error", exit_code: int = 1, after: str = "200ms") -> dict[str, str]:
    return {
        "kwok.leoflow.io/fail-after": after,
        "kwok.leoflow.io/fail-reason": reason,
        "kwok.leoflow.io/exit-code": str(exit_code),
    }


@dataclass
class KwokScript:
    """Annotations by task name, and optionally by attempt (``{"t": {1: fail(), 2: SUCCEED}}``);
    tasks not named succeed. Tests change it while a run goes on."""

    tasks: dict[str, Mapping[str, str] | Mapping[int, Mapping[str, str]]] = field(default_factory=dict)

    def __call__(self, pod: Mapping[str, Any]) -> Mapping[str, str]:
        labels = pod["metadata"]["labels"]
        rule = self.tasks.get(labels[TASK_LABEL])
        if rule is None:
            return SUCCEED
        by_attempt = {k: v for k, v in rule.items() if isinstance(k, int)}
        if by_attempt:
            return dict(by_attempt.get(int(labels[ATTEMPT_LABEL]), SUCCEED))
        return {str(k): str(v) for k, v in rule.items()}


def install_crds(cluster: ClusterHandle) -> None:
    dev_cluster.install_crds(cluster.state)


@pytest.fixture(scope="module")
def crds(cluster: ClusterHandle) -> Iterator[ClusterHandle]:
    install_crds(cluster)
    yield cluster


def dag_yaml(
    name: str,
    tasks: str,
    *,
    defaults: str = "",
    image: str = "registry.local/app:1",
    placement: Mapping[str, Any] | None = None,
) -> str:
    """A leoflow.yaml for the KWOK nodes, or for ``placement`` (nodeSelector, tolerations)."""
    where = simulated_pod_placement() if placement is None else placement
    parts = [f"{key}: {json.dumps(value)}" for key, value in where.items()]
    if defaults:
        parts.append(defaults)
    return f"dag: {name}\nimage: {json.dumps(image)}\ndefaults: {{{', '.join(parts)}}}\ntasks:\n{tasks}"


REAL_NODE = {"nodeSelector": {"leoflow.io/node-type": "real"}}


def real_node_dag_yaml(name: str, tasks: str, *, defaults: str = "") -> str:
    """A leoflow.yaml whose pods truly run on the real node, from the imported base image."""
    return dag_yaml(name, tasks, defaults=defaults, image=images.BASE_IMAGE, placement=REAL_NODE)


def run_status(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A DAGRun's status (``{}`` before the controller wrote one)."""
    status: dict[str, Any] = obj.get("status") or {}
    return status


class Harness:
    def __init__(self, cluster: ClusterHandle, namespace: str, kube: Any) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.kube = kube
        self.script = KwokScript()
        self.controller: Controller | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        done = await asyncio.to_thread(
            self.cluster.kubectl, *args, "-n", self.namespace, input=input, check=check
        )
        return done.stdout

    async def apply_dag(self, text: str) -> str:
        compiled = compile_text(text)
        await self.kubectl("apply", "-f", "-", input=json.dumps(compiled.resource(self.namespace)))
        return compiled.spec.definitionHash

    async def create_run(self, name: str, dag: str, params: Mapping[str, str] | None = None) -> None:
        run = {
            "apiVersion": "leoflow.io/v1alpha1",
            "kind": "DAGRun",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {"dagName": dag, "params": dict(params or {})},
        }
        await self.kubectl("create", "-f", "-", input=json.dumps(run))

    async def start(
        self, *, cron: bool = True, controller: Mapping[str, Any] | None = None, **overrides: Any
    ) -> Controller:
        """``controller``: ControllerSettings fields to override; ``overrides``: ReconcileSettings fields."""
        reconcile = ReconcileSettings(pod_annotations=self.script, **overrides)
        settings = ControllerSettings(
            namespace=self.namespace,
            leader_elect=False,
            workers=4,
            cron=cron,
            cron_period=0.5,
            reconcile=reconcile,
            **(controller or {}),
        )
        self.controller = Controller(self.kube, settings, registry=CollectorRegistry())
        self._stop = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self.controller.run(self._stop))
        return self.controller

    async def stop(self) -> None:
        if self._stop is not None and self._task is not None:
            self._stop.set()
            await asyncio.wait_for(self._task, 30)
        self._task = None

    async def release_pods(self) -> None:
        """Deletes the namespace's runs while the controller still runs, so it drops the result
        finalizers and no pod is left Terminating when the namespace goes."""
        if self._task is None or self._task.done():
            return
        await self.kubectl("delete", "dagruns", "--all", "--wait=false", check=False)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            out = await self.kubectl("get", "pods", "-o", "name", check=False)
            if not out.strip():
                return
            await asyncio.sleep(0.5)

    async def kill(self) -> None:
        """Like SIGKILL: the controller's tasks die wherever they are, nothing is flushed."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def run_object(self, name: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(await self.kubectl("get", "dagrun", name, "-o", "json"))
        return data

    async def wait_run(
        self, name: str, until: Callable[[dict[str, Any]], bool], within: float = 60
    ) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            obj = await self.run_object(name)
            if until(obj):
                return obj
            if time.monotonic() > deadline:
                raise AssertionError(f"run {name} never got there; last status: {obj.get('status')}")
            await asyncio.sleep(0.3)

    async def wait_phase(self, name: str, phase: str, within: float = 60) -> dict[str, Any]:
        return await self.wait_run(name, lambda o: (o.get("status") or {}).get("phase") == phase, within)

    async def pods(self, run: str) -> list[dict[str, Any]]:
        out = await self.kubectl("get", "pods", "-l", f"leoflow.io/run={run}", "-o", "json")
        items: list[dict[str, Any]] = json.loads(out)["items"]
        return items

    async def wait_pod(
        self, run: str, matches: Callable[[dict[str, Any]], bool], what: str, within: float = 60
    ) -> dict[str, Any]:
        """The first pod of ``run`` that ``matches``; fails naming ``what`` was awaited."""
        deadline = time.monotonic() + within
        while True:
            pods = await self.pods(run)
            for pod in pods:
                if matches(pod):
                    return pod
            if time.monotonic() > deadline:
                names = [p["metadata"]["name"] for p in pods]
                raise AssertionError(f"no pod of {run} {what} within {within:g}s; its pods: {names}")
            await asyncio.sleep(0.2)

    async def wait_until_no_pods(self, run: str, within: float = 30) -> None:
        deadline = time.monotonic() + within
        while pods := await self.pods(run):
            if time.monotonic() > deadline:
                names = [p["metadata"]["name"] for p in pods]
                raise AssertionError(f"pods of {run} still exist: {names}")
            await asyncio.sleep(0.3)

    async def events(self, run: str) -> list[dict[str, Any]]:
        out = await self.kubectl(
            "get", "events", "--field-selector", f"involvedObject.name={run}", "-o", "json"
        )
        items: list[dict[str, Any]] = json.loads(out)["items"]
        return items


@pytest.fixture
async def harness(crds: ClusterHandle, namespace: str, kube: Any) -> AsyncIterator[Harness]:
    h = Harness(crds, namespace, kube)
    try:
        yield h
    finally:
        await h.release_pods()
        await h.stop()

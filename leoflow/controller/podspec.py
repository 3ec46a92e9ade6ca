"""Build the pod for one task attempt from the compiled DAG: pure, deterministic.

The controller never merges defaults: the task's profile already holds the resolved image,
resources, placement, env and pod labels and annotations. What happens here is templating (params,
upstream outputs, ``logical_date``, ``run_id``, ``item``) through the compiler's own grammar
(``leoflow.spec.templates``, no code execution), identity (name, labels, the attempt annotation,
an owner reference to the DAGRun) and the safety nets: ``restartPolicy: Never`` so a failure is
final for the attempt, and ``activeDeadlineSeconds`` so the kubelet stops a task that overruns its
timeout even while the controller is down.

The DAG's own labels and annotations go in first and Leoflow's over them; the compiler refuses the
keys Leoflow sets, so none is ever overwritten. The controller's ``--pod-annotation`` flag is
applied later, at create time (``reconcile``), over the DAG's; it refuses Leoflow's keys too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leoflow.controller.podnames import (
    ATTEMPT_ANNOTATION,
    DEFINITION_ANNOTATION,
    MAIN_CONTAINER,
    AttemptKey,
    attempt_pod_name,
    pod_labels,
)
from leoflow.spec.resources import API_VERSION, CompiledTask, DagSpec, EnvVar, Profile, dump
from leoflow.spec.templates import RenderContext, TemplateError, render

WAIT_START_ENV = "LEOFLOW_WAIT_START"
"""The agent's ``--wait-start``: hold the command until the controller's WaitStart answer."""


class PodSpecError(ValueError):
    """The pod for an attempt cannot be built (a template that does not resolve at run time)."""


@dataclass(frozen=True)
class RunIdentity:
    """The DAGRun a pod belongs to: what the owner reference and the labels need."""

    dag: str
    name: str
    namespace: str
    uid: str


@dataclass(frozen=True)
class PodBuildSettings:
    """``deadline_margin_seconds`` covers what ``activeDeadlineSeconds`` counts besides the task:
    image pull and init time, measured by the kubelet from the pod's start."""

    deadline_margin_seconds: int = 600


def build_pod(
    dag: DagSpec,
    run: RunIdentity,
    task_index: int,
    *,
    attempt: int,
    item: int | None,
    context: RenderContext,
    settings: PodBuildSettings | None = None,
    prestart: bool = False,
) -> dict[str, Any]:
    """The v1 Pod (JSON shape) for ``attempt`` of ``dag.tasks[task_index]`` (fan-out ``item``).

    ``prestart``: the pod is created while the upstreams still run; its agent holds the command
    until the controller releases it, and it gets no ``activeDeadlineSeconds`` (how long it waits
    is unknown; the controller's own timeout still bounds the run once it started)."""
    settings = settings or PodBuildSettings()
    task = dag.tasks[task_index]
    if task.command is None:
        raise PodSpecError(f"task '{task.name}' is a sensor and runs no pod")
    profile = dag.profiles[task.profile]
    key = AttemptKey(run.uid, task.name, item, attempt)
    container: dict[str, Any] = {
        "name": MAIN_CONTAINER,
        "image": profile.image,
        "command": [_render(task, "command", arg, context) for arg in task.command],
    }
    if task.args is not None:
        container["args"] = [_render(task, "args", arg, context) for arg in task.args]
    env = [_env(task, var, context) for var in [*profile.env, *task.env]]
    if prestart:
        env.append({"name": WAIT_START_ENV, "value": "true"})
    if env:
        container["env"] = env
    resources = dump(profile.resources)
    if resources:
        container["resources"] = resources
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [container],
    }
    _placement(spec, profile)
    if profile.timeoutSeconds is not None and not prestart:
        spec["activeDeadlineSeconds"] = profile.timeoutSeconds + settings.deadline_margin_seconds
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": attempt_pod_name(run.name, key),
            "namespace": run.namespace,
            "labels": {**profile.podLabels, **pod_labels(run.dag, run.name, key)},
            "annotations": {
                **profile.podAnnotations,
                ATTEMPT_ANNOTATION: key.annotation(),
                DEFINITION_ANNOTATION: dag.definitionHash,
            },
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "DAGRun",
                    "name": run.name,
                    "uid": run.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }


def _placement(spec: dict[str, Any], profile: Profile) -> None:
    if profile.nodeSelector:
        spec["nodeSelector"] = dict(profile.nodeSelector)
    if profile.tolerations:
        spec["tolerations"] = [dump(t) for t in profile.tolerations]
    if profile.affinity:
        spec["affinity"] = profile.affinity
    if profile.serviceAccountName:
        spec["serviceAccountName"] = profile.serviceAccountName


def _env(task: CompiledTask, var: EnvVar, context: RenderContext) -> dict[str, Any]:
    out = dump(var)
    if var.value is not None:
        out["value"] = _render(task, f"env {var.name}", var.value, context)
    return out


def _render(task: CompiledTask, where: str, text: str, context: RenderContext) -> str:
    try:
        return render(text, context)
    except TemplateError as exc:
        raise PodSpecError(f"task '{task.name}' {where}: {exc}") from None

"""The mutation itself: what an opted-in pod gains so the agent wraps its containers.

The pod gains an emptyDir the agent binary is copied into by an init container placed first
(``leoflow-agent install DIR``), a projected volume with a ``leoflow``-audience token, the
controller's CA and the pod's own name, namespace, uid and labels (one downwardAPI source), an
emptyDir for small outputs, and for each selected container a command of the form
``DIR/leoflow-agent run -- <original command and args>`` plus the little env the agent cannot
find in the pod: the controller's address and the container's name. The agent reads the rest from
those files at constant paths (agent/internal/podlayout): the API server stores every byte of the
mutation, once per wrapped container for env, and storing the mutated pod was most of the latency
the webhook added to pod creation (docs/webhook.md, Performance).
A container whose image already holds the agent (``leoflow.io/agent-path``, or the settings'
``agent_in_image`` index, see ``agentpath``) is wrapped with that path instead; the copy's init
container and emptyDir are added only when some selected container still needs them.

Every step is idempotent on its own (added by name only when absent, a container whose command
already starts with the agent is left alone), and the ``leoflow.io/agent-version`` annotation
records that a pod has been handled, so mutating a mutated pod changes nothing. The JSON Patch is
derived by diffing the pod before and after (the approach of Istio and kopf, see ``patches``),
which gets RFC 6901 escaping and absent arrays and maps right by construction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from leoflow.agent_inject import agentpath, entrypoints, names, patches
from leoflow.agent_inject.fragments import RESOURCES, Fragments
from leoflow.agent_inject.settings import InjectionSettings

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class Injection:
    """The pod after mutation and the JSON Patch from the pod as received (empty: untouched)."""

    pod: JsonObject
    patch: list[JsonObject]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Denial:
    """The pod opted in but cannot be injected; ``message`` tells the user what to change."""

    message: str


class _Refusal(Exception):
    pass


def wants_injection(pod: Mapping[str, Any]) -> bool:
    metadata = pod.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, dict) else None
    return isinstance(labels, dict) and labels.get(names.INJECT_LABEL) == "true"


def inject(pod: Mapping[str, Any], settings: InjectionSettings) -> Injection | Denial:
    """Mutates a copy of ``pod``; pods without ``leoflow.io/inject: "true"`` come back unchanged.
    ``pod`` is never written. The mutated pod shares with it every part the mutation leaves alone,
    and with every other mutated pod what it adds (``fragments``): read it, never write into it."""
    original = dict(pod)
    metadata = original.get("metadata")
    if isinstance(metadata, dict) and "managedFields" in metadata:
        # Large and irrelevant to us; Istio drops it before diffing for the same reason.
        original["metadata"] = {k: v for k, v in metadata.items() if k != "managedFields"}
    if not wants_injection(original):
        return Injection(original, [])
    handled = _already_injected(original, settings)
    if handled is not None:
        # Before any copy: a copied pod would be diffed whole, for an empty patch.
        return Injection(original, [], tuple(handled))
    mutated = _writable(original)
    try:
        warnings = _mutate(mutated, settings)
    except _Refusal as refusal:
        return Denial(str(refusal))
    patch = patches.diff(original, mutated)
    return Injection(mutated, patch, tuple(warnings))


def _writable(pod: JsonObject) -> JsonObject:
    """A copy of the pod in which the mutation may write: copies of what it writes (the metadata
    and spec objects, each container with its env and mount lists, the init container and volume
    lists), and the other parts shared. Shared parts are the same objects on both sides, so the
    diff skips them by identity: copying and walking the status and the rest of the spec was half
    the mutation's time (docs/webhook.md, Performance)."""
    mutated = dict(pod)
    metadata = mutated.get("metadata")
    if isinstance(metadata, dict):
        # Its annotations are replaced whole, never written in place.
        mutated["metadata"] = dict(metadata)
    spec = mutated.get("spec")
    if isinstance(spec, dict):
        spec = mutated["spec"] = dict(spec)
        if isinstance(spec.get("containers"), list):
            spec["containers"] = [_writable_container(container) for container in spec["containers"]]
        _copy_lists(spec, ("initContainers", "volumes"))
    return mutated


def _writable_container(container: Any) -> Any:
    """A container the mutation may write: the object and its env and mount lists copied, each
    env entry and mount shared (``_equip`` replaces an entry rather than writing into it)."""
    if not isinstance(container, dict):
        return container
    copy = dict(container)
    _copy_lists(copy, ("env", "volumeMounts"))
    return copy


def _declared_resources(spec: JsonObject) -> frozenset[str]:
    """Which of the resources the init container may declare some container of the pod declares,
    in its requests or its limits (its own entry in either list is not there yet)."""
    declared: set[str] = set()
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or ():
            resources = container.get("resources") if isinstance(container, dict) else None
            if isinstance(resources, dict):
                for bound in ("requests", "limits"):
                    amounts = resources.get(bound)
                    if isinstance(amounts, dict):
                        declared.update(RESOURCES.intersection(amounts))
    return frozenset(declared)


def _copy_lists(obj: JsonObject, keys: tuple[str, ...]) -> None:
    """Replaces the lists under ``keys`` with copies, so writing to them leaves the originals."""
    for key in keys:
        if isinstance(obj.get(key), list):
            obj[key] = list(obj[key])


def _object(parent: JsonObject, key: str, where: str) -> JsonObject:
    value = parent.get(key)
    if value is None:
        value = parent[key] = {}
    if not isinstance(value, dict):
        raise _Refusal(f"{where} must be an object")
    return value


def _list(parent: JsonObject, key: str, where: str) -> list[Any]:
    value = parent.get(key)
    if value is None:
        value = parent[key] = []
    if not isinstance(value, list):
        raise _Refusal(f"{where} must be a list")
    return value


def _strings(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Refusal(f"{where} must be a list of strings")
    return value


def _named(items: list[Any], where: str) -> dict[str, JsonObject]:
    by_name: dict[str, JsonObject] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise _Refusal(f"{where}[{i}] must be an object with a name")
        by_name[item["name"]] = item
    return by_name


def _already_injected(pod: JsonObject, settings: InjectionSettings) -> list[str] | None:
    """The warnings for a pod that already carries the agent (left as it is), or None for a pod
    still to inject, or one whose metadata ``_mutate`` must refuse."""
    metadata = pod.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    recorded = annotations.get(names.VERSION_ANNOTATION) if isinstance(annotations, dict) else None
    if recorded is None:
        return None
    if recorded != settings.agent_version:
        return [f"pod already carries the leoflow agent {recorded}; left as it is"]
    return []


def _mutate(pod: JsonObject, settings: InjectionSettings) -> list[str]:
    metadata = _object(pod, "metadata", "metadata")
    annotations = metadata.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise _Refusal("metadata.annotations must be an object")

    spec = _object(pod, "spec", "spec")
    containers = _list(spec, "containers", "spec.containers")
    by_name = _named(containers, "spec.containers")
    if not by_name:
        raise _Refusal("spec.containers is empty: there is nothing for the agent to wrap")
    selected = _selected(annotations, by_name)
    try:
        annotation = entrypoints.parse_annotation(_annotation_text(annotations))
    except entrypoints.EntrypointAnnotationError as err:
        raise _Refusal(str(err)) from None
    in_image = _agent_path_annotation(annotations, settings)

    warnings: list[str] = []
    missing: list[str] = []
    wrapped: dict[str, list[str]] = {}
    agent_paths: dict[str, str] = {}
    for name in selected:
        container = by_name[name]
        command = _strings(container.get("command"), f'container "{name}" command')
        args = _strings(container.get("args"), f'container "{name}" args')
        image = container.get("image")
        image = image if isinstance(image, str) else ""
        agent = in_image or agentpath.for_image(settings.agent_in_image, image) or settings.agent_path
        agent_paths[name] = agent
        if command[:1] == [agent]:
            continue
        resolved = entrypoints.resolve(
            name=name,
            image=image,
            command=command,
            args=args,
            annotation=annotation,
            index=settings.image_entrypoints,
        )
        if resolved is None:
            missing.append(entrypoints.missing_command_message(name, image))
            continue
        if resolved.source == "image-index":
            warnings.append(f'container "{name}": command taken from the image index entry for "{image}"')
        wrapped[name] = [agent, "run", "--", *resolved.argv]
    if missing:
        raise _Refusal("; ".join(missing))

    for name, argv in wrapped.items():
        container = by_name[name]
        container["command"] = argv
        container.pop("args", None)
    copied = any(agent == settings.agent_path for agent in agent_paths.values())
    fragments = settings.fragments
    for name in selected:
        warnings.extend(
            _equip(by_name[name], name, fragments, copied=agent_paths[name] == settings.agent_path)
        )

    if copied:
        init_containers = _list(spec, "initContainers", "spec.initContainers")
        if names.INIT_CONTAINER not in _named(init_containers, "spec.initContainers"):
            init_containers.insert(0, fragments.init_containers[_declared_resources(spec)])
    volumes = _list(spec, "volumes", "spec.volumes")
    present = _named(volumes, "spec.volumes")
    for volume in fragments.volumes[copied]:
        if volume["name"] not in present:
            volumes.append(volume)

    labels = metadata.get("labels") or {}
    absent = [label for _, label in names.IDENTITY_LABELS if label not in labels]
    if absent:
        warnings.append(f"labels {', '.join(absent)} are absent: the agent reports without that identity")
    metadata["annotations"] = {**annotations, names.VERSION_ANNOTATION: settings.agent_version}
    return warnings


def _agent_path_annotation(annotations: JsonObject, settings: InjectionSettings) -> str | None:
    """The pod's own word that its images hold the agent, checked before anything trusts it."""
    if names.AGENT_PATH_ANNOTATION not in annotations:
        return None
    raw = annotations[names.AGENT_PATH_ANNOTATION]
    message = agentpath.annotation_problem(raw, settings.mounted_dirs)
    if message is not None:
        raise _Refusal(message)
    path: str = raw
    return path


def _annotation_text(annotations: JsonObject) -> str | None:
    raw = annotations.get(names.ENTRYPOINT_ANNOTATION)
    return raw if isinstance(raw, str) else None


def _selected(annotations: JsonObject, by_name: dict[str, JsonObject]) -> list[str]:
    raw = annotations.get(names.CONTAINERS_ANNOTATION)
    if raw is None:
        return list(by_name)
    chosen = [part.strip() for part in str(raw).split(",") if part.strip()]
    if not chosen:
        raise _Refusal(
            f"annotation {names.CONTAINERS_ANNOTATION} is empty: list container names (a,b), "
            "or remove it to wrap every container"
        )
    unknown = [name for name in chosen if name not in by_name]
    if unknown:
        raise _Refusal(
            f"annotation {names.CONTAINERS_ANNOTATION} names {', '.join(unknown)}, "
            f"but the pod's containers are {', '.join(by_name)}"
        )
    return list(dict.fromkeys(chosen))


def _equip(container: JsonObject, name: str, fragments: Fragments, *, copied: bool) -> list[str]:
    """Adds the agent's env and mounts (the binary's volume only when ``copied``).

    A user's own value for one of our env names is replaced. The agent prefers env to the pod's
    files, so a user's variable naming what the agent takes from the pod (``LEOFLOW_TASK``, ...)
    would override the pod's word: a value other than the pod's own is removed. The pod's own
    value (a pod injected by an earlier version, which set these as env) is left as it is.
    """
    warnings: list[str] = []
    env = _list(container, "env", f'container "{name}" env')
    positions = _named(env, f'container "{name}" env')
    derived = fragments.derived_env
    overriding = [var for var in env if var["name"] in derived and var != derived[var["name"]]]
    for var in overriding:
        warnings.append(f'container "{name}": env {var["name"]} removed: the agent takes it from the pod')
    if overriding:
        # The names we set are not among the derived ones, so ``positions`` still holds for them.
        env[:] = [var for var in env if all(var is not other for other in overriding)]
    for var in (*fragments.agent_env, {"name": names.CONTAINER_ENV, "value": name}):
        existing = positions.get(var["name"])
        if existing is None:
            env.append(var)
        elif existing != var:
            warnings.append(f'container "{name}": env {var["name"]} replaced by the agent\'s value')
            env[next(i for i, other in enumerate(env) if other is existing)] = var

    mounts = _list(container, "volumeMounts", f'container "{name}" volumeMounts')
    by_mount_name = _named(mounts, f'container "{name}" volumeMounts')
    paths = {m["mountPath"]: m["name"] for m in mounts if isinstance(m.get("mountPath"), str)}
    for mount in fragments.mounts[copied]:
        if mount["name"] in by_mount_name:
            continue
        taken_by = paths.get(mount["mountPath"])
        if taken_by is not None:
            raise _Refusal(
                f'container "{name}" already mounts volume "{taken_by}" at {mount["mountPath"]}, '
                "where the agent needs its own; move that mount"
            )
        mounts.append(mount)
    return warnings

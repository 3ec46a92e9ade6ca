"""What the mutation adds to a pod, built once per settings rather than once per review.

The init container, the volumes, the mounts and the env the agent needs depend on the
installation's settings alone (the init container's resources also on which of CPU and memory the
pod declares: one variant per subset, built up front). Built per review they were a third of the
mutation's work, and on the admission path that work competes with the API server for its cores
(docs/webhook.md, Performance). :class:`Fragments` builds them once;
``InjectionSettings.fragments`` caches it.

Every mutated pod shares these objects, so nothing may write into them: the mutation inserts and
appends them into lists it copied, and a mutated pod is read, never written (``inject`` says so).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations
from typing import TYPE_CHECKING, Any

from leoflow.agent_inject import names

if TYPE_CHECKING:
    from leoflow.agent_inject.settings import InjectionSettings

JsonObject = dict[str, Any]

# What the copy needs (a few ms of CPU), as equal requests and limits so a Guaranteed pod stays
# Guaranteed. Declared only for the resources some container of the pod declares (see
# ``Fragments.init_containers``).
_INIT_RESOURCES: Mapping[str, str] = {"cpu": "100m", "memory": "32Mi"}
RESOURCES = frozenset(_INIT_RESOURCES)
# The agent image holds one static binary: it runs as any user, and the emptyDir is world-writable.
_INIT_SECURITY_CONTEXT: JsonObject = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


@dataclass(frozen=True)
class Fragments:
    """The parts of an injected pod that only the settings decide.

    ``init_containers`` is keyed by the resources (of ``RESOURCES``) the pod's own containers
    declare: the init container declares those and no others. So the injection never changes the
    pod's QoS class: a BestEffort pod stays BestEffort and reserves nothing on its node for the
    copy, a Guaranteed one stays Guaranteed, and a namespace whose ResourceQuota demands a resource
    of every container finds it declared.

    ``volumes`` and ``mounts`` are keyed by whether the agent binary is copied into the pod (some
    selected container's image does not hold it): only then do the emptyDir for the binary and its
    mount belong. ``agent_env`` is the env every wrapped container gets before its own name
    (``LEOFLOW_CONTAINER``, added per container); ``derived_env`` is what the agent takes from the
    pod itself, by variable name.
    """

    init_containers: Mapping[frozenset[str], JsonObject]
    volumes: Mapping[bool, tuple[JsonObject, ...]]
    mounts: Mapping[bool, tuple[JsonObject, ...]]
    agent_env: tuple[JsonObject, ...]
    derived_env: Mapping[str, JsonObject]

    @classmethod
    def of(cls, settings: InjectionSettings) -> Fragments:
        return cls(
            init_containers={
                declared: _init_container(settings, declared)
                for size in range(len(RESOURCES) + 1)
                for declared in map(frozenset, combinations(sorted(RESOURCES), size))
            },
            volumes={copied: _volumes(settings, copied=copied) for copied in (False, True)},
            mounts={copied: _mounts(settings, copied=copied) for copied in (False, True)},
            agent_env=_agent_env(settings),
            derived_env=_derived_env(settings),
        )


def _agent_env(settings: InjectionSettings) -> tuple[JsonObject, ...]:
    """The env the agent cannot find in the pod's files; a directory only where it is not the
    agent's default."""
    env: list[JsonObject] = [{"name": names.CONTROLLER_ADDR_ENV, "value": settings.controller_addr}]
    if settings.identity_dir != names.IDENTITY_DIR:
        env.append({"name": names.IDENTITY_DIR_ENV, "value": settings.identity_dir})
    if settings.outputs_dir != names.OUTPUTS_DIR:
        env.append({"name": names.OUTPUTS_DIR_ENV, "value": settings.outputs_dir})
    return tuple(env)


def _derived_env(settings: InjectionSettings) -> dict[str, JsonObject]:
    """What the agent takes from the pod itself, as the env an earlier version of this mutation
    set for it (the API server defaults ``fieldRef.apiVersion``, so reviews carry it)."""

    def field(path: str) -> JsonObject:
        return {"valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}

    env = [{"name": var, **field(path)} for var, _, path in names.POD_FIELDS]
    env += [{"name": var, **field(f"metadata.labels['{label}']")} for var, label in names.IDENTITY_LABELS]
    env.append({"name": names.TOKEN_FILE_ENV, "value": settings.token_file})
    if settings.ca_configmap is not None:
        # Without a CA ConfigMap a container's own CA bundle is its business, as it always was.
        env.append({"name": names.CA_FILE_ENV, "value": settings.ca_file})
    if settings.outputs_dir == names.OUTPUTS_DIR:
        env.append({"name": names.OUTPUTS_DIR_ENV, "value": settings.outputs_dir})
    return {var["name"]: var for var in env}


def _mounts(settings: InjectionSettings, *, copied: bool) -> tuple[JsonObject, ...]:
    binary = [{"name": names.BIN_VOLUME, "mountPath": settings.bin_dir, "readOnly": True}] if copied else []
    return (
        *binary,
        {"name": names.IDENTITY_VOLUME, "mountPath": settings.identity_dir, "readOnly": True},
        {"name": names.OUTPUTS_VOLUME, "mountPath": settings.outputs_dir},
    )


def _init_container(settings: InjectionSettings, declared: frozenset[str]) -> JsonObject:
    container: JsonObject = {
        "name": names.INIT_CONTAINER,
        "image": settings.agent_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": [names.IMAGE_AGENT_PATH, "install", settings.bin_dir],
        "volumeMounts": [{"name": names.BIN_VOLUME, "mountPath": settings.bin_dir}],
        "securityContext": _INIT_SECURITY_CONTEXT,
        # The install step says why it failed on stderr; without this the pod status (and so
        # the task's failure message) carries only the exit code.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if declared:
        amounts = {name: amount for name, amount in _INIT_RESOURCES.items() if name in declared}
        container["resources"] = {"requests": amounts, "limits": dict(amounts)}
    return container


def _volumes(settings: InjectionSettings, *, copied: bool) -> tuple[JsonObject, ...]:
    sources: list[JsonObject] = [
        {
            "serviceAccountToken": {
                "audience": names.TOKEN_AUDIENCE,
                "expirationSeconds": settings.token_expiry_seconds,
                "path": names.TOKEN_FILE,
            }
        },
        # Once per pod, where env would be once per wrapped container. ``apiVersion`` is left
        # for the API server to default.
        {
            "downwardAPI": {
                "items": [
                    {"path": path, "fieldRef": {"fieldPath": field}} for path, field in names.DOWNWARD_FILES
                ]
            }
        },
    ]
    if settings.ca_configmap is not None:
        sources.append(
            {
                "configMap": {
                    "name": settings.ca_configmap,
                    "items": [{"key": names.CA_FILE, "path": names.CA_FILE}],
                    "optional": True,
                }
            }
        )
    binary = [{"name": names.BIN_VOLUME, "emptyDir": {}}] if copied else []
    return (
        *binary,
        {"name": names.IDENTITY_VOLUME, "projected": {"sources": sources}},
        {"name": names.OUTPUTS_VOLUME, "emptyDir": {}},
    )

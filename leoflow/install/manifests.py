"""Reading the kustomize base in ``manifests/`` as objects, the way ``kubectl kustomize`` would.

The base is kept to the part of kustomize that needs no kustomize to evaluate: a list of
``resources`` (files, or directories holding a ``kustomization.yaml`` of the same form) and a
``namespace``. Anything else in a kustomization is refused with the field's name rather than
silently ignored, so ``leoflow install --print`` and ``kubectl apply -k`` cannot drift apart.
Objects come out in kustomize's legacy order (namespaces and CRDs first, webhook configurations
last), which is also an order ``kubectl apply -f -`` can apply in one pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

import leoflow

KUSTOMIZATION = "kustomization.yaml"
SUPPORTED_FIELDS = frozenset({"apiVersion", "kind", "namespace", "resources"})

# kustomize's legacy ordering (api/resid + the legacy sort transformer): these kinds first, in
# this order, these last; every other kind in between, by group/version/kind.
ORDER_FIRST = (
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
)
ORDER_LAST = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")

# Kinds in the base that are cluster-scoped; a namespace is set on every other object.
CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "PriorityClass",
        "StorageClass",
        "PersistentVolume",
    }
)

Manifest = dict[str, Any]


class ManifestError(ValueError):
    """The manifests cannot be read; the message names the file and what is wrong."""


def default_directory() -> Path | None:
    """``manifests/`` next to the package in a source checkout, if it is there."""
    candidate = Path(leoflow.__file__).resolve().parent.parent / "manifests"
    return candidate if (candidate / KUSTOMIZATION).is_file() else None


def _read_yaml_documents(path: Path) -> list[Manifest]:
    try:
        documents = list(yaml.safe_load_all(path.read_text()))
    except OSError as err:
        raise ManifestError(f"{path}: cannot read: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ManifestError(f"{path}: not valid YAML: {err}") from None
    objects: list[Manifest] = []
    for index, document in enumerate(documents):
        if document is None:
            continue
        if not isinstance(document, dict) or not document.get("kind") or not document.get("apiVersion"):
            raise ManifestError(f"{path}: document {index + 1} is not a Kubernetes object")
        objects.append(document)
    return objects


def load_kustomization(directory: Path) -> list[Manifest]:
    """Every object of the kustomization in ``directory``, in kustomize's output order."""
    return sort_objects(_load(directory, seen=()))


def _load(directory: Path, seen: tuple[Path, ...]) -> list[Manifest]:
    directory = directory.resolve()
    if directory in seen:
        raise ManifestError(f"{directory}: kustomization includes itself")
    path = directory / KUSTOMIZATION
    if not path.is_file():
        raise ManifestError(f"{directory}: no {KUSTOMIZATION}")
    try:
        kustomization = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ManifestError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(kustomization, dict):
        raise ManifestError(f"{path}: expected a mapping")
    unsupported = sorted(set(kustomization) - SUPPORTED_FIELDS)
    if unsupported:
        raise ManifestError(
            f"{path}: {', '.join(unsupported)} not supported in the base: keep it to resources and "
            "namespace (put anything else in an overlay)"
        )
    resources = kustomization.get("resources") or []
    if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
        raise ManifestError(f"{path}: resources must be a list of paths")
    objects: list[Manifest] = []
    for resource in resources:
        target = directory / resource
        if target.is_dir():
            objects.extend(_load(target, (*seen, directory)))
        elif target.is_file():
            objects.extend(_read_yaml_documents(target))
        else:
            raise ManifestError(f"{path}: resource {resource!r} does not exist")
    namespace = kustomization.get("namespace")
    if namespace is not None:
        if not isinstance(namespace, str) or not namespace:
            raise ManifestError(f"{path}: namespace must be a name")
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj.setdefault("metadata", {})["namespace"] = namespace
    return objects


def _kind_rank(obj: Manifest) -> int:
    kind = obj["kind"]
    if kind in ORDER_FIRST:
        return ORDER_FIRST.index(kind)
    if kind in ORDER_LAST:
        return len(ORDER_FIRST) + 1 + ORDER_LAST.index(kind)
    return len(ORDER_FIRST)


def _group_version(obj: Manifest) -> tuple[str, str]:
    group, _, version = str(obj["apiVersion"]).rpartition("/")
    return group, version


def sort_objects(objects: Iterable[Manifest]) -> list[Manifest]:
    def key(obj: Manifest) -> tuple[int, str, str, str, str, str]:
        metadata = obj.get("metadata") or {}
        group, version = _group_version(obj)
        return (
            _kind_rank(obj),
            group,
            version,
            obj["kind"],
            str(metadata.get("namespace", "")),
            str(metadata.get("name", "")),
        )

    return sorted(objects, key=key)

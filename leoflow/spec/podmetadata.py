"""The labels and annotations a DAG may put on its task pods: Kubernetes syntax and Leoflow's keys.

Checked when the file is compiled, so a bad key is a compile error with a line number rather than
a pod the API server refuses at run time. The syntax rules are the API server's own
(k8s.io/apimachinery ``IsQualifiedName``, ``IsValidLabelValue``, ``ValidateAnnotations``). Some keys
are Leoflow's: the webhook and the informers select on ``leoflow.io/`` labels and the controller
sets ``app.kubernetes.io/managed-by``, so a DAG may not set them; of the ``leoflow.io/``
annotations, only those the webhook documents for users to write are allowed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import AfterValidator

from leoflow.agent_inject.names import AGENT_PATH_ANNOTATION, ENTRYPOINT_ANNOTATION
from leoflow.spec.fields import untemplated

_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
MAX_NAME_PART = 63
MAX_PREFIX = 253
MAX_LABEL_VALUE = 63
ANNOTATIONS_LIMIT_BYTES = 256 * 1024
"""The API server refuses an object whose annotations (keys plus values, in bytes) exceed this."""
LEOFLOW_ANNOTATIONS_BYTES = 4 * 1024
"""Kept free for the annotations the controller, its ``--pod-annotation`` flag and the webhook add."""
MAX_POD_ANNOTATIONS_BYTES = ANNOTATIONS_LIMIT_BYTES - LEOFLOW_ANNOTATIONS_BYTES

LEOFLOW_PREFIX = "leoflow.io/"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
USER_ANNOTATIONS = frozenset({AGENT_PATH_ANNOTATION, ENTRYPOINT_ANNOTATION})
"""The ``leoflow.io/`` annotations the webhook reads from a pod's author (docs/webhook.md)."""

Kind = Literal["label", "annotation"]


def _qualified_name_problem(key: str) -> str | None:
    """Why ``key`` is not a Kubernetes qualified name (``[prefix/]name``), or None."""
    prefix, slash, name = key.rpartition("/")
    if slash and not prefix:
        return "its prefix before '/' is empty"
    if "/" in prefix:
        return "it has more than one '/'"
    if slash and (len(prefix) > MAX_PREFIX or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return (
            f"its prefix '{prefix}' is not a DNS subdomain (lowercase letters, digits, '-' and '.', "
            f"at most {MAX_PREFIX} characters, e.g. example.com)"
        )
    if not name:
        return "its name part is empty"
    if len(name) > MAX_NAME_PART:
        return f"its name part is {len(name)} characters long; the maximum is {MAX_NAME_PART}"
    if not _NAME.fullmatch(name):
        return (
            "its name part must be letters, digits, '-', '_' and '.', "
            "starting and ending with a letter or digit"
        )
    return None


def reserved_reason(key: str, kind: Kind) -> str | None:
    """Why a DAG may not set ``key`` on its pods, or None when it may."""
    if kind == "annotation" and key in USER_ANNOTATIONS:
        return None
    if key.lower().startswith(LEOFLOW_PREFIX):
        if kind == "label":
            return (
                "leoflow.io/ labels are Leoflow's: the controller sets them and the webhook selects on them"
            )
        allowed = " and ".join(sorted(USER_ANNOTATIONS))
        return (
            "leoflow.io/ annotations are Leoflow's (the controller and the webhook set them); "
            f"only {allowed} may be set"
        )
    if kind == "label" and key == MANAGED_BY_LABEL:
        return "the controller sets it to 'leoflow' on every task pod"
    return None


def _key(key: str, kind: Kind) -> str:
    # The API server checks annotation keys case-insensitively, label keys as written.
    problem = _qualified_name_problem(key.lower() if kind == "annotation" else key)
    if problem is not None:
        raise ValueError(f"{kind} key '{key}' is not a Kubernetes qualified name: {problem}")
    reason = reserved_reason(key, kind)
    if reason is not None:
        raise ValueError(f"{kind} key '{key}' is reserved: {reason}")
    return key


def _label_key(key: str) -> str:
    return _key(key, "label")


def annotation_key(key: str) -> str:
    """``key`` when a pod annotation may use it (a DAG's, or the controller's --pod-annotation);
    ValueError saying why not."""
    return _key(key, "annotation")


def _label_value(value: str) -> str:
    untemplated(value)
    if len(value) > MAX_LABEL_VALUE:
        raise ValueError(
            f"label value '{value}' is {len(value)} characters long; the maximum is {MAX_LABEL_VALUE}"
        )
    if value and not _NAME.fullmatch(value):
        raise ValueError(
            f"label value '{value}' must be empty or letters, digits, '-', '_' and '.', "
            "starting and ending with a letter or digit"
        )
    return value


def annotations_bytes(annotations: Mapping[str, str]) -> int:
    """The size the API server holds against ``ANNOTATIONS_LIMIT_BYTES``: keys plus values, UTF-8."""
    return sum(len(k.encode()) + len(v.encode()) for k, v in annotations.items())


LabelKey = Annotated[str, AfterValidator(_label_key)]
LabelValue = Annotated[str, AfterValidator(_label_value)]
AnnotationKey = Annotated[str, AfterValidator(annotation_key)]
AnnotationValue = Annotated[str, AfterValidator(untemplated)]

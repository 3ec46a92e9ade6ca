"""Fields passed to the pod as written (``affinity``), held to the Kubernetes API's own schema.

The API server drops a field it does not know without a word (``nodeAfinity`` would leave a pod
unconstrained) and refuses a wrongly typed one only when the pod is created, mid-run. The
kubernetes_asyncio client, a dependency already, carries the schema: each model class lists its
fields (``attribute_map``: Python name to JSON name) and their types (``openapi_types``), and its
setters refuse ``None`` for the required ones. A walk over those is the whole check: unknown keys
(with the closest known one), missing required fields, and the JSON type of each value.
"""

from __future__ import annotations

import difflib
import functools
import importlib
from dataclasses import dataclass
from typing import Any

from leoflow.spec.fields import TEMPLATED_FIELDS
from leoflow.spec.problems import Path

_MODELS = "kubernetes_asyncio.client.models"
_CONFIGURATION = "kubernetes_asyncio.client.configuration"
_SCALARS: dict[str, tuple[tuple[type, ...], str]] = {
    "str": ((str,), "a string"),
    "int": ((int,), "an integer"),
    "float": ((int, float), "a number"),
    "bool": ((bool,), "a boolean"),
}
_NAMES = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer"}


@dataclass(frozen=True)
class Finding:
    path: Path
    """Relative to the checked value."""
    message: str
    on_key: bool = False


@dataclass(frozen=True)
class _Model:
    fields: dict[str, str]
    """JSON name to the client's type string (``str``, ``list[V1NodeSelectorTerm]``, ...)."""
    required: frozenset[str]


@functools.cache
def _model(name: str) -> _Model:
    # Imported on first use: the client's models cost a third of a second, and few DAGs need them.
    cls = getattr(importlib.import_module(_MODELS), name)
    configuration = importlib.import_module(_CONFIGURATION).Configuration.get_default_copy()
    # The generated setters raise for None exactly where the API requires a value.
    probe = cls.__new__(cls)
    probe.local_vars_configuration = configuration
    required = set()
    for attr, json_name in cls.attribute_map.items():
        try:
            setattr(probe, attr, None)
        except ValueError:
            required.add(json_name)
    fields = {json_name: cls.openapi_types[attr] for attr, json_name in cls.attribute_map.items()}
    return _Model(fields, frozenset(required))


def _describe(value: object) -> str:
    return next((_NAMES[t] for t in type(value).__mro__ if t in _NAMES), "nothing (null)")


def check(value: Any, type_name: str) -> list[Finding]:
    """What is wrong with ``value`` as a Kubernetes ``type_name`` (e.g. ``V1Affinity``)."""
    findings: list[Finding] = []
    _check(value, type_name, (), findings)
    return findings


def _check(value: Any, tp: str, path: Path, out: list[Finding]) -> None:
    if tp == "object":
        return
    if tp.startswith("list["):
        if not isinstance(value, list):
            out.append(Finding(path, f"wrong type: expected a list, got {_describe(value)}"))
            return
        for i, item in enumerate(value):
            _check(item, tp[len("list[") : -1], (*path, i), out)
        return
    if tp.startswith("dict("):
        if not isinstance(value, dict):
            out.append(Finding(path, f"wrong type: expected a mapping, got {_describe(value)}"))
            return
        inner = tp[tp.index(",") + 1 : -1].strip()
        for key, item in value.items():
            _check(item, inner, (*path, key), out)
        return
    if tp in _SCALARS:
        types, expected = _SCALARS[tp]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            hint = " (quote it)" if tp == "str" and isinstance(value, int | float) else ""
            out.append(Finding(path, f"wrong type: expected {expected}, got {_describe(value)}{hint}"))
        elif isinstance(value, str) and "{{" in value:
            out.append(Finding(path, f"templates are not supported here, only in {TEMPLATED_FIELDS}"))
        return
    _check_model(value, _model(tp), path, out)


def _check_model(value: Any, model: _Model, path: Path, out: list[Finding]) -> None:
    if not isinstance(value, dict):
        out.append(Finding(path, f"wrong type: expected a mapping, got {_describe(value)}"))
        return
    for key, item in value.items():
        if key not in model.fields:
            close = difflib.get_close_matches(str(key), list(model.fields), n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            out.append(Finding((*path, key), f"unknown field '{key}'{hint}", on_key=True))
        elif item is not None:
            _check(item, model.fields[key], (*path, key), out)
    for name in sorted(model.required):
        if value.get(name) is None:
            out.append(Finding(path, f"missing required field '{name}'"))

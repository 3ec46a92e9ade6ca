"""YAML for Kubernetes: every string written so that kubectl reads it back as a string.

PyYAML quotes a string only when its own YAML 1.1 resolver would read the plain scalar as
something else. kubectl's parser (sigs.k8s.io/yaml over go-yaml) reads more plain scalars as
non-strings: ``y``, ``Y``, ``n`` and ``N`` as booleans, ``1e3`` as a number (PyYAML needs a dot
in a float), and ``0o14`` as the octal 12. So a task whose command was ``[x, "y", "1e3"]``
reached the API server from ``leoflow compile | kubectl apply -f -`` as ``[x, true, 1000]``,
which the DAG schema refuses. Every YAML Leoflow writes for kubectl goes through :func:`dump`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import yaml

# go-yaml's reading of a plain scalar: these words, or (underscores removed first, as it does)
# a Go integer literal in any base or a float. Over-quoting costs nothing; missing a form
# changes a user's value.
_NON_STRING_WORDS = frozenset(
    {
        *("y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO"),
        *("true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF"),
        *("~", "null", "Null", "NULL", ".nan", ".NaN", ".NAN"),
        *(sign + inf for sign in ("", "+", "-") for inf in (".inf", ".Inf", ".INF")),
    }
)
_NUMBER = re.compile(
    r"[-+]?(?:0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?)"
)


def read_as_non_string(text: str) -> bool:
    """Whether kubectl would read ``text``, written as a plain scalar, as a non-string."""
    return text in _NON_STRING_WORDS or _NUMBER.fullmatch(text.replace("_", "")) is not None


class _KubernetesDumper(yaml.SafeDumper):
    """A safe dumper that quotes every string go-yaml would not read back as that string."""

    def represent_str(self, data: str) -> yaml.ScalarNode:
        if read_as_non_string(data):
            return self.represent_scalar("tag:yaml.org,2002:str", data, style="'")
        return super().represent_str(data)


_KubernetesDumper.add_representer(str, _KubernetesDumper.represent_str)


def dump(obj: Any, *, width: int = 120) -> str:
    """One document, keys in their given order."""
    text: str = yaml.dump(obj, Dumper=_KubernetesDumper, sort_keys=False, width=width)
    return text


def dump_all(objs: Iterable[Any], *, width: int = 80) -> str:
    """Several documents separated by ``---``, as ``kubectl apply -f`` takes them."""
    text: str = yaml.dump_all(
        list(objs), Dumper=_KubernetesDumper, sort_keys=False, width=width, default_flow_style=False
    )
    return text

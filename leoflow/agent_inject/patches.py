"""The JSON Patch (RFC 6902) from the pod as received to the mutated pod, by an index-aligned diff.

Why not ``jsonpatch.make_patch``: it is a general diff that searches lists for moved items, and
measured 0.7 ms for an ordinary one-container pod, more than the whole per-review budget of a
webhook meant to answer 2,000 reviews a second on one core. Our mutation never moves items, so a
simpler diff is exact: objects are compared key by key, lists of equal length element by element,
and any other changed list or value is replaced whole. Absent arrays and maps are created by
``add`` of the whole value, and keys are escaped per RFC 6901 (``~`` before ``/``). The property
tests apply every patch with the ``jsonpatch`` library and compare with the mutated pod.
"""

from __future__ import annotations

from typing import Any

Operation = dict[str, Any]


def escape(key: str) -> str:
    # The order matters: escaping "/" first would turn its "~1" into "~01".
    return key.replace("~", "~0").replace("/", "~1")


def diff(original: Any, mutated: Any) -> list[Operation]:
    operations: list[Operation] = []
    _diff(original, mutated, "", operations)
    return operations


def _diff(before: Any, after: Any, path: str, out: list[Operation]) -> None:
    if isinstance(before, dict) and isinstance(after, dict):
        for key, value in before.items():
            if key not in after:
                out.append({"op": "remove", "path": f"{path}/{escape(key)}"})
            elif value is not after[key]:
                _diff(value, after[key], f"{path}/{escape(key)}", out)
        for key, value in after.items():
            if key not in before:
                out.append({"op": "add", "path": f"{path}/{escape(key)}", "value": value})
        return
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for i, (old, new) in enumerate(zip(before, after, strict=True)):
            if old is not new:
                _diff(old, new, f"{path}/{i}", out)
        return
    if type(before) is not type(after) or before != after:
        out.append({"op": "replace", "path": path, "value": after})

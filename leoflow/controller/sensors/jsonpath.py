"""The small JSON path dialect sensors use to point into an HTTP body or a Kubernetes object.

``status.succeeded``, ``.status.conditions[0].type``, ``$.items[-1].id``, ``data['app.conf']`` and
kubectl's braces (``{.status.phase}``) all work: a sequence of field names and list indices. No
filters or wildcards: a sensor asks one question about one value, and a single-value path has an
unambiguous answer. Parsing happens once, when the sensor is added, so a typo is reported to the
DAG author instead of silently never matching.
"""

from __future__ import annotations

import json
import re

_TOKEN = re.compile(
    r"""\.?(?P<name>[A-Za-z0-9_\-$@]+)|\[(?P<index>-?\d+)\]|\[(?P<quote>['"])(?P<key>.*?)(?P=quote)\]"""
)
_MISSING = object()


class JsonPathError(ValueError):
    """A JSON path that cannot be parsed."""


Step = str | int


def parse(path: str) -> tuple[Step, ...]:
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if text.startswith("$"):
        text = text[1:]
    if not text:
        raise JsonPathError(f"JSON path {path!r} is empty")
    steps: list[Step] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise JsonPathError(
                f"JSON path {path!r} cannot be read at character {position + 1}: "
                "write fields as a.b, list items as a[0], odd keys as a['x.y']"
            )
        if match.group("name") is not None:
            steps.append(match.group("name"))
        elif match.group("index") is not None:
            steps.append(int(match.group("index")))
        else:
            steps.append(match.group("key"))
        position = match.end()
    return tuple(steps)


def lookup(document: object, steps: tuple[Step, ...]) -> tuple[bool, object]:
    """``(True, value)`` when every step exists, else ``(False, None)``."""
    current = document
    for step in steps:
        if isinstance(step, int):
            if not isinstance(current, list) or not -len(current) <= step < len(current):
                return False, None
            current = current[step]
        elif isinstance(current, dict) and step in current:
            current = current[step]
        else:
            return False, None
    return True, current


def value_matches(found: object, expected: str) -> bool:
    """Whether a found value equals the author's ``jsonValue`` (a string in the YAML).

    ``"3"`` matches both ``3`` and ``"3"``; ``"true"`` matches ``true``; objects compare as JSON.
    """
    if isinstance(found, str):
        return found == expected
    try:
        parsed = json.loads(expected)
    except ValueError:
        return False
    if isinstance(parsed, bool) != isinstance(found, bool):
        return False
    return bool(parsed == found)

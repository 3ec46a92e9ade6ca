"""The template syntax of leoflow.yaml strings: parsed at compile time, rendered at run time.

A template is ``{{ EXPR }}`` where EXPR is one of ``params.NAME``, ``tasks.TASK.outputs.NAME``,
``logical_date``, ``run_id`` or ``item`` (inside a fan-out task). There is no escaping: ``{{``
always opens a template. The compiler checks every reference resolves; the controller calls
``render`` with the run's values, so both sides share one grammar.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

_OPEN = "{{"
_EXPR = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_PARAM = re.compile(r"^params\.([A-Za-z_][A-Za-z0-9_]*)$")
_OUTPUT = re.compile(r"^tasks\.([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.outputs\.([A-Za-z_][A-Za-z0-9_]*)$")
_BUILTINS = ("logical_date", "run_id", "item")

Kind = Literal["param", "output", "logical_date", "run_id", "item"]


class TemplateError(ValueError):
    """A string whose ``{{ }}`` expressions cannot be parsed."""


@dataclass(frozen=True)
class Reference:
    kind: Kind
    name: str = ""
    task: str = ""
    expression: str = ""


@dataclass(frozen=True)
class RenderContext:
    logical_date: str
    run_id: str
    params: Mapping[str, str]
    outputs: Mapping[str, Mapping[str, str]]
    item: str | None = None


def has_template(text: str) -> bool:
    return _OPEN in text


def _parse(expression: str) -> Reference:
    expr = expression.strip()
    if expr in _BUILTINS:
        return Reference(expr, expression=expr)  # type: ignore[arg-type]
    if match := _PARAM.match(expr):
        return Reference("param", name=match.group(1), expression=expr)
    if match := _OUTPUT.match(expr):
        return Reference("output", task=match.group(1), name=match.group(3), expression=expr)
    raise TemplateError(
        f"'{{{{ {expr} }}}}' is not a template: use params.NAME, tasks.TASK.outputs.NAME, "
        "logical_date, run_id or item"
    )


def references(text: str) -> list[Reference]:
    """Every reference in ``text``; raises ``TemplateError`` for a malformed one."""
    if _OPEN not in text:
        return []
    found = [_parse(m.group(1)) for m in _EXPR.finditer(text)]
    if _OPEN in _EXPR.sub("", text):
        raise TemplateError("'{{' is not closed by '}}'")
    return found


def render(text: str, context: RenderContext) -> str:
    """Substitute every template in ``text``; a reference that is not in ``context`` is an error."""
    if _OPEN not in text:
        return text

    def value(match: re.Match[str]) -> str:
        ref = _parse(match.group(1))
        if ref.kind == "param":
            if ref.name not in context.params:
                raise TemplateError(f"param '{ref.name}' has no value")
            return context.params[ref.name]
        if ref.kind == "output":
            outputs = context.outputs.get(ref.task, {})
            if ref.name not in outputs:
                raise TemplateError(f"task '{ref.task}' reported no output '{ref.name}'")
            return outputs[ref.name]
        if ref.kind == "item":
            if context.item is None:
                raise TemplateError("'{{ item }}' is only bound in a fan-out task")
            return context.item
        return context.logical_date if ref.kind == "logical_date" else context.run_id

    return _EXPR.sub(value, text)

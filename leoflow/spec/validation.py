"""Turning pydantic's validation errors into ``Problem``s that name the line, the field and the fix.

pydantic reports locations as tuples and, for union-typed fields, one error per union member with
the member's tag inside the location. This module walks the model types alongside each location
to strip those tags, keeps only the errors of the union member the author evidently meant, and
suggests the closest field name for a typo.
"""

from __future__ import annotations

import difflib
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from leoflow.spec.problems import Path, Problem
from leoflow.spec.source import Document

_KEY = "[key]"
_TYPE_NAMES = {
    dict: "a mapping",
    list: "a list",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    type(None): "nothing (null)",
}


def _describe(value: object) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _unwrap(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _members(tp: Any) -> list[Any]:
    """Members of a union that pydantic tags (``X | None`` is not tagged)."""
    tp = _unwrap(tp)
    if get_origin(tp) in (Union, types.UnionType):
        members = [m for m in get_args(tp) if m is not type(None)]
        if len(members) > 1:
            return members
        return _members(members[0]) if members else []
    return []


def _strip_optional(tp: Any) -> Any:
    tp = _unwrap(tp)
    if get_origin(tp) in (Union, types.UnionType):
        members = [m for m in get_args(tp) if m is not type(None)]
        if len(members) == 1:
            return _strip_optional(members[0])
    return tp


def _member_name(member: Any) -> str:
    member = _strip_optional(member)
    if isinstance(member, type) and issubclass(member, BaseModel):
        keys = [n for n, f in member.model_fields.items() if f.is_required()]
        return "a mapping with " + ", ".join(f"'{k}'" for k in keys)
    if get_origin(member) is list:
        return "a list"
    if get_origin(member) is dict:
        return "a mapping"
    return _TYPE_NAMES.get(member, str(member))


def _walk(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[Path, int | None, list[Any], Any]:
    """Strip union tags from ``loc``; returns (path, index of union point, members, type at end)."""
    tp: Any = model
    path: list[str | int] = []
    union_at: int | None = None
    members: list[Any] = []
    i = 0
    while i < len(loc):
        part = loc[i]
        union = _members(tp)
        if union and union_at is None:
            union_at, members = len(path), union
            tp = next((m for m in union if _tag_matches(m, str(part))), union[0])
            i += 1
            continue
        tp = _strip_optional(tp)
        if part == _KEY:
            i += 1
            continue
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            tp = field.annotation if field is not None else None
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        elif get_origin(tp) is list:
            tp = get_args(tp)[0]
        else:
            tp = None
        path.append(part)
        i += 1
    return tuple(path), union_at, members, _strip_optional(tp)


def _tag_matches(member: Any, tag: str) -> bool:
    member = _strip_optional(member)
    if isinstance(member, type):
        return member.__name__ == tag or (tag.startswith("function-") and tag.endswith(f"{member.__name__}]"))
    return tag.startswith(str(get_origin(member).__name__ if get_origin(member) else member))


def _value_at(data: Any, path: Path) -> Any:
    for part in path:
        if isinstance(data, dict):
            if part not in data:
                return None
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return None
    return data


def _fields_at(model: type[BaseModel], path: Path) -> list[str]:
    _, _, _, tp = _walk(model, path)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return []


def _quote_hint(kind: str, value: object) -> str:
    if kind == "string_type" and isinstance(value, bool | int | float):
        return " (quote it: YAML reads yes, no, on, off, true and numbers as non-strings)"
    return ""


def _message(err: Any, model: type[BaseModel], path: Path, value: Any) -> str:
    kind = err["type"]
    msg = str(err["msg"])
    if kind == "extra_forbidden":
        name = str(path[-1])
        close = difflib.get_close_matches(name, _fields_at(model, path[:-1]), n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"unknown field '{name}'{hint}"
    if kind == "missing":
        return f"missing required field '{path[-1]}'"
    if kind in ("value_error", "assertion_error"):
        return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "literal_error":
        return f"{value!r} is not allowed: {msg[0].lower()}{msg[1:]}"
    if kind.endswith("_type") or kind in ("bool_parsing", "int_from_float"):
        return f"wrong type: {msg[0].lower()}{msg[1:]}, got {_describe(value)}{_quote_hint(kind, value)}"
    return f"{msg[0].lower()}{msg[1:]}"


def problems_from(doc: Document, model: type[BaseModel], error: ValidationError) -> list[Problem]:
    """One problem per distinct mistake, with union alternatives collapsed."""
    by_union: dict[Path, list[tuple[Path, int, Any, list[Any], Any]]] = {}
    plain: list[tuple[Path, Any, bool]] = []
    for err in error.errors(include_url=False):
        loc = tuple(err["loc"])
        path, union_at, members, _ = _walk(model, loc)
        if union_at is None:
            plain.append((path, err, _KEY in loc or err["type"] == "extra_forbidden"))
            continue
        union_path = path[:union_at]
        branch = _strip_optional(
            next((m for m in members if _tag_matches(m, str(loc[union_at]))), members[0])
        )
        by_union.setdefault(union_path, []).append((path, union_at, err, members, branch))

    problems = []
    for path, err, on_key in plain:
        value = _value_at(doc.data, path)
        problems.append(doc.problem(path, _message(err, model, path, value), key=on_key))
    for union_path, errs in by_union.items():
        value = _value_at(doc.data, union_path)
        models = {b for *_, b in errs if isinstance(b, type) and issubclass(b, BaseModel)}
        chosen = _best_model(value, models)
        if chosen is not None:
            for path, _, err, _, branch in errs:
                if branch is chosen:
                    problems.append(
                        doc.problem(
                            path,
                            _message(err, model, path, _value_at(doc.data, path)),
                            key=err["type"] == "extra_forbidden",
                        )
                    )
            continue
        members = errs[0][3]
        expected = " or ".join(dict.fromkeys(_member_name(m) for m in members))
        hint = _quote_hint("string_type", value) if "a string" in expected else ""
        message = f"wrong type: expected {expected}, got {_describe(value)}{hint}"
        problems.append(doc.problem(union_path, message))
    return problems


def _best_model(value: Any, models: set[type[BaseModel]]) -> type[BaseModel] | None:
    if not isinstance(value, dict) or not models:
        return None
    scored = sorted(models, key=lambda m: (-len(set(value) & set(m.model_fields)), m.__name__))
    best = scored[0]
    return best if set(value) & set(best.model_fields) else None

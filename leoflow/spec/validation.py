"""Turning pydantic's validation errors into ``Problem``s that name the line, the field and the fix.

pydantic reports locations as tuples and, for union-typed fields, one error per union member with
the member's tag inside the location. This module walks the model types alongside each location
to strip those tags, keeps only the errors of the union member the author evidently meant, and
suggests the closest field name for a typo.
"""

from __future__ import annotations

import difflib
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from leoflow.spec.problems import Path, Problem
from leoflow.spec.source import Document, key_must_be_string

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
    # By the class's ancestry: the reader gives an int written as 0x10 a subclass of int.
    return next((_TYPE_NAMES[t] for t in type(value).__mro__ if t in _TYPE_NAMES), type(value).__name__)


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
    if get_origin(member) is Literal:
        return " or ".join(repr(choice) for choice in get_args(member))
    return _TYPE_NAMES.get(member, str(member))


def _walk(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[Path, int | None, list[Any], str, Any]:
    """Strip every union tag from ``loc``.

    Returns the path, where the first union sits in it, that union's members, the tag pydantic
    gave the branch at that union, and the type at the end of the path.
    """
    tp: Any = model
    path: list[str | int] = []
    union_at: int | None = None
    members: list[Any] = []
    first_tag = ""
    i = 0
    while i < len(loc):
        part = loc[i]
        union = _members(tp)
        if union:
            if union_at is None:
                union_at, members, first_tag = len(path), union, str(part)
            tp = next((m for m in union if _tag_matches(m, str(part))), union[0])
            i += 1
            continue
        tp = _strip_optional(tp)
        if part == _KEY:
            i += 1
            continue
        if i + 1 < len(loc) and loc[i + 1] == _KEY:
            # A mapping's key: what follows is about the key, not about the value type.
            path.append(part)
            tp = None
            i += 2
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
    return tuple(path), union_at, members, first_tag, _strip_optional(tp)


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
    *_, tp = _walk(model, path)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return []


def _quote_hint(kind: str, value: object) -> str:
    if kind == "string_type" and isinstance(value, bool | int | float) and value is not None:
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


_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
}


def problems_from(doc: Document, model: type[BaseModel], error: ValidationError) -> list[Problem]:
    """One problem per distinct mistake, with union alternatives collapsed."""
    by_union: dict[Path, list[tuple[Path, Any, list[Any], Any]]] = {}
    plain: list[tuple[Path, Any]] = []
    for err in error.errors(include_url=False):
        loc = tuple(err["loc"])
        path, union_at, members, tag, _ = _walk(model, loc)
        if union_at is None:
            plain.append((path, err))
            continue
        branch = _strip_optional(next((m for m in members if _tag_matches(m, tag)), members[0]))
        by_union.setdefault(path[:union_at], []).append((path, err, members, branch))

    for union_path, errs in by_union.items():
        value = _value_at(doc.data, union_path)
        chosen = _chosen_branch(value, [b for *_, b in errs])
        if chosen is not None:
            plain.extend((path, err) for path, err, _, branch in errs if branch is chosen)
            continue
        expected = " or ".join(dict.fromkeys(_member_name(m) for m in errs[0][2]))
        hint = _quote_hint("string_type", value) if expected == "a string" or isinstance(value, bool) else ""
        plain.append(
            (
                union_path,
                {"type": "union", "msg": f"wrong type: expected {expected}, got {_describe(value)}{hint}"},
            )
        )

    by_path: dict[Path, list[dict[str, Any]]] = {}
    for where, detail in plain:
        by_path.setdefault(where, []).append(dict(detail))
    problems = []
    for where, details in by_path.items():
        value = _value_at(doc.data, where)
        if len(details) > 1 and all(d["type"] in _EXPECTED for d in details):
            kinds = " or ".join(dict.fromkeys(_EXPECTED[d["type"]] for d in details))
            problems.append(doc.problem(where, f"wrong type: expected {kinds}, got {_describe(value)}"))
            continue
        for detail in details:
            if detail["type"] == "union":
                problems.append(doc.problem(where, detail["msg"]))
                continue
            about_key = detail["type"] == "invalid_key" or _KEY in tuple(detail.get("loc", ()))
            if about_key and type(detail["input"]) is not str:
                # pydantic names a key true as 1 and null as 'None'; ``input`` is the key itself.
                at = (*where[:-1], detail["input"])
                text = doc.key_texts.get(at, str(detail["input"]))
                problems.append(doc.problem(at, key_must_be_string(detail["input"], text), key=True))
                continue
            on_key = about_key or detail["type"] == "extra_forbidden"
            problems.append(doc.problem(where, _message(detail, model, where, value), key=on_key))
    return problems


def _chosen_branch(value: Any, branches: list[Any]) -> Any:
    """The union member the author evidently meant: a model for a mapping, a list type for a list."""
    if isinstance(value, dict):
        return _best_model(value, {b for b in branches if isinstance(b, type) and issubclass(b, BaseModel)})
    if isinstance(value, list):
        return next((b for b in branches if get_origin(b) is list), None)
    return None


def _best_model(value: Any, models: set[type[BaseModel]]) -> type[BaseModel] | None:
    if not isinstance(value, dict) or not models:
        return None
    scored = sorted(models, key=lambda m: (-len(set(value) & set(m.model_fields)), m.__name__))
    best = scored[0]
    return best if set(value) & set(best.model_fields) else None

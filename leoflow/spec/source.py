"""Reading leoflow.yaml into plain data plus the line and column of every key and value.

PyYAML is already a dependency and its libyaml-backed event parser is fast, so instead of adding
ruamel.yaml we build values from the event stream ourselves. That one pass also enforces what the
stock loaders do not: duplicate keys are errors (YAML says keys are unique; PyYAML silently keeps
the last, which would hide a duplicated task), nesting depth is bounded, and aliases are counted
as if expanded so an alias bomb is refused after ``MAX_YAML_NODES`` instead of exhausting memory.
Timestamps stay strings: a param default ``2024-01-01`` means the text, not a date object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, NoReturn

import yaml
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from leoflow.spec.fields import MAX_FILE_BYTES, MAX_NESTING, MAX_YAML_NODES, SpelledInt
from leoflow.spec.problems import CompileError, Mark, Path, Problem, format_path

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG = "tag:yaml.org,2002:"
_resolver = Resolver()
_constructor = SafeConstructor()
_SCALARS = {
    _TAG + "null": _constructor.construct_yaml_null,
    _TAG + "bool": _constructor.construct_yaml_bool,
    _TAG + "int": _constructor.construct_yaml_int,
    _TAG + "float": _constructor.construct_yaml_float,
}
_MISSING = object()
_PLAIN_CACHE = 100_000
_AS_TEXT = {_TAG + "str", _TAG + "timestamp", _TAG + "merge", "!"}
_CONTAINER_TAGS = {None, "!", _TAG + "map", _TAG + "seq"}
_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", type(None): "null"}


@dataclass
class Document:
    """Parsed data; ``marks[path]`` is where the value at ``path`` starts, ``key_marks`` its key.

    The marks are PyYAML's own (0-based) and converted only when a problem is reported: building
    a ``Mark`` for each of a large file's values would cost more than parsing it.
    """

    file: str
    data: Any
    marks: dict[Path, Any] = field(default_factory=dict)
    key_marks: dict[Path, Any] = field(default_factory=dict)
    key_texts: dict[Path, str] = field(default_factory=dict)
    """How the file spells each key that YAML read as something else than a string (``on``, ``1``)."""

    def mark(self, path: Path, *, key: bool = False) -> Mark:
        """The position of ``path``, or of its nearest ancestor that exists."""
        while True:
            if key and path in self.key_marks:
                return _position(self.key_marks[path])
            if path in self.marks:
                return _position(self.marks[path])
            if not path:
                return Mark(1, 1)
            path = path[:-1]

    def problem(self, path: Path, message: str, *, key: bool = False) -> Problem:
        return Problem(self.file, self.mark(path, key=key), self.display(path), message)

    def display(self, path: Path) -> str:
        """``path`` as text, each non-string key as the file spells it (``podAnnotations.on``)."""
        if self.key_texts:
            path = tuple(self.key_texts.get(path[: i + 1], part) for i, part in enumerate(path))
        return format_path(path)


def _position(raw: Any) -> Mark:
    return raw if isinstance(raw, Mark) else Mark(raw.line + 1, raw.column + 1)


NESTING_REFUSED = f"nesting deeper than {MAX_NESTING} levels; refused"


def _mark(event: Any) -> Mark:
    return _position(event.start_mark)


def _tag_name(tag: str) -> str:
    return "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag


def _refuse_tag(event: Any) -> NoReturn:
    raise _Refused(
        _mark(event),
        f"unsupported YAML tag {_tag_name(event.tag)}: only !!str, !!int, !!float, !!bool, !!null, "
        "!!map and !!seq are accepted",
    )


def key_must_be_string(key: object, text: str) -> str:
    """The message for a mapping key YAML read as something else than a string."""
    what = next((_TYPE_NAMES[t] for t in type(key).__mro__ if t in _TYPE_NAMES), type(key).__name__)
    if not text:
        return f"an empty key is read as {what}, but keys must be strings"
    return f"key {text} is read as {what}, but keys must be strings; quote it: '{text}'"


class _Refused(Exception):
    def __init__(self, mark: Mark, message: str) -> None:
        super().__init__(message)
        self.mark = mark


@dataclass
class _Frame:
    value: dict[Any, Any] | list[Any]
    path: Path
    anchor: str | None
    size: int = 1
    key: Any = None
    key_mark: Any = None
    key_text: str = ""
    has_key: bool = False
    merges: list[tuple[dict[Any, Any], Any]] = field(default_factory=list)


class _Builder:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.nodes = 0
        self.documents = 0
        self.root: Any = None
        # Plain scalars repeat (command words, upstream names): resolving each once is cheaper.
        self.plain: dict[str, Any] = {}

    def feed(self, event: Any) -> None:
        kind = type(event)
        if kind is yaml.ScalarEvent:
            self._add(self._scalar(event), 1, event)
        elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
            self._open(event)
        elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            self._close(event)
        elif kind is yaml.AliasEvent:
            if event.anchor not in self.anchors:
                raise _Refused(_mark(event), f"alias *{event.anchor} refers to no anchor")
            value, size = self.anchors[event.anchor]
            self._count(size, event)
            self._add(value, size, event, alias=True)
        elif kind is yaml.DocumentStartEvent:
            self.documents += 1
            if self.documents > 1:
                raise _Refused(_mark(event), "expected one YAML document, found several ('---')")

    def _count(self, size: int, event: Any) -> None:
        self.nodes += size
        if self.nodes > MAX_YAML_NODES:
            raise _Refused(
                _mark(event),
                f"the document expands to more than {MAX_YAML_NODES} values (an alias bomb?); refused",
            )

    def _scalar(self, event: Any) -> Any:
        self._count(1, event)
        tag = event.tag
        if tag is None or tag == "!":
            if not event.implicit[0]:
                return event.value
            cached = self.plain.get(event.value, _MISSING)
            if cached is not _MISSING:
                return cached
            tag = _resolver.resolve(yaml.ScalarNode, event.value, event.implicit)  # type: ignore[no-untyped-call]
        if tag in _SCALARS:
            node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark)
            value = _SCALARS[tag](node)
            if type(value) is int and str(value) != event.value:
                value = SpelledInt(value, event.value)
        elif tag in _AS_TEXT:
            value = event.value
        else:
            _refuse_tag(event)
        if event.tag is None and len(self.plain) < _PLAIN_CACHE:
            self.plain[event.value] = value
        return value

    def _open(self, event: Any) -> None:
        self._count(1, event)
        # PyYAML's safe loader would refuse these; an event parser sees only the tag's name.
        if event.tag not in _CONTAINER_TAGS:
            _refuse_tag(event)
        if len(self.stack) >= MAX_NESTING:
            raise _Refused(_mark(event), NESTING_REFUSED)
        path = self._child_path(event)
        self.doc.marks[path] = event.start_mark
        container: dict[Any, Any] | list[Any] = {} if isinstance(event, yaml.MappingStartEvent) else []
        self.stack.append(_Frame(container, path, event.anchor))

    def _child_path(self, event: Any) -> Path:
        if not self.stack:
            return ()
        parent = self.stack[-1]
        if isinstance(parent.value, list):
            return (*parent.path, len(parent.value))
        if not parent.has_key:
            raise _Refused(_mark(event), "a mapping key must be a plain value, not a mapping or list")
        return (*parent.path, parent.key)

    def _close(self, event: Any) -> None:
        frame = self.stack.pop()
        if isinstance(frame.value, dict):
            for merged, mark in frame.merges:
                for key, value in merged.items():
                    if key not in frame.value:
                        frame.value[key] = value
                        self.doc.marks.setdefault((*frame.path, key), mark)
        if frame.anchor is not None:
            self.anchors[frame.anchor] = (frame.value, frame.size)
        self._attach(frame.value, frame.size, event, frame.path)

    def _add(self, value: Any, size: int, event: Any, alias: bool = False) -> None:
        if not alias and getattr(event, "anchor", None) is not None:
            self.anchors[event.anchor] = (value, size)
        if not self.stack:
            self.doc.marks[()] = event.start_mark
            self.root = value
            return
        parent = self.stack[-1]
        if isinstance(parent.value, dict) and not parent.has_key:
            if isinstance(value, dict | list):
                raise _Refused(_mark(event), "a mapping key must be a plain value, not a mapping or list")
            parent.key, parent.key_mark, parent.has_key = value, event.start_mark, True
            if type(value) is not str:
                parent.key_text = event.value if type(event) is yaml.ScalarEvent else f"*{event.anchor}"
            return
        path = self._child_path(event)
        self.doc.marks[path] = event.start_mark
        self._attach(value, size, event, path)

    def _attach(self, value: Any, size: int, event: Any, path: Path) -> None:
        if not self.stack:
            self.root = value
            return
        parent = self.stack[-1]
        parent.size += size
        if isinstance(parent.value, list):
            parent.value.append(value)
            return
        key, key_mark = parent.key, parent.key_mark
        parent.key, parent.key_mark, parent.has_key = None, None, False
        if key == "<<":
            merged = value if isinstance(value, list) else [value]
            if not all(isinstance(m, dict) for m in merged):
                raise _Refused(
                    _position(key_mark),
                    "a merge key '<<' takes a mapping or a list of mappings, e.g. <<: *base",
                )
            parent.merges.extend((m, event.start_mark) for m in merged)
            return
        if type(key) is not str:
            self.doc.key_texts[path] = parent.key_text
            if key in parent.value:
                # 1 and true are equal Python keys: say what is wrong with them, not "duplicate".
                raise _Refused(_position(key_mark), key_must_be_string(key, parent.key_text))
        if key in parent.value:
            where = self.doc.display(parent.path) or "the file"
            raise _Refused(_position(key_mark), f"duplicate key '{key}' in {where}")
        parent.value[key] = value
        if key_mark is not None:
            self.doc.key_marks[path] = key_mark


_KEY_BEFORE = re.compile(r"([^\s{\[,]+):\s*$")
_INDICATORS = {
    "*": "'*' starts an alias",
    "@": "YAML reserves '@'",
    "`": "YAML reserves '`'",
}


def _quote_hint(text: str, marks: list[Any]) -> str:
    """A value such as ``*/5 * * * *`` or ``@daily`` (a cron expression, mostly) cannot be a plain
    scalar; the scanner's own message says nothing of quoting, so say it."""
    lines = text.splitlines()
    for mark in marks:
        line = lines[mark.line] if mark.line < len(lines) else ""
        reason = _INDICATORS.get(line[mark.column : mark.column + 1])
        if reason is None:
            continue
        before, value = line[: mark.column], line[mark.column :].split(" #", 1)[0].strip()
        if before.count("{") + before.count("[") > before.count("}") + before.count("]"):
            # In a flow mapping ", " or a closing bracket ends the value; a cron list (1,2) has no space.
            value = re.split(r",\s|[}\]]", value, maxsplit=1)[0].strip()
        key = _KEY_BEFORE.search(before)
        example = f'{key.group(1)}: "{value}"' if key else f'"{value}"'
        return f" ({reason}: quote the value, e.g. {example})"
    return ""


def load(text: bytes | str, file: str) -> Document:
    """Parse one YAML document; raises ``CompileError`` for syntax errors and hostile input."""
    size = len(text.encode() if isinstance(text, str) else text)
    if size > MAX_FILE_BYTES:
        raise CompileError(
            [Problem(file, Mark(1, 1), "", f"file is {size} bytes; the limit is {MAX_FILE_BYTES} bytes")]
        )
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            raise CompileError([Problem(file, Mark(1, 1), "", f"file is not UTF-8 text: {err}")]) from err
    doc = Document(file, None)
    builder = _Builder(doc)
    try:
        for event in yaml.parse(text, Loader=_Loader):
            builder.feed(event)
    except _Refused as err:
        raise CompileError([Problem(file, err.mark, "", str(err))]) from err
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = Mark(mark.line + 1, mark.column + 1) if mark is not None else Mark(1, 1)
        if "maximum nesting depth" in str(err.problem):
            # libyaml (from the one in PyYAML 6.0.4's wheels) has its own, higher limit and may
            # scan that far ahead before the builder sees the 33rd level: the same refusal.
            raise CompileError([Problem(file, where, "", NESTING_REFUSED)]) from err
        what = " ".join(str(p) for p in (err.context, err.problem) if p)
        hint = _quote_hint(text, [m for m in (err.context_mark, err.problem_mark) if m is not None])
        raise CompileError([Problem(file, where, "", f"YAML syntax error: {what}{hint}")]) from err
    except yaml.YAMLError as err:
        raise CompileError([Problem(file, Mark(1, 1), "", f"YAML error: {err}")]) from err
    doc.data = builder.root
    return doc

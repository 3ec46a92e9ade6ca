"""Input meant to exhaust the compiler is refused with a clear message, before it costs anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from leoflow.spec.compiler import compile_path, compile_text
from leoflow.spec.fields import MAX_FILE_BYTES, MAX_NESTING, MAX_YAML_NODES
from leoflow.spec.problems import CompileError
from leoflow.spec.source import load


def _refusal(text: str | bytes) -> str:
    with pytest.raises(CompileError) as caught:
        compile_text(text, "leoflow.yaml")
    assert len(caught.value.problems) == 1
    return caught.value.problems[0].message


def test_alias_bomb_is_refused() -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    message = _refusal("\n".join(lines) + "\n")
    assert f"more than {MAX_YAML_NODES} values" in message and "alias bomb" in message


def test_hundred_megabyte_file_is_refused_by_size() -> None:
    message = _refusal(b"#" * (100 * 1024 * 1024))
    assert message == f"file is {100 * 1024 * 1024} bytes; the limit is {MAX_FILE_BYTES} bytes"


def test_deep_nesting_is_refused() -> None:
    message = _refusal("x: " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert message == f"nesting deeper than {MAX_NESTING} levels; refused"


def test_deep_block_nesting_is_refused() -> None:
    text = "".join("  " * depth + f"k{depth}:\n" for depth in range(200))
    assert "nesting deeper" in _refusal(text)


def test_non_utf8_bytes_are_refused() -> None:
    assert "not UTF-8" in _refusal(b"dag: \xff\xfe\n")


def test_several_documents_are_refused() -> None:
    assert "one YAML document" in _refusal("dag: a\n---\ndag: b\n")


def test_custom_tags_are_refused() -> None:
    assert "unsupported YAML tag" in _refusal("dag: !!python/object:os.system x\n")


def test_file_that_is_not_a_mapping() -> None:
    assert "must be a mapping" in _refusal("- a\n- b\n")


def test_anchors_and_merge_keys_work_within_limits() -> None:
    doc = load("base: &b {retries: 2, timeout: 1h}\ntask:\n  <<: *b\n  retries: 5\n", "f.yaml")
    assert doc.data["task"] == {"retries": 5, "timeout": "1h"}


def test_timestamps_stay_text() -> None:
    doc = load("day: 2024-01-01\nflag: yes\nn: 3\n", "f.yaml")
    assert doc.data == {"day": "2024-01-01", "flag": True, "n": 3}


def test_oversized_file_on_disk_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "leoflow.yaml"
    with path.open("wb") as stream:
        stream.truncate(100 * 1024 * 1024)
    with pytest.raises(CompileError) as caught:
        compile_path(path)
    assert (
        caught.value.problems[0].message
        == f"file is {100 * 1024 * 1024} bytes; the limit is {MAX_FILE_BYTES} bytes"
    )

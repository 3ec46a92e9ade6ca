"""Strings written for kubectl come back as the same strings (leoflow/kubeyaml.py)."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from leoflow import kubeyaml

# Each one read back by kubectl 1.34 as a boolean or a number when PyYAML wrote it plain.
GO_YAML_NON_STRINGS = [
    *("y", "Y", "n", "N", "1e3", "+1E3", "0o14", "0O7"),
    *("09", "-088", "0XFe", "-.61", "-_2", "11E9_"),
]


@pytest.mark.parametrize("text", GO_YAML_NON_STRINGS)
def test_strings_kubectl_would_read_as_booleans_or_numbers_are_quoted(text: str) -> None:
    written = kubeyaml.dump({"command": ["x", text]})
    assert f"- '{text}'" in written
    assert yaml.safe_load(written) == {"command": ["x", text]}


@pytest.mark.parametrize("text", ["x", "main", "leoflow.dev/base:1", "1.2.3", "v1", "e3", "0o8", "1e"])
def test_ordinary_strings_stay_plain(text: str) -> None:
    assert kubeyaml.dump([text]) == f"- {text}\n"


def test_keys_are_quoted_too() -> None:
    # A label or env name "y" would become the JSON key "true".
    assert kubeyaml.dump({"y": "n"}) == "'y': 'n'\n"


@given(st.text(alphabet="0123456789+-._eExXoObB:yYnN~ ", max_size=8))
def test_every_string_round_trips_and_non_strings_are_never_plain(text: str) -> None:
    written = kubeyaml.dump({"v": text})
    assert yaml.safe_load(written) == {"v": text}
    if kubeyaml.read_as_non_string(text):
        assert written != f"v: {text}\n"


def test_documents_are_separated_for_kubectl_apply() -> None:
    assert kubeyaml.dump_all([{"a": "y"}, {"b": 1}]) == "a: 'y'\n---\nb: 1\n"

"""Building leoflow.yaml texts for the spec tests."""

from __future__ import annotations

import textwrap

import pytest

from leoflow.spec.compiler import compile_text
from leoflow.spec.problems import CompileError, Problem

HEAD = """\
dag: etl
image: registry.example.com/etl:1.4.2
"""


def problems(text: str) -> list[Problem]:
    with pytest.raises(CompileError) as caught:
        compile_text(textwrap.dedent(text), "leoflow.yaml")
    return caught.value.problems


def only_problem(text: str) -> Problem:
    found = problems(text)
    assert len(found) == 1, [str(p) for p in found]
    return found[0]

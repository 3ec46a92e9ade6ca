from __future__ import annotations

import pytest

from leoflow.spec.templates import Reference, RenderContext, TemplateError, references, render

CONTEXT = RenderContext(
    logical_date="2024-05-01T00:00:00Z",
    run_id="etl-abc",
    params={"day": "2024-05-01"},
    outputs={"extract": {"rows": "7"}},
    item="eu",
)


def test_references_are_parsed_with_or_without_spaces() -> None:
    assert references("{{params.day}}-{{ tasks.extract.outputs.rows }}-{{ item }}") == [
        Reference("param", name="day", expression="params.day"),
        Reference("output", name="rows", task="extract", expression="tasks.extract.outputs.rows"),
        Reference("item", expression="item"),
    ]


def test_render_substitutes_every_kind() -> None:
    text = "{{ run_id }} {{ logical_date }} {{ params.day }} {{ tasks.extract.outputs.rows }} {{ item }}"
    assert render(text, CONTEXT) == "etl-abc 2024-05-01T00:00:00Z 2024-05-01 7 eu"


def test_render_refuses_a_missing_output() -> None:
    with pytest.raises(TemplateError, match="reported no output 'count'"):
        render("{{ tasks.extract.outputs.count }}", CONTEXT)


def test_unknown_expression_is_an_error() -> None:
    with pytest.raises(TemplateError, match="is not a template"):
        references("{{ env.HOME }}")

"""``{{ }}`` is rendered only in command, args, env values and sensor fields; anywhere else it would
reach the pod as literal text (an image named ``etl:{{ params.tag }}`` fails with InvalidImageName
mid-run), so it is a compile error there, naming the fields that do render templates."""

from __future__ import annotations

import textwrap

import pytest

from leoflow.spec.compiler import compile_text
from tests.unit.spec.dagfiles import HEAD, only_problem, problems

PARAMS = 'params: {tag: {default: "1.0"}}\n'


@pytest.mark.parametrize(
    ("setting", "path"),
    [
        ('serviceAccountName: "{{ params.tag }}"', "tasks.a.serviceAccountName"),
        ('nodeSelector: {pool: "{{ params.tag }}"}', "tasks.a.nodeSelector.pool"),
        ('podAnnotations: {example.com/run: "{{ run_id }}"}', "tasks.a.podAnnotations.example.com/run"),
        ('podLabels: {team: "{{ params.tag }}"}', "tasks.a.podLabels.team"),
        ('tolerations: [{key: "{{ params.tag }}", operator: Exists}]', "tasks.a.tolerations[0].key"),
        ('env: {PASSWORD: {secret: "{{ params.tag }}", key: k}}', "tasks.a.env.PASSWORD.secret"),
        ('description: "runs {{ params.tag }}"', "tasks.a.description"),
        ('fanOut: {items: [a, "{{ params.tag }}"]}', "tasks.a.fanOut.items[1]"),
    ],
)
def test_template_in_a_field_that_is_not_rendered_is_refused_naming_where_they_are(
    setting: str, path: str
) -> None:
    p = only_problem(HEAD + PARAMS + f"tasks:\n  a:\n    command: [x]\n    {setting}\n")
    assert (p.mark.line, p.path) == (7, path)
    assert p.message.startswith(
        "templates are not supported here, only in command, args, env values and sensor fields"
    ), p.message
    assert "params" in p.message


def test_templated_image_tag_is_refused_with_what_to_do_instead() -> None:
    found = problems(HEAD + PARAMS + 'tasks:\n  a:\n    command: [x]\n    image: "reg/x:{{ params.tag }}"\n')
    assert [(p.mark.line, p.path) for p in found] == [(7, "tasks.a.image")]
    assert "templates are not supported here" in found[0].message
    assert "fixed when the DAG is compiled" in found[0].message
    assert 'env: {VERSION: "{{ params.version }}"}' in found[0].message


def test_templates_in_the_top_level_image_and_the_schedule_are_refused_once_each() -> None:
    text = (
        'dag: etl\nimage: "x:{{ run_id }}"\nschedule: {cron: "{{ params.c }}"}\ntasks: {a: {command: [x]}}\n'
    )
    assert [(p.path, p.message[:32]) for p in problems(text)] == [
        ("image", "templates are not supported here"),
        ("schedule.cron", "templates are not supported here"),
    ]


def test_templates_still_compile_where_they_are_rendered() -> None:
    text = HEAD + textwrap.dedent(
        """\
        params: {tag: {default: "1.0"}}
        defaults: {env: {TAG: "{{ params.tag }}"}}
        tasks:
          a:
            command: [x, "{{ params.tag }}"]
            args: ["{{ run_id }}"]
            env: {DAY: "{{ logical_date }}"}
            outputs: [items]
          b:
            after: [a]
            command: [x, "{{ item }}"]
            fanOut: {items: "{{ tasks.a.outputs.items }}"}
          w: {sensor: {time: {at: "{{ logical_date }}"}}}
        """
    )
    assert len(compile_text(text).spec.tasks) == 3


def test_unresolved_template_in_an_inherited_env_value_is_refused_at_defaults() -> None:
    text = HEAD + PARAMS + 'defaults: {env: {TAG: "{{ params.tga }}"}}\ntasks:\n  a: {command: [x]}\n'
    p = only_problem(text)
    assert (p.mark.line, p.path) == (4, "defaults.env.TAG")
    assert p.message == "'{{ params.tga }}' refers to no param 'tga'; did you mean 'tag'?"

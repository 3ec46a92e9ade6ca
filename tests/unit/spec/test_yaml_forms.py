"""YAML that reads as something other than what the author meant is refused with the fix: keys
that are not strings, numbers in YAML 1.1's other forms where a duration is due, tags, merge keys
that merge nothing, and plain values that start with '*' or '@' (an unquoted cron expression)."""

from __future__ import annotations

import pytest

from leoflow.spec.source import load
from tests.unit.spec.dagfiles import HEAD, only_problem, problems


def test_keys_one_and_true_are_not_called_duplicates_but_asked_to_be_quoted() -> None:
    p = only_problem(HEAD + "tasks:\n  a: {command: [x], env: {1: x, true: y}}\n")
    assert (p.mark.line, p.mark.column) == (4, 33)
    assert p.message == "key true is read as a boolean, but keys must be strings; quote it: 'true'"


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        (
            "params: {1: {}}\ntasks: {a: {command: [x]}}\n",
            "params.1",
            "key 1 is read as an integer, but keys must be strings; quote it: '1'",
        ),
        (
            "tasks:\n  1: {command: [x]}\n",
            "tasks.1",
            "key 1 is read as an integer, but keys must be strings; quote it: '1'",
        ),
        (
            "tasks:\n  a: {command: [x], podAnnotations: {on: x}}\n",
            "tasks.a.podAnnotations.on",
            "key on is read as a boolean, but keys must be strings; quote it: 'on'",
        ),
        (
            "tasks:\n  a: {command: [x], env: {yes: x}}\n",
            "tasks.a.env.yes",
            "key yes is read as a boolean, but keys must be strings; quote it: 'yes'",
        ),
        (
            "tasks:\n  a: {command: [x], 5: x}\n",
            "tasks.a.5",
            "key 5 is read as an integer, but keys must be strings; quote it: '5'",
        ),
        (
            "tasks:\n  a: {command: [x], nodeSelector: {null: x}}\n",
            "tasks.a.nodeSelector.null",
            "key null is read as null, but keys must be strings; quote it: 'null'",
        ),
    ],
)
def test_key_that_is_not_a_string_is_named_as_written_and_asked_to_be_quoted(
    text: str, path: str, message: str
) -> None:
    p = only_problem(HEAD + text)
    assert (p.path, p.message) == (path, message)


@pytest.mark.parametrize(
    ("written", "number"),
    [("1:30", 90), ("0x10", 16), ("017", 15), ("1_000", 1000), ("+30", 30)],
)
def test_duration_in_another_number_form_than_plain_decimal_is_refused(written: str, number: int) -> None:
    p = only_problem(HEAD + f"tasks:\n  a: {{command: [x], timeout: {written}}}\n")
    assert p.path == "tasks.a.timeout"
    assert p.message == (
        f"{written} is not a duration (YAML 1.1 reads it as the number {number}): "
        "write a duration string such as 90s or 1h30m, or a plain number of seconds"
    )


def test_every_duration_field_refuses_the_other_number_forms() -> None:
    text = HEAD + (
        "tasks:\n  a: {command: [x], retryDelay: 0x10, maxRetryDelay: 1:00}\n"
        "  w: {sensor: {time: {delay: 5}, pokeInterval: 0o7, timeout: 1:00:00}}\n"
    )
    assert [p.path for p in problems(text)] == [
        "tasks.a.retryDelay",
        "tasks.a.maxRetryDelay",
        "tasks.w.sensor.pokeInterval",
        "tasks.w.sensor.timeout",
    ]


def test_other_number_forms_keep_their_yaml_value_outside_durations() -> None:
    doc = load("retries: 0x3\nplain: 90\n", "f.yaml")
    assert doc.data == {"retries": 3, "plain": 90}
    assert type(doc.data["plain"]) is int


@pytest.mark.parametrize(
    ("body", "tag"),
    [
        ("command: !!python/object/apply:os.system [echo pwned]", "!!python/object/apply:os.system"),
        ("command: [x]\n    args: !ref [x]", "!ref"),
        ("command: !!set {x}", "!!set"),
        ("command: [!!binary aGVsbG8=]", "!!binary"),
        ("command: [!custom x]", "!custom"),
    ],
)
def test_tags_other_than_the_core_ones_are_refused_naming_the_tag_and_line(body: str, tag: str) -> None:
    p = only_problem(HEAD + f"tasks:\n  a:\n    {body}\n")
    assert p.message.startswith(f"unsupported YAML tag {tag}: only !!str, !!int"), p.message
    assert p.mark.line in (5, 6)


def test_core_tags_are_accepted() -> None:
    doc = load("a: !!map {b: !!seq [!!str 1, !!int '2']}\n", "f.yaml")
    assert doc.data == {"a": {"b": ["1", 2]}}


@pytest.mark.parametrize("value", ["[1, 2]", "3", "[*b, 1]"])
def test_merge_key_that_merges_no_mapping_is_refused(value: str) -> None:
    p = only_problem(HEAD + f"base: &b {{retries: 1}}\ntasks:\n  a:\n    command: [x]\n    <<: {value}\n")
    assert p.mark.line == 7
    assert p.message == "a merge key '<<' takes a mapping or a list of mappings, e.g. <<: *base"


def test_merge_key_with_a_list_of_mappings_merges_them_in_order() -> None:
    doc = load("a: &a {x: 1}\nb: &b {x: 2, y: 2}\nc:\n  <<: [*a, *b]\n", "f.yaml")
    assert doc.data["c"] == {"x": 1, "y": 2}


@pytest.mark.parametrize(
    ("schedule", "hint"),
    [
        (
            "schedule:\n  cron: */5 * * * *\n",
            "('*' starts an alias: quote the value, e.g. cron: \"*/5 * * * *\")",
        ),
        (
            "schedule:\n  cron: @daily   # at midnight\n",
            "(YAML reserves '@': quote the value, e.g. cron: \"@daily\")",
        ),
        ("schedule: {cron: */5 1,2 * * *, timezone: UTC}\n", 'e.g. cron: "*/5 1,2 * * *")'),
    ],
)
def test_unquoted_cron_expression_is_a_syntax_error_that_says_to_quote_it(schedule: str, hint: str) -> None:
    p = only_problem(HEAD + schedule + "tasks: {a: {command: [x]}}\n")
    assert p.message.startswith("YAML syntax error: ")
    assert p.message.endswith(hint), p.message

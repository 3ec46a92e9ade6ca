"""Every class of mistake is reported with its line, its field path and what is wrong."""

from __future__ import annotations

from leoflow.spec.fields import MAX_TASK_NAME, MAX_TASKS
from tests.unit.spec.dagfiles import HEAD, only_problem, problems


def test_yaml_syntax_error_names_line_and_column() -> None:
    p = only_problem(HEAD + "tasks:\n  a: {command: [x, y}\n")
    assert p.mark.line == 4
    assert "YAML syntax error" in p.message


def test_unknown_field_suggests_the_close_match() -> None:
    p = only_problem(HEAD + "tasks:\n  extract:\n    command: [x]\n    retires: 3\n")
    assert (p.mark.line, p.mark.column) == (6, 5)
    assert p.path == "tasks.extract.retires"
    assert p.message == "unknown field 'retires'; did you mean 'retries'?"


def test_unknown_top_level_field_suggests_schedule() -> None:
    p = only_problem(HEAD + "schedul: {cron: '@daily'}\ntasks: {a: {command: [x]}}\n")
    assert p.mark.line == 3
    assert "did you mean 'schedule'?" in p.message


def test_wrong_type_names_expected_and_actual() -> None:
    p = only_problem(HEAD + "tasks:\n  a:\n    command: [x]\n    retries: two\n")
    assert p.mark.line == 6
    assert p.path == "tasks.a.retries"
    assert "valid integer" in p.message and "got a string" in p.message


def test_wrong_type_of_env_value_lists_the_accepted_shapes() -> None:
    p = only_problem(HEAD + "tasks:\n  a:\n    command: [x]\n    env: {A: [1, 2]}\n")
    assert p.mark.line == 6
    assert p.path == "tasks.a.env.A"
    assert "a string" in p.message and "'secret'" in p.message and "got a list" in p.message


def test_secret_env_missing_key_points_into_the_mapping() -> None:
    p = only_problem(HEAD + "tasks:\n  a:\n    command: [x]\n    env:\n      PASSWORD: {secret: db}\n")
    assert p.mark.line == 7
    assert p.message == "missing required field 'key'"


def test_missing_command_is_reported_on_the_task() -> None:
    p = only_problem(HEAD + "tasks:\n  a:\n    retries: 1\n")
    assert p.mark.line == 5
    assert "needs a 'command'" in p.message


def test_cycle_is_named() -> None:
    p = only_problem(
        HEAD
        + """\
tasks:
  a: {command: [x], after: [c]}
  b: {command: [x], after: [a]}
  c: {command: [x], after: [b]}
"""
    )
    assert p.mark.line == 4
    assert p.message == "cycle: a -> c -> b -> a"


def test_self_dependency_is_a_cycle() -> None:
    p = only_problem(HEAD + "tasks:\n  a: {command: [x]}\n  b: {command: [x], after: [b]}\n")
    assert p.mark.line == 5
    assert p.message == "cycle: b -> b"


def test_unknown_upstream_suggests_the_close_name() -> None:
    p = only_problem(
        HEAD + "tasks:\n  extract: {command: [x]}\n  load:\n    command: [x]\n    after: [extrat]\n"
    )
    assert (p.mark.line, p.path) == (7, "tasks.load.after[0]")
    assert p.message == "unknown task 'extrat'; did you mean 'extract'?"


def test_duplicate_task_name_is_refused() -> None:
    p = only_problem(HEAD + "tasks:\n  a: {command: [x]}\n  a: {command: [y]}\n")
    assert p.mark.line == 5
    assert "duplicate key 'a'" in p.message


def test_upstream_listed_twice() -> None:
    p = only_problem(HEAD + "tasks:\n  a: {command: [x]}\n  b: {command: [x], after: [a, a]}\n")
    assert p.mark.line == 5
    assert "'a' is listed twice" in p.message


def test_dag_name_must_be_dns_1123() -> None:
    p = only_problem("dag: My_DAG\nimage: x\ntasks: {a: {command: [x]}}\n")
    assert (p.mark.line, p.path) == (1, "dag")
    assert "not a DNS-1123 label" in p.message


def test_task_name_too_long_for_pod_names() -> None:
    name = "t" * (MAX_TASK_NAME + 1)
    p = only_problem(HEAD + f"tasks:\n  {name}: {{command: [x]}}\n")
    assert p.mark.line == 4
    assert f"the maximum is {MAX_TASK_NAME}" in p.message


def test_task_name_with_uppercase_is_refused() -> None:
    p = only_problem(HEAD + "tasks:\n  Extract: {command: [x]}\n")
    assert p.mark.line == 4
    assert "not a DNS-1123 label" in p.message


def test_bad_cron_expression() -> None:
    p = only_problem(HEAD + "schedule: {cron: '0 25 * * *'}\ntasks: {a: {command: [x]}}\n")
    assert (p.mark.line, p.path) == (3, "schedule.cron")
    assert "not a valid cron expression" in p.message


def test_cron_with_wrong_field_count() -> None:
    p = only_problem(HEAD + "schedule: {cron: '0 * *'}\ntasks: {a: {command: [x]}}\n")
    assert "expected 5 fields" in p.message


def test_unknown_timezone_suggests_the_close_one() -> None:
    p = only_problem(
        HEAD + "schedule:\n  cron: '@hourly'\n  timezone: Europe/Pariss\ntasks: {a: {command: [x]}}\n"
    )
    assert (p.mark.line, p.path) == (5, "schedule.timezone")
    assert p.message == "unknown timezone 'Europe/Pariss'; did you mean 'Europe/Paris'?"


def test_bad_duration() -> None:
    p = only_problem(HEAD + "defaults:\n  retryDelay: 5 minutes\ntasks: {a: {command: [x]}}\n")
    assert (p.mark.line, p.path) == (4, "defaults.retryDelay")
    assert "'5 minutes' is not a duration" in p.message


def test_bad_resource_quantity() -> None:
    p = only_problem(HEAD + "tasks:\n  a:\n    command: [x]\n    resources: {memory: 512MB}\n")
    assert (p.mark.line, p.path) == (6, "tasks.a.resources.memory")
    assert "'512MB' is not a resource quantity" in p.message


def test_template_naming_an_unknown_param() -> None:
    p = only_problem(
        HEAD + "params: {day: {default: x}}\ntasks:\n  a:\n    command: [run, '--day={{ params.dya }}']\n"
    )
    assert (p.mark.line, p.path) == (6, "tasks.a.command[1]")
    assert "refers to no param 'dya'; did you mean 'day'?" in p.message


def test_template_naming_a_task_that_is_not_upstream() -> None:
    p = only_problem(
        HEAD
        + """\
tasks:
  a: {command: [x], outputs: [rows]}
  b:
    command: [x, "{{ tasks.a.outputs.rows }}"]
"""
    )
    assert (p.mark.line, p.path) == (6, "tasks.b.command[1]")
    assert "which is not upstream of 'b'" in p.message


def test_template_naming_an_undeclared_output() -> None:
    p = only_problem(
        HEAD
        + """\
tasks:
  a: {command: [x], outputs: [rows]}
  b:
    after: [a]
    command: [x]
    env: {N: "{{ tasks.a.outputs.count }}"}
"""
    )
    assert (p.mark.line, p.path) == (8, "tasks.b.env.N")
    assert "declares no output 'count'" in p.message


def test_template_item_outside_a_fan_out() -> None:
    p = only_problem(HEAD + "tasks:\n  a: {command: [x, '{{ item }}']}\n")
    assert p.mark.line == 4
    assert "only bound in a task with a 'fanOut'" in p.message


def test_malformed_template_expression() -> None:
    p = only_problem(HEAD + "tasks:\n  a: {command: [x, '{{ params }}']}\n")
    assert "is not a template" in p.message


def test_unclosed_template() -> None:
    p = only_problem(HEAD + "tasks:\n  a: {command: [x, '{{ run_id']}\n")
    assert "not closed" in p.message


def test_param_default_of_the_wrong_type() -> None:
    p = only_problem(HEAD + "params:\n  n: {type: integer, default: many}\ntasks: {a: {command: [x]}}\n")
    assert (p.mark.line, p.path) == (4, "params.n.default")
    assert "is not of type integer" in p.message


def test_too_many_tasks_is_a_size_limit() -> None:
    tasks = "".join(f"  t{i}: {{command: [x]}}\n" for i in range(MAX_TASKS + 1))
    found = problems(HEAD + "tasks:\n" + tasks)
    assert any(p.path == "tasks" and "at most 10000" in p.message for p in found)


def test_sensor_needs_exactly_one_kind() -> None:
    p = only_problem(HEAD + "tasks:\n  wait:\n    sensor: {pokeInterval: 10s}\n")
    assert p.mark.line == 5
    assert "exactly one of time, http, kubernetes, dagRun, command" in p.message


def test_invalid_env_name() -> None:
    p = only_problem(HEAD + "tasks:\n  a:\n    command: [x]\n    env: {'1BAD': x}\n")
    assert (p.mark.line, p.mark.column) == (6, 11)
    assert "not a valid environment variable name" in p.message


def test_every_problem_is_reported_at_once_in_file_order() -> None:
    found = problems(
        """\
dag: Bad_Name
image: x
schedule: {cron: nope, timezone: Mars/Olympus}
tasks:
  a: {command: [x], retries: -1, timeout: forever}
  b: {command: [x], after: [zzz]}
"""
    )
    lines = [p.mark.line for p in found]
    assert lines == sorted(lines)
    assert len(found) == 6
    assert {p.path for p in found} >= {"dag", "schedule.cron", "schedule.timezone", "tasks.b.after[0]"}


def test_yaml_boolean_where_a_string_is_meant_suggests_quoting() -> None:
    p = only_problem(HEAD + "tasks:\n  a:\n    command: [x]\n    env: {DEBUG: yes}\n")
    assert p.path == "tasks.a.env.DEBUG"
    assert "got a boolean (quote it" in p.message


def test_fan_out_item_of_the_wrong_type_names_the_item() -> None:
    p = only_problem(HEAD + "tasks:\n  a:\n    command: [x]\n    fanOut: {items: [eu, {region: us}]}\n")
    assert (p.mark.line, p.path) == (6, "tasks.a.fanOut.items[1]")
    assert p.message == "wrong type: expected a string or an integer or a number or a boolean, got a mapping"


def test_param_default_that_is_not_a_scalar_is_reported_once() -> None:
    p = only_problem(HEAD + "params:\n  p: {default: [1]}\ntasks: {a: {command: [x]}}\n")
    assert (p.mark.line, p.path) == (4, "params.p.default")
    assert "got a list" in p.message

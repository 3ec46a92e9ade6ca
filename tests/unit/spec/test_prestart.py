"""prestart: which tasks get their pods created ahead, and a clear refusal where one cannot."""

from __future__ import annotations

import textwrap

import pytest

from leoflow.spec.compiler import compile_text
from tests.unit.spec.dagfiles import HEAD, only_problem


def _ahead(text: str) -> set[str]:
    spec = compile_text(HEAD + textwrap.dedent(text)).spec
    return {t.name for t in spec.tasks if t.prestart}


def test_defaults_prestart_applies_to_every_task_that_can_wait_for_its_upstreams() -> None:
    text = """\
        defaults: {prestart: true}
        params: {day: {default: "1"}}
        tasks:
          extract: {command: [x], outputs: [rows]}
          plain: {command: [x, "{{ params.day }}"], after: [extract]}
          reads: {command: [x, "{{ tasks.extract.outputs.rows }}"], after: [extract]}
          handler: {command: [x], after: [extract], trigger: one_failed}
          items: {command: [x, "{{ item }}"], after: [extract], fanOut: {items: [a, b]}}
          wait: {after: [extract], sensor: {time: {delay: 5s}}}
          optout: {command: [x], after: [extract], prestart: false}
        """
    # A root has nothing to wait for; the others' pods depend on how their upstreams end.
    assert _ahead(text) == {"plain"}


def test_unset_prestart_means_auto_every_task_that_can_except_gpu_ones_and_those_after_sensors() -> None:
    text = """\
        tasks:
          extract: {command: [x]}
          load: {command: [x], after: [extract]}
          train: {command: [x], after: [extract], resources: {gpu: "1"}}
          report: {command: [x], after: [train]}
          landed: {after: [extract], sensor: {time: {delay: 1h}}}
          publish: {command: [x], after: [landed, load]}
        """
    # A sensor may wait for hours: a pod waiting on it would hold its requests all that time.
    assert _ahead(text) == {"load", "report"}


def test_explicit_prestart_is_honoured_for_a_gpu_task_auto_leaves_out() -> None:
    text = """\
        defaults: {resources: {gpu: "1"}}
        tasks:
          a: {command: [x]}
          b: {command: [x], after: [a], prestart: true}
          c: {command: [x], after: [a], prestart: auto}
          d: {command: [x], after: [a]}
        """
    assert _ahead(text) == {"b"}


def test_auto_on_a_task_that_cannot_wait_ahead_is_not_an_error() -> None:
    text = """\
        tasks:
          a: {command: [x], outputs: [rows]}
          b: {command: [x, "{{ tasks.a.outputs.rows }}"], after: [a], prestart: auto}
          c: {command: [x], after: [a], trigger: one_failed, prestart: auto}
        """
    assert _ahead(text) == set()


def test_prestart_false_in_defaults_turns_it_off_where_tasks_do_not_ask() -> None:
    text = """\
        defaults: {prestart: false}
        tasks:
          a: {command: [x]}
          b: {command: [x], after: [a], prestart: true}
          c: {command: [x], after: [b]}
        """
    assert _ahead(text) == {"b"}


@pytest.mark.parametrize(
    ("task", "says"),
    [
        (
            '{command: [x, "{{ tasks.a.outputs.rows }}"], after: [a], prestart: true}',
            "'{{ tasks.a.outputs.rows }}' is known only once 'a' has finished",
        ),
        ("{command: [x], after: [a], trigger: all_done, prestart: true}", "only an 'all_success' task"),
        ("{command: [x], after: [a], fanOut: {items: [1, 2]}, prestart: true}", "a fan-out task's pods"),
        ("{after: [a], sensor: {time: {delay: 5s}}, prestart: true}", "a sensor task runs no pod"),
    ],
    ids=["reads-outputs", "trigger", "fan-out", "sensor"],
)
def test_explicit_prestart_that_cannot_be_honoured_is_refused_with_the_reason(task: str, says: str) -> None:
    text = HEAD + textwrap.dedent(
        f"""\
        tasks:
          a: {{command: [x], outputs: [rows]}}
          b: {task}
        """
    )
    problem = only_problem(text)
    assert says in problem.message
    assert problem.path.startswith("tasks.b."), problem


def test_explicit_prestart_on_a_task_without_upstreams_is_refused_but_defaults_skip_it() -> None:
    problem = only_problem(HEAD + "tasks:\n  a: {command: [x], prestart: true}\n")
    assert (problem.mark.line, problem.path) == (4, "tasks.a.prestart")
    assert "no upstream" in problem.message and "remove 'prestart'" in problem.message
    spec = compile_text(HEAD + "defaults: {prestart: true}\ntasks:\n  a: {command: [x]}\n").spec
    assert not spec.tasks[0].prestart


def test_prestart_value_other_than_true_false_or_auto_is_refused_where_it_is_written() -> None:
    problem = only_problem(
        HEAD
        + textwrap.dedent(
            """\
            tasks:
              a: {command: [x]}
              b: {command: [x], after: [a], prestart: sometimes}
            """
        )
    )
    assert problem.path == "tasks.b.prestart", problem
    assert "expected a boolean or 'auto', got a string" in problem.message, problem.message


def test_an_output_template_inherited_from_defaults_env_keeps_the_pod_from_being_created_ahead() -> None:
    # defaults.env is rendered into every task's pod that does not set the name itself.
    text = """\
        defaults: {env: {ROWS: "{{ tasks.extract.outputs.rows }}"}}
        tasks:
          extract: {command: [x], outputs: [rows], env: {ROWS: "0"}}
          load: {command: [x], after: [extract]}
          own: {command: [x], after: [extract], env: {ROWS: "1"}}
        """
    assert _ahead(text) == {"own"}


def test_explicit_prestart_with_an_output_template_inherited_from_defaults_is_refused() -> None:
    text = """\
        defaults: {env: {ROWS: "{{ tasks.extract.outputs.rows }}"}}
        tasks:
          extract: {command: [x], outputs: [rows], env: {ROWS: "0"}}
          load: {command: [x], after: [extract], prestart: true}
        """
    problem = str(only_problem(HEAD + textwrap.dedent(text)))
    assert "tasks.load.prestart: its env ROWS (from defaults.env) is" in problem
    assert "which is known only once 'extract' has finished" in problem

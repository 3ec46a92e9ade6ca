"""``leoflow compile | validate | graph``: output on stdout, every problem on stderr, exit 2."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml

from leoflow.cli import spec as spec_cli

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "etl" / "leoflow.yaml"


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="leoflow")
    spec_cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


def test_compile_prints_the_dag_resource_as_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("compile", str(EXAMPLE)) == 0
    resource = yaml.safe_load(capsys.readouterr().out)
    assert resource["kind"] == "DAG" and resource["metadata"]["name"] == "etl"


def test_compile_json_with_namespace(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("compile", str(EXAMPLE), "-o", "json", "-n", "team-a") == 0
    resource = json.loads(capsys.readouterr().out)
    assert resource["metadata"]["namespace"] == "team-a"


def test_validate_reports_every_problem_on_stderr_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "leoflow.yaml"
    bad.write_text("dag: Bad\nimage: x\ntasks:\n  a: {comand: [x]}\n  b: {command: [x], after: [c]}\n")
    assert _run("validate", str(bad)) == 2
    out = capsys.readouterr()
    assert out.out == ""
    lines = out.err.splitlines()
    assert lines[0].startswith(f"{bad}:1:6: dag: 'Bad' is not a DNS-1123 label")
    assert any(":4:" in line and "did you mean 'command'?" in line for line in lines)
    assert any(":5:" in line and "unknown task 'c'" in line for line in lines)
    assert lines[-1] == f"leoflow: 3 problems in {bad}"


def test_missing_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("validate", str(tmp_path / "nope.yaml")) == 2
    assert "cannot read the file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("text", "1  transform  <- extract"),
        ("dot", '"extract" -> "transform";'),
        ("mermaid", "t0 --> t1"),
    ],
)
def test_graph_formats(fmt: str, expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("graph", str(EXAMPLE), "--format", fmt) == 0
    assert expected in capsys.readouterr().out

"""``leoflow compile | validate | graph`` take FILE the way ``leoflow apply`` does, and refuse what
they cannot use with one line that says what to pass instead."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from leoflow.cli import EXIT_USAGE, main

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "etl" / "leoflow.yaml"


@pytest.mark.parametrize("command", ["compile", "validate", "graph"])
def test_a_directory_means_the_leoflow_yaml_in_it_as_for_apply(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, str(EXAMPLE.parent)]) == 0
    by_directory = capsys.readouterr().out
    assert main([command, str(EXAMPLE)]) == 0
    assert by_directory == capsys.readouterr().out


def test_a_directory_without_leoflow_yaml_names_the_file_looked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(tmp_path)]) == EXIT_USAGE
    assert f"{tmp_path / 'leoflow.yaml'}:1:1: cannot read the file" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["compile", "validate", "graph", "apply"])
def test_stdin_is_refused_with_what_to_pass_instead(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "-"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "leoflow.yaml is read from a file, not stdin: pass its path or the directory holding it" in err


@pytest.mark.parametrize("namespace", ["Bad NS", "team_a", "-a", "a" * 64])
def test_compile_refuses_a_namespace_install_would_refuse(
    namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compile", str(EXAMPLE), f"--namespace={namespace}"]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"--namespace {namespace!r} is not a valid namespace name" in captured.err
    assert main(["install", "--print", f"--namespace={namespace}"]) == EXIT_USAGE
    assert f"--namespace {namespace!r} is not a valid namespace name" in capsys.readouterr().err


def test_compile_sets_a_valid_namespace(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", str(EXAMPLE), "-n", "team-a"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["metadata"]["namespace"] == "team-a"

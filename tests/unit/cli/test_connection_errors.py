"""Every way of not reaching a cluster is one line on stderr and the right exit code.

A kubeconfig that is missing, garbage or lacks the context is the user's input: exit 2. A
cluster that does not answer is the thing failing: exit 1. No traceback, ever.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from leoflow.cli import main
from leoflow.cli.kubeclient import kubeconfig_path, resolve_target

COMMANDS = [
    ["get", "dags"],
    ["get", "runs"],
    ["describe", "run", "r1"],
    ["watch", "run", "r1"],
    ["logs", "r1", "extract"],
    ["cancel", "r1"],
    ["retry", "r1", "--failed"],
]


def kubeconfig(path: Path, server: str, *, namespace: str | None = None) -> Path:
    context: dict[str, str] = {"cluster": "c", "user": "u"}
    if namespace:
        context["namespace"] = namespace
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "ctx", "context": context}],
                "current-context": "ctx",
            }
        )
    )
    return path


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_unreachable_cluster_is_one_line_and_exit_1(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = kubeconfig(tmp_path / "config", f"https://127.0.0.1:{closed_port()}")
    assert main([*command, "--kubeconfig", str(config)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("leoflow: error: cannot reach the cluster at https://127.0.0.1:")
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{{{ not yaml", "is not valid YAML"),
        ("\x00\x01garbage", "is not"),
        ("just a string", "is not a kubeconfig"),
        ("contexts: []\ncurrent-context: gone\n", "has no context 'gone'"),
    ],
)
def test_bad_kubeconfig_is_one_line_and_exit_2(
    content: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config"
    config.write_text(content)
    assert main(["get", "dags", "--kubeconfig", str(config)]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1


def test_missing_kubeconfig_says_how_to_get_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["get", "runs", "--kubeconfig", str(tmp_path / "nope")]) == 2
    assert "leoflow dev kubeconfig" in capsys.readouterr().err


def test_unknown_context_lists_the_known_ones(tmp_path: Path) -> None:
    config = kubeconfig(tmp_path / "config", "https://127.0.0.1:1")
    with pytest.raises(Exception, match=r"has no context 'other' \(contexts: ctx\)"):
        resolve_target(config, "other", None)


def test_namespace_comes_from_flag_then_context_then_default(tmp_path: Path) -> None:
    with_ns = kubeconfig(tmp_path / "a", "https://127.0.0.1:1", namespace="team-a")
    without = kubeconfig(tmp_path / "b", "https://127.0.0.1:1")
    assert resolve_target(with_ns, None, "flag").namespace == "flag"
    assert resolve_target(with_ns, None, None).namespace == "team-a"
    assert resolve_target(without, None, None).namespace == "default"


def test_kubeconfig_env_takes_the_first_existing_file(tmp_path: Path) -> None:
    present = kubeconfig(tmp_path / "present", "https://127.0.0.1:1")
    listed = f"{tmp_path / 'absent'}:{present}"
    assert kubeconfig_path(None, {"KUBECONFIG": listed}) == present
    assert kubeconfig_path(tmp_path / "flag", {"KUBECONFIG": listed}) == tmp_path / "flag"
    assert kubeconfig_path(None, {}) == Path.home() / ".kube" / "config"


def test_apply_of_an_invalid_file_is_exit_2_before_any_cluster_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "leoflow.yaml"
    bad.write_text("dag: ETL\nimage: x\ntasks: {a: {command: [true]}}\n")
    config = kubeconfig(tmp_path / "config", f"https://127.0.0.1:{closed_port()}")
    assert main(["apply", str(bad), "--kubeconfig", str(config)]) == 2
    err = capsys.readouterr().err
    assert "leoflow.yaml:1:6: dag:" in err and "cannot reach" not in err


@pytest.mark.parametrize(
    "argv",
    [["logs", "r1", "t", "--attempt", "0"], ["get", "pods"], ["watch", "run"], ["describe", "dag", "x"]],
    ids=" ".join,
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2

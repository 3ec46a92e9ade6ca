from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import aiohttp
import pytest

from leoflow.cli import main
from leoflow.dev.processes import free_port
from leoflow.webhook import agent_in_image, image_index
from leoflow.webhook.server import ServeOptions, serve
from leoflow.webhook.serving import WebhookConfig

from .reviewing import SETTINGS, pod, review

SERVE = [
    "webhook",
    "serve",
    "--cert-file",
    "c",
    "--key-file",
    "k",
    "--agent-image",
    "a",
    "--controller-addr",
    "c:1",
]


def test_serve_without_required_flags_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("LEOFLOW_WEBHOOK_CERT_FILE", "LEOFLOW_AGENT_IMAGE", "LEOFLOW_CONTROLLER_ADDR"):
        monkeypatch.delenv(name, raising=False)
    assert main(["webhook", "serve", "--key-file", "k"]) == 2
    assert "missing --cert-file, --agent-image, --controller-addr" in capsys.readouterr().err


def test_serve_with_a_bad_image_index_names_the_file_and_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index = tmp_path / "index.yaml"
    index.write_text("nginx:1.27:\n  entrypoint: /docker-entrypoint.sh\n")
    assert main([*SERVE, "--image-index", str(index)]) == 2
    err = capsys.readouterr().err
    assert f"{index}: nginx:1.27.entrypoint" in err


@pytest.mark.parametrize("missing", ["--cert-file", "--key-file"])
def test_serve_with_an_unreadable_certificate_file_names_the_flag_and_the_path(
    missing: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["certs", "generate", "--out", str(tmp_path), "--service", "wh", "--namespace", "ns"]) == 0
    files = {"--cert-file": tmp_path / "tls.crt", "--key-file": tmp_path / "tls.key"}
    files[missing] = tmp_path / "none.pem"
    argv = ["webhook", "serve", "--agent-image", "a", "--controller-addr", "c:1"]
    argv += ["--cert-file", str(files["--cert-file"]), "--key-file", str(files["--key-file"])]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{missing} (or LEOFLOW_WEBHOOK_" in err
    assert f"{tmp_path / 'none.pem'}: cannot read it: No such file or directory" in err


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_serve_refuses_a_cert_check_interval_that_would_spin_or_never_check(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*SERVE, "--cert-check-interval", value]) == 2
    assert "--cert-check-interval must be a positive number of seconds" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("99999", "must be a port between 1 and 65535, got 99999"),
        ("-1", "must be a port between 1 and 65535, got -1"),
        ("0", "must be a port between 1 and 65535, got 0"),
        ("https", "must be a port number, got 'https'"),
    ],
)
def test_serve_refuses_a_port_outside_1_to_65535_naming_flag_and_variable(
    value: str, fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*SERVE, "--port", value]) == 2
    err = capsys.readouterr().err
    assert f"--port (or LEOFLOW_WEBHOOK_PORT) {fragment}" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("nocolon", "must be HOST:PORT, got 'nocolon'"),
        (":9443", "must be HOST:PORT, got ':9443'"),
        ("c:port", "must be HOST:PORT, got 'c:port'"),
        ("c:99999", "'c:99999': the port must be between 1 and 65535"),
        ("c:0", "'c:0': the port must be between 1 and 65535"),
    ],
)
def test_serve_requires_the_controller_address_as_host_and_port(
    value: str, fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*SERVE, "--controller-addr", value]) == 2
    assert f"--controller-addr (or LEOFLOW_CONTROLLER_ADDR) {fragment}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--token-expiry-seconds", "-5"],
            "--token-expiry-seconds (or LEOFLOW_TOKEN_EXPIRY_SECONDS) must be at least 600, got -5",
        ),
        (
            ["--token-expiry-seconds", "soon"],
            "--token-expiry-seconds (or LEOFLOW_TOKEN_EXPIRY_SECONDS) must be an integer, got 'soon'",
        ),
        (["--agent-version", " "], "--agent-version (or LEOFLOW_AGENT_VERSION) must not be empty"),
        (
            ["--agent-image", " "],
            "--agent-image (or LEOFLOW_AGENT_IMAGE) must name the agent's container image",
        ),
    ],
)
def test_a_setting_the_injection_refuses_is_reported_by_its_flag_and_variable(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*SERVE, *flags]) == 2
    err = capsys.readouterr().err
    assert f"leoflow: error: {message}\n" in err
    assert "token_expiry_seconds" not in err and "agent_version" not in err


def test_image_index_loads_entrypoint_and_cmd(tmp_path: Path) -> None:
    index = tmp_path / "index.yaml"
    index.write_text(
        'nginx:1.27:\n  entrypoint: ["/docker-entrypoint.sh"]\n  cmd: ["nginx", "-g", "daemon off;"]\n'
    )
    entry = image_index.load(index)["nginx:1.27"]
    assert entry.entrypoint == ("/docker-entrypoint.sh",)
    assert entry.cmd == ("nginx", "-g", "daemon off;")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a: {}\n", "a: Value error, needs an entrypoint or a cmd"),
        ("a: {extra: 1}\n", "a.extra"),
        (": :\n", "not YAML"),
    ],
)
def test_image_index_errors_name_what_is_wrong(tmp_path: Path, text: str, fragment: str) -> None:
    index = tmp_path / "index.yaml"
    index.write_text(text)
    with pytest.raises(image_index.ImageIndexError, match=fragment):
        image_index.load(index)


async def test_serve_answers_over_tls_and_stops_when_asked(tmp_path: Path) -> None:
    assert main(["certs", "generate", "--out", str(tmp_path), "--service", "wh", "--namespace", "ns"]) == 0
    stop = asyncio.Event()
    port = free_port()
    options = ServeOptions(cert_file=tmp_path / "tls.crt", key_file=tmp_path / "tls.key", port=port)
    server = asyncio.create_task(serve(options, WebhookConfig(injection=SETTINGS), stop=stop))
    context = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        for _ in range(100):
            try:
                async with session.get(f"https://127.0.0.1:{port}/readyz") as resp:
                    if resp.status == 200:
                        break
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("webhook never became ready")
        async with session.post(
            f"https://127.0.0.1:{port}/mutate-pods", json=review(pod(command=["x"]))
        ) as resp:
            assert resp.status == 200
            assert (await resp.json())["response"]["patchType"] == "JSONPatch"
    stop.set()
    await asyncio.wait_for(server, 10)


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ("registry.local/dags/", "--agent-in-image 'registry.local/dags/': expected IMAGE-PREFIX=PATH"),
        ("=/usr/local/bin/leoflow-agent", "expected IMAGE-PREFIX=PATH"),
        (
            "r/=bin/leoflow-agent",
            "--agent-in-image (or LEOFLOW_AGENT_IN_IMAGE) entry r/=bin/leoflow-agent: "
            "the path is not absolute",
        ),
        ("r/=/usr/bin/../leoflow-agent", "the path is not clean"),
    ],
)
def test_serve_with_a_bad_agent_in_image_entry_names_it(
    entry: str, fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*SERVE, "--agent-in-image", entry]) == 2
    assert fragment in capsys.readouterr().err


def test_agent_in_image_entries_come_from_flags_or_the_environment() -> None:
    assert agent_in_image.parse(["r/a:=/x/leoflow-agent", "r/b=/y/leoflow-agent"]) == {
        "r/a:": "/x/leoflow-agent",
        "r/b": "/y/leoflow-agent",
    }
    assert agent_in_image.from_environment(" r/a:=/x\n r/b=/y ") == ["r/a:=/x", "r/b=/y"]
    assert agent_in_image.from_environment(None) == []
    with pytest.raises(agent_in_image.AgentInImageError, match="prefix 'r/' is given twice"):
        agent_in_image.parse(["r/=/x", "r/=/y"])


def test_serve_reads_the_agent_in_image_index_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LEOFLOW_AGENT_IN_IMAGE", "r/=/usr/local/bin/leoflow-agent q/=relative")
    assert main(SERVE) == 2
    assert "LEOFLOW_AGENT_IN_IMAGE) entry q/=relative: the path is not absolute" in capsys.readouterr().err

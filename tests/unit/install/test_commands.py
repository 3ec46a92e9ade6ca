"""Every container the manifests run is a `leoflow` command line the CLI accepts, with the
environment the Deployment gives it: a renamed or removed flag fails here, not in a crash loop."""

from __future__ import annotations

import re
from typing import Any

import pytest

from leoflow.cli import build_parser
from leoflow.install import manifests
from tests.unit.install.rendered import MANIFESTS, containers

_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def leoflow_containers() -> list[tuple[str, dict[str, Any]]]:
    return [(w, c) for w, c in containers(manifests.load_kustomization(MANIFESTS)) if "command" not in c]


def container_env(container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the kubelet resolves it; references stand in as placeholders."""
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = _REFERENCE.sub(lambda m: env.get(m.group(1), m.group(0)), item["value"])
        else:
            env[item["name"]] = f"<{item['name']} from {next(iter(item['valueFrom']))}>"
    return env


def test_the_manifests_run_the_controller_the_webhook_and_the_certificate_keeper() -> None:
    commands = {tuple(c["args"][:2]) for _, c in leoflow_containers()}
    assert commands == {("controller", "run"), ("webhook", "serve"), ("certs", "keep")}


@pytest.mark.parametrize(
    ("where", "container"), leoflow_containers(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_container_arguments_parse_with_the_cli(
    where: str, container: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = container_env(container)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = [_REFERENCE.sub(lambda m: env[m.group(1)], a) for a in container["args"]]
    try:
        parsed = build_parser().parse_args(args)
    except SystemExit:
        pytest.fail(f"{where}: leoflow {' '.join(args)} is refused by the CLI")
    assert parsed.handler is not None


def test_webhook_gets_every_setting_it_requires_from_its_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    (webhook,) = [c for w, c in leoflow_containers() if c["args"][:2] == ["webhook", "serve"]]
    for name, value in container_env(webhook).items():
        monkeypatch.setenv(name, value)
    parsed = build_parser().parse_args(webhook["args"])
    mounts = {m["mountPath"] for m in webhook["volumeMounts"]}
    for path in (parsed.cert_file, parsed.key_file):
        assert any(path.startswith(f"{mount}/") for mount in mounts), f"{path} is not on a mounted volume"
    assert parsed.bind == "0.0.0.0", "reachable by the API server, not only on loopback"
    assert int(parsed.port) == 8443
    assert parsed.agent_image and parsed.controller_addr
    assert parsed.controller_addr == "leoflow-controller.<POD_NAMESPACE from fieldRef>.svc:9443"


def test_controller_serves_agents_with_the_mounted_certificate() -> None:
    (controller,) = [c for w, c in leoflow_containers() if c["args"][:2] == ["controller", "run"]]
    parsed = build_parser().parse_args(controller["args"])
    mounts = {m["mountPath"] for m in controller["volumeMounts"]}
    for path in (parsed.agent_tls_cert, parsed.agent_tls_key):
        assert any(path.startswith(f"{mount}/") for mount in mounts), f"{path} is not on a mounted volume"
    assert parsed.agent_address.endswith(":9443")
    assert parsed.metrics_address.endswith(":8080")
    assert parsed.leader_elect is True

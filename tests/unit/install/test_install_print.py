"""``leoflow install --print``: a complete install a user pipes to ``kubectl apply -f -``."""

from __future__ import annotations

import base64
import datetime
from typing import Any

import pytest
import yaml
from cryptography import x509

from leoflow.certs import authority, rotation
from leoflow.cli import main
from leoflow.install import manifests, rendering
from tests.unit.install.rendered import MANIFESTS, containers, find
from tests.unit.install.test_manifests import HARDENED

NOW = datetime.datetime(2026, 11, 24, 8, 0, tzinfo=datetime.UTC)


def printed(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, Any]]:
    assert main(["install", "--print", *args]) == 0
    documents = list(yaml.safe_load_all(capsys.readouterr().out))
    assert all(isinstance(d, dict) for d in documents)
    return documents


def _pem(data: str) -> bytes:
    return base64.b64decode(data, validate=True)


def test_printed_documents_are_complete_objects(capsys: pytest.CaptureFixture[str]) -> None:
    documents = printed(capsys)
    for doc in documents:
        assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"]
    kinds = [d["kind"] for d in documents]
    assert kinds[0] == "Namespace", "the namespace exists before anything is created in it"
    assert kinds.index("CustomResourceDefinition") < kinds.index("Deployment")
    assert kinds[-1] == "MutatingWebhookConfiguration", "pods are intercepted only once all else is there"


def test_ca_bundle_trusts_the_webhook_serving_certificate(capsys: pytest.CaptureFixture[str]) -> None:
    documents = printed(capsys)
    (webhook,) = find(documents, "MutatingWebhookConfiguration", "leoflow-agent-injector")["webhooks"]
    ca = x509.load_pem_x509_certificate(_pem(webhook["clientConfig"]["caBundle"]))
    secret = find(documents, "Secret", "leoflow-webhook-tls")
    assert secret["type"] == "kubernetes.io/tls"
    serving = x509.load_pem_x509_certificate(_pem(secret["data"]["tls.crt"]))
    assert authority.signed_by(serving, ca)
    dns, _ = authority.subject_alternative_names(serving)
    assert "leoflow-webhook.leoflow-system.svc" in dns


def test_webhook_adopts_the_printed_certificates_without_rotating(capsys: pytest.CaptureFixture[str]) -> None:
    secret = find(printed(capsys), "Secret", "leoflow-webhook-tls")
    state = rotation.state_from_secret_data(secret["data"])
    kept = rotation.rotate(
        state,
        dns_names=authority.service_dns_names("leoflow-webhook", "leoflow-system"),
        ip_addresses=(),
        now=datetime.datetime.now(datetime.UTC),
        policy=rotation.RotationPolicy(),
    )
    assert not kept.changed, kept.reasons


def test_agents_trust_the_controller_endpoint_through_the_ca_configmap(
    capsys: pytest.CaptureFixture[str],
) -> None:
    documents = printed(capsys)
    ca = x509.load_pem_x509_certificate(find(documents, "ConfigMap", "leoflow-ca")["data"]["ca.crt"].encode())
    secret = find(documents, "Secret", "leoflow-controller-tls")
    serving = x509.load_pem_x509_certificate(_pem(secret["data"]["tls.crt"]))
    assert authority.signed_by(serving, ca)
    assert "leoflow-controller.leoflow-system.svc" in authority.subject_alternative_names(serving)[0]


def test_each_print_generates_fresh_keys(capsys: pytest.CaptureFixture[str]) -> None:
    first = find(printed(capsys), "Secret", "leoflow-webhook-tls")["data"]["tls.key"]
    second = find(printed(capsys), "Secret", "leoflow-webhook-tls")["data"]["tls.key"]
    assert first != second


def test_namespace_option_moves_every_reference(capsys: pytest.CaptureFixture[str]) -> None:
    documents = printed(capsys, "--namespace", "workflows")
    assert "leoflow-system" not in yaml.safe_dump_all(documents)
    assert find(documents, "Namespace", "workflows")
    for binding in (d for d in documents if d["kind"].endswith("RoleBinding")):
        assert {s["namespace"] for s in binding["subjects"]} == {"workflows"}
    (webhook,) = find(documents, "MutatingWebhookConfiguration", "leoflow-agent-injector")["webhooks"]
    assert webhook["clientConfig"]["service"]["namespace"] == "workflows"
    assert "workflows" in webhook["namespaceSelector"]["matchExpressions"][0]["values"]
    serving = x509.load_pem_x509_certificate(
        _pem(find(documents, "Secret", "leoflow-webhook-tls")["data"]["tls.crt"])
    )
    assert "leoflow-webhook.workflows.svc" in authority.subject_alternative_names(serving)[0]


def test_every_printed_container_is_hardened_and_bounded(capsys: pytest.CaptureFixture[str]) -> None:
    found = list(containers(printed(capsys)))
    assert {where.split(":")[0] for where, _ in found} == {
        "Deployment/leoflow-controller",
        "Deployment/leoflow-webhook",
        "Deployment/leoflow-webhook-certificates",
    }
    for where, container in found:
        for key, value in HARDENED.items():
            assert container["securityContext"][key] == value, f"{where}: {key}"
        assert set(container["resources"]["requests"]) >= {"cpu", "memory"}, where
        assert set(container["resources"]["limits"]) >= {"cpu", "memory"}, where


def test_install_without_print_says_how_to_use_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["install"]) == 2
    assert "leoflow install --print | kubectl apply -f -" in capsys.readouterr().err


def test_invalid_namespace_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["install", "--print", "--namespace", "Bad_Name"]) == 2
    assert "--namespace 'Bad_Name' is not a valid namespace name" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--image", "--agent-image"])
@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_image_is_refused_not_replaced_by_the_default(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["install", "--print", flag, value]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"leoflow: error: {flag} must name an image, got an empty value" in captured.err


def test_manifests_directory_without_kustomization_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    assert main(["install", "--print", "--manifests", str(tmp_path)]) == 2
    assert f"{tmp_path}: no kustomization.yaml" in capsys.readouterr().err


def test_rendering_refuses_manifests_without_the_webhook_configuration() -> None:
    objects = [
        o for o in manifests.load_kustomization(MANIFESTS) if o["kind"] != "MutatingWebhookConfiguration"
    ]
    with pytest.raises(
        manifests.ManifestError, match="no MutatingWebhookConfiguration leoflow-agent-injector"
    ):
        rendering.render_install(objects, namespace=None, now=NOW)


def test_image_options_replace_every_image_and_the_injected_agent(capsys: pytest.CaptureFixture[str]) -> None:
    documents = printed(
        capsys,
        "--image",
        "registry.local/leoflow:dev",
        "--agent-image",
        "registry.local/agent:dev",
        "--image-pull-policy",
        "Never",
    )
    found = list(containers(documents))
    assert found
    for where, container in found:
        assert (container["image"], container["imagePullPolicy"]) == (
            "registry.local/leoflow:dev",
            "Never",
        ), where
    assert (
        find(documents, "ConfigMap", "leoflow-config")["data"]["LEOFLOW_AGENT_IMAGE"]
        == "registry.local/agent:dev"
    )


def test_webhook_reads_the_agent_image_from_the_install_config(capsys: pytest.CaptureFixture[str]) -> None:
    documents = printed(capsys)
    webhook = find(documents, "Deployment", "leoflow-webhook")["spec"]["template"]["spec"]["containers"][0]
    (agent_image,) = [e for e in webhook["env"] if e["name"] == "LEOFLOW_AGENT_IMAGE"]
    assert agent_image["valueFrom"]["configMapKeyRef"] == {
        "name": "leoflow-config",
        "key": "LEOFLOW_AGENT_IMAGE",
    }

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from cryptography import x509

from leoflow.certs import authority
from leoflow.cli import certs as certs_cli
from leoflow.cli import main


def test_generate_writes_ca_and_serving_certificate_with_service_names(tmp_path: Path) -> None:
    out = tmp_path / "tls"
    code = main(["certs", "generate", "--out", str(out), "--service", "wh", "--namespace", "ns"])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(certs_cli.FILES)
    assert (out / "tls.key").stat().st_mode & 0o777 == 0o600
    serving = x509.load_pem_x509_certificate((out / "tls.crt").read_bytes())
    ca = x509.load_pem_x509_certificate((out / "ca.crt").read_bytes())
    assert authority.signed_by(serving, ca)
    assert authority.subject_alternative_names(serving) == (
        frozenset({"wh", "wh.ns", "wh.ns.svc", "wh.ns.svc.cluster.local"}),
        frozenset({"127.0.0.1"}),
    )
    # The pair is usable as-is by an SSL server and verifiable by a client trusting ca.crt.
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(out / "tls.crt", out / "tls.key")
    client = ssl.create_default_context(cafile=str(out / "ca.crt"))
    assert client.cert_store_stats()["x509_ca"] == 1


def test_generate_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["certs", "generate", "--out", str(tmp_path), "--service", "wh", "--namespace", "ns"]
    assert main(argv) == 0
    assert main(argv) == 1
    assert "pass --force" in capsys.readouterr().err
    assert main([*argv, "--force", "--ip", "10.1.2.3", "--ip", "::1"]) == 0
    serving = x509.load_pem_x509_certificate((tmp_path / "tls.crt").read_bytes())
    assert authority.subject_alternative_names(serving)[1] == frozenset({"10.1.2.3", "::1"})


def test_generate_rejects_a_bad_ip_with_usage_exit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "certs",
        "generate",
        "--out",
        str(tmp_path),
        "--service",
        "wh",
        "--namespace",
        "ns",
        "--ip",
        "nope",
    ]
    assert main(argv) == 2
    assert "--ip 'nope' is not an IP address" in capsys.readouterr().err


def test_keep_rejects_a_bad_ip_before_touching_the_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certs", "keep", "--namespace", "ns", "--service", "wh", "--ip", "x"]) == 2
    assert "--ip 'x' is not an IP address" in capsys.readouterr().err


def test_keep_refuses_one_secret_for_both_endpoints(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["certs", "keep", "--namespace", "ns", "--service", "wh", "--controller-service", "ctl"]
    assert main([*argv, "--controller-secret", "leoflow-webhook-tls"]) == 2
    assert "--controller-secret must differ from --secret" in capsys.readouterr().err

"""The dev PKI issues a chain the apiserver and its clients accept."""

from __future__ import annotations

import ssl
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from leoflow.dev.pki import ensure_pki


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_admin_certificate_is_a_system_masters_client_signed_by_the_ca(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path)
    admin, ca = load(pki.cert("admin")), load(pki.ca_cert)
    admin.verify_directly_issued_by(ca)
    orgs = [a.value for a in admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert orgs == ["system:masters"]
    usages = admin.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_apiserver_certificate_names_loopback_and_in_cluster_service(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path)
    sans = load(pki.cert("apiserver")).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "kubernetes.default.svc" in sans.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "10.96.0.1"]


def test_server_and_client_contexts_load_the_issued_files(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pki.cert("apiserver"), pki.key("apiserver"))
    client = ssl.create_default_context(cafile=str(pki.ca_cert))
    client.load_cert_chain(pki.cert("admin"), pki.key("admin"))


def test_ensure_pki_keeps_existing_material(tmp_path: Path) -> None:
    first = ensure_pki(tmp_path).ca_cert.read_bytes()
    assert ensure_pki(tmp_path).ca_cert.read_bytes() == first
    assert oct(ensure_pki(tmp_path).ca_key.stat().st_mode & 0o777) == "0o600"

"""Issuing the webhook's CA and serving certificate with ``cryptography``.

The API server verifies the webhook against ``caBundle`` and the DNS name (or IP) it dials, so
the serving certificate carries every name a Service is reached by, plus loopback for a webhook
run outside the cluster. ECDSA P-256 keeps keys small and handshakes fast.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Issued a little in the past so a clock slightly behind ours does not see a future certificate.
_BACKDATE = datetime.timedelta(minutes=5)

LATEST_NOT_AFTER = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.UTC)
"""The last moment a certificate can be valid until: X.509 times have four-digit years (RFC 5280)."""


@dataclass(frozen=True)
class CertificatePair:
    """A certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @property
    def key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("expected an ECDSA private key")
        return key


def service_dns_names(service: str, namespace: str) -> tuple[str, ...]:
    """Every name a client in the cluster may use for ``service`` in ``namespace``."""
    return (
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    )


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def new_ca(*, common_name: str, now: datetime.datetime, validity: datetime.timedelta) -> CertificatePair:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificatePair(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))


def issue_leaf(
    ca: CertificatePair,
    *,
    common_name: str,
    now: datetime.datetime,
    validity: datetime.timedelta,
    organizations: tuple[str, ...] = (),
    dns_names: tuple[str, ...] = (),
    ip_addresses: tuple[str, ...] = (),
    server: bool = False,
    client: bool = False,
) -> CertificatePair:
    """A certificate signed by ``ca`` for a server (SANs), a client (CN/O identity) or both.

    Kubernetes reads a client's user from CN and its groups from O, so client certificates carry
    ``organizations``; servers are verified by SAN only (Go ignores CN).
    """
    if not server and not client:
        raise ValueError("a certificate must be for a server, a client or both")
    ca_cert = ca.cert
    ca_key = ca.key
    key = ec.generate_private_key(ec.SECP256R1())
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] * server + [ExtendedKeyUsageOID.CLIENT_AUTH] * client
    subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    subject.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(min(now + validity, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans.extend(x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return CertificatePair(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))


def issue_serving(
    ca: CertificatePair,
    *,
    dns_names: tuple[str, ...],
    ip_addresses: tuple[str, ...],
    now: datetime.datetime,
    validity: datetime.timedelta,
) -> CertificatePair:
    if not dns_names and not ip_addresses:
        raise ValueError("a serving certificate needs at least one DNS name or IP address")
    return issue_leaf(
        ca,
        common_name=(dns_names or ip_addresses)[0],
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        now=now,
        validity=validity,
        server=True,
    )


def subject_alternative_names(cert: x509.Certificate) -> tuple[frozenset[str], frozenset[str]]:
    """The DNS names and IP addresses a certificate is valid for."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return frozenset(), frozenset()
    return (
        frozenset(sans.get_values_for_type(x509.DNSName)),
        frozenset(str(ip) for ip in sans.get_values_for_type(x509.IPAddress)),
    )


def signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True

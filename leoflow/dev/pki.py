"""The dev cluster's PKI: one CA, serving and client certificates, the service-account key pair.

Admin access is a client certificate in ``system:masters`` (as envtest does), so the kubeconfig
needs no token and every component authenticates the same way. Certificates are issued by
:mod:`leoflow.certs.authority`, the same code that issues the webhook's.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from leoflow.certs import pemfiles
from leoflow.certs.authority import CertificatePair, issue_leaf, new_ca

VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True)
class Pki:
    """Paths of the files :func:`ensure_pki` writes under ``<home>/pki``."""

    dir: Path

    def cert(self, name: str) -> Path:
        return self.dir / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.dir / f"{name}.key"

    @property
    def ca_cert(self) -> Path:
        return self.cert("ca")

    @property
    def ca_key(self) -> Path:
        return self.key("ca")

    @property
    def sa_key(self) -> Path:
        return self.key("sa")

    @property
    def sa_pub(self) -> Path:
        return self.dir / "sa.pub"


def load_pair(cert: Path, key: Path) -> CertificatePair:
    return CertificatePair(cert.read_bytes(), key.read_bytes())


def write_pair(pair: CertificatePair, cert: Path, key: Path) -> None:
    """Writes the key first and private (0600), so a reader never sees a cert without its key."""
    pemfiles.write_private(key, pair.key_pem)
    cert.write_bytes(pair.cert_pem)


def issue(
    pki: Pki,
    name: str,
    *,
    common_name: str,
    organizations: tuple[str, ...] = (),
    dns_names: tuple[str, ...] = (),
    ip_addresses: tuple[str, ...] = (),
    server: bool = False,
    client: bool = False,
) -> None:
    """Writes ``<name>.crt``/``<name>.key`` signed by the cluster CA."""
    pair = issue_leaf(
        load_pair(pki.ca_cert, pki.ca_key),
        common_name=common_name,
        organizations=organizations,
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        server=server,
        client=client,
        now=datetime.datetime.now(datetime.UTC),
        validity=VALIDITY,
    )
    write_pair(pair, pki.cert(name), pki.key(name))


def ensure_pki(home: Path) -> Pki:
    """Creates the CA and every certificate the control plane needs, once per cluster home."""
    pki = Pki(home / "pki")
    if pki.cert("admin").exists() and pki.sa_pub.exists():
        return pki
    pki.dir.mkdir(parents=True, exist_ok=True)
    ca = new_ca(common_name="leoflow-dev-ca", now=datetime.datetime.now(datetime.UTC), validity=10 * VALIDITY)
    write_pair(ca, pki.ca_cert, pki.ca_key)
    issue(
        pki,
        "apiserver",
        common_name="kube-apiserver",
        dns_names=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
        ip_addresses=("127.0.0.1", "10.96.0.1"),
        server=True,
    )
    issue(pki, "admin", common_name="leoflow-admin", organizations=("system:masters",), client=True)
    # The apiserver's identity towards kubelets (logs, exec): an admin so the kubelet authorizes it.
    issue(
        pki,
        "apiserver-kubelet-client",
        common_name="kube-apiserver-kubelet-client",
        organizations=("system:masters",),
        client=True,
    )
    sa_key = ec.generate_private_key(ec.SECP256R1())
    pemfiles.write_private(
        pki.sa_key,
        sa_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    pki.sa_pub.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pki

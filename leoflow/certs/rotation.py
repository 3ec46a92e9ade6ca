"""When to renew the webhook's certificates, and what ``caBundle`` must hold meanwhile: pure.

A certificate is renewed once ``renew_fraction`` of its lifetime has passed (cert-manager's 2/3),
so there is always a long margin before expiry for a failed attempt to be retried. A new CA is
trusted *before* anything serves a certificate it signed: the bundle carries the previous CA and
the new one for ``overlap`` (Vault's prepend-the-old-CA), and the loop in ``syncing`` patches
``caBundle`` before it writes the Secret the webhook pods serve from.

The state lives in one Secret (type ``kubernetes.io/tls``): ``tls.crt``/``tls.key`` for the
server, ``ca.crt``/``ca.key`` for the CA, ``ca-previous.crt`` for CAs still in the overlap.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from leoflow.certs import authority

CA_COMMON_NAME = "leoflow-webhook-ca"


@dataclass(frozen=True)
class RotationPolicy:
    ca_validity: datetime.timedelta = datetime.timedelta(days=3650)
    serving_validity: datetime.timedelta = datetime.timedelta(days=90)
    renew_fraction: float = 2 / 3
    # Long enough for every replica's mounted Secret to update (kubelet sync is about a minute).
    overlap: datetime.timedelta = datetime.timedelta(days=1)

    def __post_init__(self) -> None:
        if not 0 < self.renew_fraction < 1:
            raise ValueError(f"renew_fraction must be between 0 and 1, got {self.renew_fraction}")
        if self.serving_validity > self.ca_validity:
            raise ValueError("serving_validity must not exceed ca_validity")


@dataclass(frozen=True)
class CertState:
    ca: authority.CertificatePair | None = None
    serving: authority.CertificatePair | None = None
    previous_cas: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class Rotation:
    """The state to store and why it differs from the one read (no reasons: nothing to write)."""

    state: CertState
    reasons: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.reasons)


def renewal_due(cert: x509.Certificate, *, now: datetime.datetime, fraction: float) -> bool:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return now >= start + (end - start) * fraction


def _serving_problem(
    state: CertState,
    *,
    dns_names: tuple[str, ...],
    ip_addresses: tuple[str, ...],
    now: datetime.datetime,
    policy: RotationPolicy,
) -> str | None:
    if state.serving is None or state.ca is None:
        return "no serving certificate"
    cert = state.serving.cert
    if not authority.signed_by(cert, state.ca.cert):
        return "serving certificate not signed by the current CA"
    if authority.subject_alternative_names(cert) != (frozenset(dns_names), frozenset(ip_addresses)):
        return "serving certificate names changed"
    if renewal_due(cert, now=now, fraction=policy.renew_fraction):
        return "serving certificate due for renewal"
    return None


def rotate(
    state: CertState,
    *,
    dns_names: tuple[str, ...],
    ip_addresses: tuple[str, ...],
    now: datetime.datetime,
    policy: RotationPolicy,
) -> Rotation:
    reasons: list[str] = []
    ca = state.ca
    previous = list(state.previous_cas)
    if ca is None or renewal_due(ca.cert, now=now, fraction=policy.renew_fraction):
        if ca is None:
            reasons.append("no CA")
        else:
            reasons.append("CA due for renewal")
            previous.append(ca.cert_pem)
        ca = authority.new_ca(common_name=CA_COMMON_NAME, now=now, validity=policy.ca_validity)
    serving = state.serving
    problem = _serving_problem(
        CertState(ca, serving), dns_names=dns_names, ip_addresses=ip_addresses, now=now, policy=policy
    )
    if problem is not None:
        reasons.append(problem)
        serving = authority.issue_serving(
            ca, dns_names=dns_names, ip_addresses=ip_addresses, now=now, validity=policy.serving_validity
        )
    overlap_ends = ca.cert.not_valid_before_utc + policy.overlap
    kept = tuple(
        pem
        for pem in dict.fromkeys(previous)
        if pem != ca.cert_pem
        and now < overlap_ends
        and now < x509.load_pem_x509_certificate(pem).not_valid_after_utc
    )
    if not reasons and kept != state.previous_cas:
        reasons.append("previous CA left the overlap")
    return Rotation(CertState(ca, serving, kept), tuple(reasons))


def ca_bundle(state: CertState) -> bytes:
    """PEM bundle for ``caBundle``: the CAs still in overlap, then the current one."""
    if state.ca is None:
        raise ValueError("no CA to put in the bundle")
    return b"".join((*state.previous_cas, state.ca.cert_pem))


def secret_data(state: CertState) -> dict[str, str]:
    """The Secret's ``data`` (base64 values) for ``state``."""
    if state.ca is None or state.serving is None:
        raise ValueError("a Secret needs both the CA and the serving certificate")
    raw = {
        "tls.crt": state.serving.cert_pem,
        "tls.key": state.serving.key_pem,
        "ca.crt": state.ca.cert_pem,
        "ca.key": state.ca.key_pem,
        "ca-previous.crt": b"".join(state.previous_cas),
    }
    return {k: base64.b64encode(v).decode() for k, v in raw.items()}


def _split_pems(bundle: bytes) -> tuple[bytes, ...]:
    marker = b"-----END CERTIFICATE-----"
    parts = [p.strip() for p in bundle.split(marker)]
    return tuple(p + b"\n" + marker + b"\n" for p in parts if p)


def state_from_secret_data(data: Mapping[str, str] | None) -> CertState:
    """Reads a Secret's ``data``; anything missing or unreadable counts as absent (and is reissued)."""
    if not data:
        return CertState()
    try:
        raw = {k: base64.b64decode(v, validate=True) for k, v in data.items()}
    except ValueError:
        return CertState()

    def pair(cert_key: str, key_key: str) -> authority.CertificatePair | None:
        if cert_key not in raw or key_key not in raw:
            return None
        candidate = authority.CertificatePair(raw[cert_key], raw[key_key])
        try:
            candidate.cert  # noqa: B018 - parsing is the check
            candidate.key  # noqa: B018
        except ValueError:
            return None
        return candidate

    previous = _split_pems(raw.get("ca-previous.crt", b""))
    try:
        for pem in previous:
            x509.load_pem_x509_certificate(pem)
    except ValueError:
        previous = ()
    return CertState(pair("ca.crt", "ca.key"), pair("tls.crt", "tls.key"), previous)


def ca_bundle_patch(webhook_configuration: Mapping[str, Any], bundle: bytes) -> list[dict[str, Any]]:
    """JSON Patch setting ``caBundle`` on every webhook entry whose bundle differs.

    Each write is preceded by a ``test`` of the entry's name, so a configuration reordered since
    it was read makes the patch fail (and the next round retry) instead of touching the wrong entry.
    """
    encoded = base64.b64encode(bundle).decode()
    ops: list[dict[str, Any]] = []
    for i, webhook in enumerate(webhook_configuration.get("webhooks") or []):
        client_config = webhook.get("clientConfig") or {}
        if client_config.get("caBundle") == encoded:
            continue
        ops.append({"op": "test", "path": f"/webhooks/{i}/name", "value": webhook["name"]})
        if "clientConfig" not in webhook:
            ops.append({"op": "add", "path": f"/webhooks/{i}/clientConfig", "value": {"caBundle": encoded}})
        else:
            ops.append({"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": encoded})
    return ops

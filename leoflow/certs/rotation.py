"""When to renew a CA and serving certificate, and what clients must trust meanwhile: pure.

A certificate is renewed once ``renew_fraction`` of its lifetime has passed (cert-manager's 2/3),
so there is always a long margin before expiry for a failed attempt to be retried. A new CA is
trusted *before* anything serves a certificate it signed: the bundle carries the previous CA and
the new one for ``overlap`` (Vault's prepend-the-old-CA), and the loop in ``syncing`` patches
``caBundle`` before it writes the Secret the webhook pods serve from.

The same decisions keep two Secrets (type ``kubernetes.io/tls``), which differ only in where the
trust bundle goes. The webhook's: ``tls.crt``/``tls.key`` for the server, ``ca.crt``/``ca.key``
for the CA, ``ca-previous.crt`` for CAs still in the overlap; the bundle goes to ``caBundle``.
The controller's agent endpoint: the same, except that ``ca.crt`` *is* the bundle (the CAs in
the overlap, then the current one), because agents trust whatever ``ca.crt`` holds (copied into
their namespaces as ConfigMap ``leoflow-ca``).

A Secret written by someone else without the CA's key (``leoflow install --print`` writes the
controller's that way) is adopted as it is while its serving certificate is sound; when that
certificate must be replaced, a new CA takes over and the adopted one stays trusted for the
overlap.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

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
    # A CA certificate whose key we do not hold: it can be trusted, never sign (only with ca None).
    unkeyed_ca: bytes | None = None

    @property
    def current_ca_pem(self) -> bytes | None:
        return self.ca.cert_pem if self.ca is not None else self.unkeyed_ca


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
    serving: authority.CertificatePair | None,
    ca_cert: x509.Certificate,
    *,
    dns_names: tuple[str, ...],
    ip_addresses: tuple[str, ...],
    now: datetime.datetime,
    policy: RotationPolicy,
) -> str | None:
    if serving is None:
        return "no serving certificate"
    cert = serving.cert
    if not authority.signed_by(cert, ca_cert):
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
    ca_common_name: str = CA_COMMON_NAME,
) -> Rotation:
    reasons: list[str] = []
    ca = state.ca
    previous = list(state.previous_cas)
    if ca is None and state.unkeyed_ca is not None:
        unkeyed = x509.load_pem_x509_certificate(state.unkeyed_ca)
        problem = _serving_problem(
            state.serving, unkeyed, dns_names=dns_names, ip_addresses=ip_addresses, now=now, policy=policy
        )
        if problem is None and not renewal_due(unkeyed, now=now, fraction=policy.renew_fraction):
            return Rotation(state, ())
        reasons.append(f"no key for the adopted CA, and {problem or 'the adopted CA is due for renewal'}")
        previous.append(state.unkeyed_ca)
        ca = authority.new_ca(common_name=ca_common_name, now=now, validity=policy.ca_validity)
    elif ca is None or renewal_due(ca.cert, now=now, fraction=policy.renew_fraction):
        if ca is None:
            reasons.append("no CA")
        else:
            reasons.append("CA due for renewal")
            previous.append(ca.cert_pem)
        ca = authority.new_ca(common_name=ca_common_name, now=now, validity=policy.ca_validity)
    serving = state.serving
    problem = _serving_problem(
        serving, ca.cert, dns_names=dns_names, ip_addresses=ip_addresses, now=now, policy=policy
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
    """PEM bundle of every CA to trust: the CAs still in overlap, then the current one."""
    current = state.current_ca_pem
    if current is None:
        raise ValueError("no CA to put in the bundle")
    return b"".join((*state.previous_cas, current))


def secret_data(state: CertState, *, bundle_in_ca_crt: bool = False) -> dict[str, str]:
    """The Secret's ``data`` (base64 values) for ``state``.

    ``bundle_in_ca_crt``: ``ca.crt`` holds the whole trust bundle (the controller's Secret)
    instead of the current CA, with the previous ones in ``ca-previous.crt`` (the webhook's).
    """
    if state.ca is None or state.serving is None:
        raise ValueError("a Secret needs both the CA and the serving certificate")
    raw = {
        "tls.crt": state.serving.cert_pem,
        "tls.key": state.serving.key_pem,
        "ca.key": state.ca.key_pem,
    }
    if bundle_in_ca_crt:
        raw["ca.crt"] = ca_bundle(state)
    else:
        raw["ca.crt"] = state.ca.cert_pem
        raw["ca-previous.crt"] = b"".join(state.previous_cas)
    return {k: base64.b64encode(v).decode() for k, v in raw.items()}


def _split_pems(bundle: bytes) -> tuple[bytes, ...]:
    marker = b"-----END CERTIFICATE-----"
    parts = [p.strip() for p in bundle.split(marker)]
    return tuple(p + b"\n" + marker + b"\n" for p in parts if p)


def _certificates(bundle: bytes) -> tuple[tuple[bytes, x509.Certificate], ...]:
    """Each PEM certificate in ``bundle`` with its parsed form; ``ValueError`` if one does not parse."""
    return tuple((pem, x509.load_pem_x509_certificate(pem)) for pem in _split_pems(bundle))


def state_from_secret_data(data: Mapping[str, str] | None) -> CertState:
    """Reads a Secret's ``data`` in either form; anything missing or unreadable counts as absent.

    The current CA is the certificate in ``ca.crt`` that matches ``ca.key``; without a key, the
    one that signed ``tls.crt`` (else the last) is kept as an unkeyed CA. Every other certificate
    in ``ca.crt`` or ``ca-previous.crt`` is a previous CA.
    """
    if not data:
        return CertState()
    try:
        raw = {k: base64.b64decode(v, validate=True) for k, v in data.items()}
        cas = _certificates(raw.get("ca.crt", b""))
        previous = [pem for pem, _ in _certificates(raw.get("ca-previous.crt", b""))]
    except ValueError:
        return CertState()

    serving: authority.CertificatePair | None = None
    if "tls.crt" in raw and "tls.key" in raw:
        serving = authority.CertificatePair(raw["tls.crt"], raw["tls.key"])
        try:
            serving.cert  # noqa: B018 - parsing is the check
            serving.key  # noqa: B018
        except ValueError:
            serving = None

    ca: authority.CertificatePair | None = None
    current: bytes | None = None
    ca_key = None
    if "ca.key" in raw:
        try:
            ca_key = serialization.load_pem_private_key(raw["ca.key"], None).public_key()
        except (ValueError, TypeError):
            ca_key = None
    for pem, cert in cas:
        if ca_key is not None and cert.public_key() == ca_key:
            ca, current = authority.CertificatePair(pem, raw["ca.key"]), pem
    unkeyed: bytes | None = None
    if ca is None and cas:
        served = serving.cert if serving is not None else None
        signers = [pem for pem, cert in cas if served is not None and authority.signed_by(served, cert)]
        unkeyed = current = (signers or [cas[-1][0]])[0]
    previous.extend(pem for pem, _ in cas if pem != current)
    return CertState(ca, serving, tuple(dict.fromkeys(previous)), unkeyed)


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

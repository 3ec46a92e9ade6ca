from __future__ import annotations

import base64
import datetime

import pytest
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st

from leoflow.certs import authority, rotation

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)
POLICY = rotation.RotationPolicy(
    ca_validity=datetime.timedelta(days=300), serving_validity=datetime.timedelta(days=30), overlap=DAY
)
NAMES = authority.service_dns_names("leoflow-webhook", "leoflow-system")
IPS = ("127.0.0.1",)


def rotate(state: rotation.CertState, now: datetime.datetime) -> rotation.Rotation:
    return rotation.rotate(state, dns_names=NAMES, ip_addresses=IPS, now=now, policy=POLICY)


def test_first_round_issues_ca_and_serving_certificate() -> None:
    result = rotate(rotation.CertState(), T0)
    assert result.changed
    state = result.state
    assert state.ca is not None and state.serving is not None
    assert authority.signed_by(state.serving.cert, state.ca.cert)
    assert authority.subject_alternative_names(state.serving.cert) == (frozenset(NAMES), frozenset(IPS))
    assert rotation.ca_bundle(state) == state.ca.cert_pem


def test_nothing_changes_before_two_thirds_of_the_serving_lifetime() -> None:
    state = rotate(rotation.CertState(), T0).state
    result = rotate(state, T0 + 19 * DAY)
    assert not result.changed
    assert result.state == state


def test_serving_certificate_is_renewed_after_two_thirds_with_the_same_ca() -> None:
    state = rotate(rotation.CertState(), T0).state
    result = rotate(state, T0 + 21 * DAY)
    assert result.reasons == ("serving certificate due for renewal",)
    assert result.state.ca == state.ca
    assert result.state.serving != state.serving


def test_new_ca_keeps_the_old_one_in_the_bundle_during_the_overlap_only() -> None:
    state = rotate(rotation.CertState(), T0).state
    assert state.ca is not None
    rotated = rotate(state, T0 + 201 * DAY)
    assert "CA due for renewal" in rotated.reasons
    new = rotated.state
    assert new.ca is not None and new.ca != state.ca
    assert new.serving is not None and authority.signed_by(new.serving.cert, new.ca.cert)
    assert rotation.ca_bundle(new) == state.ca.cert_pem + new.ca.cert_pem

    during = rotate(new, T0 + 201 * DAY + DAY / 2)
    assert not during.changed
    after = rotate(new, T0 + 203 * DAY)
    assert after.reasons == ("previous CA left the overlap",)
    assert rotation.ca_bundle(after.state) == new.ca.cert_pem


def test_changed_names_reissue_the_serving_certificate() -> None:
    state = rotate(rotation.CertState(), T0).state
    result = rotation.rotate(state, dns_names=NAMES[:1], ip_addresses=(), now=T0 + DAY, policy=POLICY)
    assert result.reasons == ("serving certificate names changed",)


def test_secret_data_round_trips() -> None:
    state = rotate(rotate(rotation.CertState(), T0).state, T0 + 201 * DAY).state
    data = rotation.secret_data(state)
    assert set(data) == {"tls.crt", "tls.key", "ca.crt", "ca.key", "ca-previous.crt"}
    assert rotation.state_from_secret_data(data) == state


@pytest.mark.parametrize(
    "data",
    [None, {}, {"tls.crt": "!!!"}, {"ca.crt": base64.b64encode(b"not a cert").decode(), "ca.key": ""}],
)
def test_unreadable_secret_counts_as_absent_and_is_reissued(data: dict[str, str] | None) -> None:
    state = rotation.state_from_secret_data(data)
    assert state.ca is None
    assert rotate(state, T0).state.ca is not None


def test_ca_bundle_patch_touches_only_entries_that_differ() -> None:
    bundle = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    encoded = base64.b64encode(bundle).decode()
    configuration = {
        "webhooks": [
            {"name": "a.leoflow.io", "clientConfig": {"caBundle": encoded}},
            {"name": "b.leoflow.io", "clientConfig": {"url": "https://x"}},
            {"name": "c.leoflow.io"},
        ]
    }
    assert rotation.ca_bundle_patch(configuration, bundle) == [
        {"op": "test", "path": "/webhooks/1/name", "value": "b.leoflow.io"},
        {"op": "add", "path": "/webhooks/1/clientConfig/caBundle", "value": encoded},
        {"op": "test", "path": "/webhooks/2/name", "value": "c.leoflow.io"},
        {"op": "add", "path": "/webhooks/2/clientConfig", "value": {"caBundle": encoded}},
    ]


def test_policy_rejects_a_renewal_fraction_outside_zero_and_one() -> None:
    with pytest.raises(ValueError, match="renew_fraction"):
        rotation.RotationPolicy(renew_fraction=1.5)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=150), min_size=1, max_size=6))
def test_bundle_always_trusts_the_certificate_served_before_and_after_each_round(gaps: list[int]) -> None:
    now = T0
    state = rotate(rotation.CertState(), now).state
    for gap in gaps:
        now += gap * DAY
        before = state
        state = rotate(before, now).state
        assert state.ca is not None and state.serving is not None and before.serving is not None
        trusted = [
            x509.load_pem_x509_certificate(pem) for pem in rotation._split_pems(rotation.ca_bundle(state))
        ]
        # Replicas still serving the old certificate (while it is valid at all) and those serving
        # the new one are both trusted.
        old_still_valid = now < before.serving.cert.not_valid_after_utc
        if old_still_valid and now < state.ca.cert.not_valid_before_utc + POLICY.overlap:
            assert any(authority.signed_by(before.serving.cert, ca) for ca in trusted)
        assert any(authority.signed_by(state.serving.cert, ca) for ca in trusted)
        assert not rotation.renewal_due(state.serving.cert, now=now, fraction=POLICY.renew_fraction)

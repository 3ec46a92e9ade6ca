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


# --- the controller's agent-endpoint Secret: ca.crt is the trust bundle --------------------------

AGENT_NAMES = authority.service_dns_names("leoflow-controller", "leoflow-system")


def rotate_agent_secret(
    data: dict[str, str] | None, now: datetime.datetime
) -> tuple[rotation.Rotation, dict[str, str]]:
    """One keeper round on the controller's Secret, through its stored form."""
    result = rotation.rotate(
        rotation.state_from_secret_data(data),
        dns_names=AGENT_NAMES,
        ip_addresses=(),
        now=now,
        policy=POLICY,
        ca_common_name="leoflow-agent-ca",
    )
    if not result.changed:
        assert data is not None
        return result, data
    return result, rotation.secret_data(result.state, bundle_in_ca_crt=True)


def ca_crt(data: dict[str, str]) -> list[x509.Certificate]:
    return [cert for _, cert in rotation._certificates(base64.b64decode(data["ca.crt"]))]


def served(data: dict[str, str]) -> x509.Certificate:
    return x509.load_pem_x509_certificate(base64.b64decode(data["tls.crt"]))


def test_agent_secret_carries_old_and_new_ca_in_ca_crt_during_the_overlap_only() -> None:
    first, data = rotate_agent_secret(None, T0)
    assert set(data) == {"tls.crt", "tls.key", "ca.crt", "ca.key"}
    assert [c.subject.rfc4514_string() for c in ca_crt(data)] == ["CN=leoflow-agent-ca"]
    assert authority.subject_alternative_names(served(data)) == (frozenset(AGENT_NAMES), frozenset())

    renewed, data = rotate_agent_secret(data, T0 + 21 * DAY)
    assert renewed.reasons == ("serving certificate due for renewal",)
    assert renewed.state.ca == first.state.ca

    rotated, data = rotate_agent_secret(data, T0 + 201 * DAY)
    assert "CA due for renewal" in rotated.reasons
    assert first.state.ca is not None and rotated.state.ca is not None
    assert ca_crt(data) == [first.state.ca.cert, rotated.state.ca.cert]
    assert rotation.state_from_secret_data(data) == rotated.state
    assert authority.signed_by(served(data), rotated.state.ca.cert)

    quiet, _ = rotate_agent_secret(data, T0 + 201 * DAY + DAY / 2)
    assert not quiet.changed
    after, data = rotate_agent_secret(data, T0 + 203 * DAY)
    assert after.reasons == ("previous CA left the overlap",)
    assert ca_crt(data) == [rotated.state.ca.cert]


def test_both_secrets_are_kept_by_the_same_decisions_independently() -> None:
    webhook = rotate(rotation.CertState(), T0).state
    agent, agent_data = rotate_agent_secret(None, T0 + 5 * DAY)
    assert webhook.ca is not None and agent.state.ca is not None
    assert webhook.ca.cert.subject != agent.state.ca.cert.subject
    # Each renews at two thirds of its own lifetime: the webhook's first, the agents' five days later.
    assert rotate(webhook, T0 + 21 * DAY).changed
    assert not rotate_agent_secret(agent_data, T0 + 21 * DAY)[0].changed
    assert rotate_agent_secret(agent_data, T0 + 26 * DAY)[0].reasons == (
        "serving certificate due for renewal",
    )


def install_print_secret(now: datetime.datetime) -> tuple[dict[str, str], authority.CertificatePair]:
    """The controller Secret as `leoflow install --print` writes it: no CA key."""
    ca = authority.new_ca(common_name="leoflow-agent-ca", now=now, validity=POLICY.ca_validity)
    serving = authority.issue_serving(
        ca, dns_names=AGENT_NAMES, ip_addresses=(), now=now, validity=POLICY.serving_validity
    )
    raw = {"ca.crt": ca.cert_pem, "tls.crt": serving.cert_pem, "tls.key": serving.key_pem}
    return {k: base64.b64encode(v).decode() for k, v in raw.items()}, ca


def test_secret_without_the_ca_key_is_adopted_as_it_is_while_sound() -> None:
    data, ca = install_print_secret(T0)
    state = rotation.state_from_secret_data(data)
    assert state.ca is None and state.unkeyed_ca == ca.cert_pem
    result, kept = rotate_agent_secret(data, T0 + 19 * DAY)
    assert not result.changed
    assert kept is data


def test_secret_without_the_ca_key_is_superseded_by_a_new_ca_that_trusts_it_during_the_overlap() -> None:
    data, adopted = install_print_secret(T0)
    result, data = rotate_agent_secret(data, T0 + 21 * DAY)
    assert result.reasons == (
        "no key for the adopted CA, and serving certificate due for renewal",
        "serving certificate not signed by the current CA",
    )
    assert result.state.ca is not None
    assert ca_crt(data) == [adopted.cert, result.state.ca.cert]
    assert authority.signed_by(served(data), result.state.ca.cert)
    # From now on the keeper holds the key: the next rounds are ordinary ones.
    assert rotation.state_from_secret_data(data) == result.state
    assert rotate_agent_secret(data, T0 + 23 * DAY)[0].reasons == ("previous CA left the overlap",)


def test_secret_without_the_ca_key_and_wrong_names_is_reissued() -> None:
    data, _ = install_print_secret(T0)
    result = rotation.rotate(
        rotation.state_from_secret_data(data),
        dns_names=NAMES,
        ip_addresses=(),
        now=T0 + DAY,
        policy=POLICY,
    )
    assert result.reasons[0] == "no key for the adopted CA, and serving certificate names changed"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=150), min_size=1, max_size=6), st.booleans())
def test_agent_ca_crt_always_trusts_the_certificate_served_before_and_after_each_round(
    gaps: list[int], adopted: bool
) -> None:
    now = T0
    data = install_print_secret(now)[0] if adopted else rotate_agent_secret(None, now)[1]
    for gap in gaps:
        now += gap * DAY
        before = served(data)
        _, data = rotate_agent_secret(data, now)
        trusted = ca_crt(data)
        newest = trusted[-1]
        if now < before.not_valid_after_utc and now < newest.not_valid_before_utc + POLICY.overlap:
            assert any(authority.signed_by(before, ca) for ca in trusted)
        assert any(authority.signed_by(served(data), ca) for ca in trusted)
        assert not rotation.renewal_due(served(data), now=now, fraction=POLICY.renew_fraction)

"""The leoflow-ca copy a task namespace gets, and when an existing one needs a patch."""

from __future__ import annotations

from leoflow.controller.agentca import CA_COPY_LABEL, ca_configmap, ca_patch

PEM = "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n"


def test_copy_carries_the_ca_under_the_key_agents_read_and_a_findable_label() -> None:
    body = ca_configmap("team-a", PEM)
    assert body["metadata"]["name"] == "leoflow-ca"
    assert body["metadata"]["namespace"] == "team-a"
    assert body["metadata"]["labels"][CA_COPY_LABEL] == "true"
    assert body["data"] == {"ca.crt": PEM}


def test_current_copy_is_left_alone() -> None:
    assert ca_patch(ca_configmap("team-a", PEM), PEM) is None


def test_copy_with_an_old_ca_or_made_by_hand_is_patched() -> None:
    rotated = "-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----\n"
    assert ca_patch(ca_configmap("team-a", PEM), rotated) == {
        "metadata": {"labels": {CA_COPY_LABEL: "true"}},
        "data": {"ca.crt": rotated},
    }
    by_hand = {"metadata": {"name": "leoflow-ca"}, "data": {"ca.crt": PEM}}
    assert ca_patch(by_hand, PEM) is not None

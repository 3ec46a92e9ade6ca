"""Which pod a replica labels, and the patches that move the agents' Service to the leader."""

from __future__ import annotations

from leoflow.controller.leaderpod import LEADER_LABEL, PodRef, label_patch, own_pod_from_environment


def test_the_own_pod_comes_from_the_downward_api_variables() -> None:
    environ = {"POD_NAMESPACE": "leoflow-system", "POD_NAME": "leoflow-controller-7d9-abc"}
    assert own_pod_from_environment(environ) == PodRef("leoflow-system", "leoflow-controller-7d9-abc")


def test_outside_a_pod_there_is_nothing_to_label() -> None:
    assert own_pod_from_environment({}) is None
    assert own_pod_from_environment({"POD_NAME": "only-a-name"}) is None
    assert own_pod_from_environment({"POD_NAMESPACE": "leoflow-system", "POD_NAME": ""}) is None


def test_leading_sets_the_label_and_standing_down_deletes_it_with_a_merge_patch_null() -> None:
    assert label_patch(True) == {"metadata": {"labels": {LEADER_LABEL: "true"}}}
    assert label_patch(False) == {"metadata": {"labels": {LEADER_LABEL: None}}}

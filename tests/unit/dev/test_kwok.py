"""KWOK nodes only take pods that ask for simulation, and the stage file is well formed."""

from __future__ import annotations

import yaml

from leoflow.dev import kwok


def test_kwok_nodes_are_tainted_so_ordinary_pods_go_elsewhere() -> None:
    node = kwok.node_manifest(2)
    assert node["metadata"]["name"] == "kwok-2"
    assert node["metadata"]["annotations"][kwok.KWOK_ANNOTATION] == "fake"
    assert node["spec"]["taints"] == [kwok.KWOK_TAINT]
    assert node["metadata"]["labels"][kwok.NODE_TYPE_LABEL] == "kwok"


def test_simulated_placement_tolerates_the_taint_and_selects_kwok_nodes() -> None:
    placement = kwok.simulated_pod_placement()
    toleration = placement["tolerations"][0]
    assert (toleration["key"], toleration["effect"]) == (kwok.KWOK_TAINT["key"], kwok.KWOK_TAINT["effect"])
    assert placement["nodeSelector"] == {kwok.NODE_TYPE_LABEL: "kwok"}


def test_stages_cover_the_whole_pod_lifecycle_with_leoflow_annotations() -> None:
    stages = list(yaml.safe_load_all(kwok.stages_yaml()))
    names = {s["metadata"]["name"] for s in stages}
    assert names == {
        "pod-ready",
        "pod-succeed",
        "pod-fail",
        "pod-evict",
        "pod-image-pull-error",
        "pod-admission-reject",
        "pod-main-exits",
        "pod-delete",
    }
    text = kwok.stages_yaml()
    annotations = (
        "succeed-after",
        "fail-after",
        "fail-reason",
        "exit-code",
        "image-pull",
        "evict-after",
        "evict-message",
        "admission-reject",
        "main-exits-after",
    )
    for annotation in annotations:
        assert f'"{kwok.ANNOTATION_PREFIX}{annotation}"' in text
    for stage in stages:
        assert "jitterDurationMilliseconds" not in str(stage), "jitter would make test timing random"

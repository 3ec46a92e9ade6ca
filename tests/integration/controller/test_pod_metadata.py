"""A DAG's podLabels and podAnnotations reach its task pods through the real controller and CRD."""

from __future__ import annotations

from leoflow.controller.cleanup import CleanupPolicy
from leoflow.controller.podnames import TASK_LABEL
from tests.integration.controller.conftest import SUCCEED, Harness, dag_yaml

TASKS = (
    "  extract:\n"
    "    command: [extract]\n"
    "    podLabels: {cost-center: '42'}\n"
    "    podAnnotations: {kwok.leoflow.io/succeed-after: 1h}\n"
)


async def test_task_pod_carries_the_dags_labels_and_annotations_under_leoflows_own(harness: Harness) -> None:
    defaults = "podLabels: {team: data}, podAnnotations: {sidecar.istio.io/inject: 'false'}"
    await harness.apply_dag(dag_yaml("meta", TASKS, defaults=defaults))
    await harness.start(cleanup=CleanupPolicy(delete_succeeded=False))
    await harness.create_run("r1", "meta")
    # The task asks KWOK for an hour; the controller's pod annotations (the --pod-annotation
    # mechanism, here the harness's script saying 200ms) go on top at create time, so it ends now.
    await harness.wait_phase("r1", "Succeeded")
    [pod] = await harness.pods("r1")
    labels, annotations = pod["metadata"]["labels"], pod["metadata"]["annotations"]
    assert labels["team"] == "data" and labels["cost-center"] == "42"
    assert labels[TASK_LABEL] == "extract" and labels["app.kubernetes.io/managed-by"] == "leoflow"
    assert annotations["sidecar.istio.io/inject"] == "false"
    assert annotations["kwok.leoflow.io/succeed-after"] == SUCCEED["kwok.leoflow.io/succeed-after"]
    assert annotations["leoflow.io/attempt-id"].endswith("/extract//1")

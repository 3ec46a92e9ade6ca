"""Agent injection through the real API server and a registered MutatingWebhookConfiguration."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest

from leoflow.dev import cluster as dev_cluster
from leoflow.dev import images
from leoflow.dev.processes import free_port
from leoflow.dev.testing import ClusterHandle

from .conftest import (
    AGENT_IMAGE,
    CONTROLLER_ADDR,
    KWOK_ONLY,
    Register,
    dry_run_create,
    is_injected,
    labelled_pod,
    poll_dry_run_create,
    wait_until_webhook_active,
)

pytestmark = pytest.mark.cluster

AGENT = "/leoflow/bin/leoflow-agent"


def create(cluster: ClusterHandle, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
    out = cluster.kubectl("create", "-o", "json", "-n", namespace, "-f", "-", input=json.dumps(obj))
    created: dict[str, Any] = json.loads(out.stdout)
    return created


def get(cluster: ClusterHandle, namespace: str, kind: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout
    )
    return found


def test_labelled_pod_is_injected(cluster: ClusterHandle, namespace: str, active_webhook: str) -> None:
    create(cluster, namespace, labelled_pod("task", command=["sh", "-c"]))
    pod = get(cluster, namespace, "pod", "task")
    assert is_injected(pod)
    init = pod["spec"]["initContainers"][0]
    assert init["image"] == AGENT_IMAGE
    assert init["command"] == ["/leoflow-agent", "install", "/leoflow/bin"]
    main = pod["spec"]["containers"][0]
    assert main["command"] == [AGENT, "run", "--", "sh", "-c"]
    assert main["env"] == [
        {"name": "LEOFLOW_CONTROLLER_ADDR", "value": CONTROLLER_ADDR},
        {"name": "LEOFLOW_CONTAINER", "value": "main"},
    ]
    assert pod["metadata"]["annotations"]["leoflow.io/agent-version"]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    token, identity = volumes["leoflow-identity"]["projected"]["sources"][:2]
    assert token["serviceAccountToken"]["audience"] == "leoflow"
    # The API server accepts the downward-API items as the webhook writes them, defaulting apiVersion.
    assert {"path": "labels", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels"}} in identity[
        "downwardAPI"
    ]["items"]


def test_unlabelled_pod_is_not_injected(cluster: ClusterHandle, namespace: str, active_webhook: str) -> None:
    create(cluster, namespace, labelled_pod("plain", labelled=False, command=["true"]))
    pod = get(cluster, namespace, "pod", "plain")
    assert not is_injected(pod)
    assert pod["spec"]["containers"][0]["command"] == ["true"]


def test_kube_system_is_excluded(cluster: ClusterHandle, namespace: str, active_webhook: str) -> None:
    result = dry_run_create(cluster, "kube-system", labelled_pod("sys", command=["true"]))
    assert result.returncode == 0, result.stderr
    assert not is_injected(json.loads(result.stdout))


def test_server_side_dry_run_shows_the_mutation_and_stores_nothing(
    cluster: ClusterHandle, namespace: str, active_webhook: str
) -> None:
    result = dry_run_create(cluster, namespace, labelled_pod("preview", command=["/app", "--flag"]))
    assert result.returncode == 0, result.stderr
    pod = json.loads(result.stdout)
    assert pod["spec"]["containers"][0]["command"] == [AGENT, "run", "--", "/app", "--flag"]
    missing = cluster.kubectl("get", "pod", "preview", "-n", namespace, check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr


def test_injection_keeps_the_qos_class_the_api_server_gives_the_pod(
    cluster: ClusterHandle, namespace: str, active_webhook: str
) -> None:
    guaranteed = labelled_pod("guaranteed", command=["true"])
    guaranteed["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "200m", "memory": "64Mi"}}
    best_effort = labelled_pod("best-effort", command=["true"])
    for manifest, qos in ((best_effort, "BestEffort"), (guaranteed, "Guaranteed")):
        result = dry_run_create(cluster, namespace, manifest)
        assert result.returncode == 0, result.stderr
        pod = json.loads(result.stdout)
        assert is_injected(pod)
        assert pod["status"]["qosClass"] == qos


def test_a_quota_that_demands_limits_of_every_container_admits_an_injected_pod(
    cluster: ClusterHandle, namespace: str, active_webhook: str
) -> None:
    quota = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "limits"}}
    quota["spec"] = {"hard": {"limits.cpu": "2", "limits.memory": "1Gi"}}
    create(cluster, namespace, quota)
    manifest = labelled_pod("quota", command=["true"])
    manifest["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "200m", "memory": "64Mi"}}
    # Quota admission refuses every create until the quota controller has counted the namespace.
    outcome = poll_dry_run_create(
        cluster,
        namespace,
        manifest,
        lambda out: isinstance(out, dict) or "status unknown for quota" not in out.stderr,
        "the quota controller counting the namespace",
    )
    assert isinstance(outcome, dict), outcome.stderr
    assert is_injected(outcome)


def test_pod_without_a_command_is_denied_with_what_to_add(
    cluster: ClusterHandle, namespace: str, active_webhook: str
) -> None:
    result = cluster.kubectl(
        "create", "-n", namespace, "-f", "-", input=json.dumps(labelled_pod("bare")), check=False
    )
    assert result.returncode != 0
    assert "denied the request" in result.stderr
    assert f'container "main" (image "{images.BASE_IMAGE}") has no command' in result.stderr
    assert "leoflow.io/entrypoint" in result.stderr


def test_pod_annotated_with_an_agent_path_gets_no_init_container(
    cluster: ClusterHandle, namespace: str, active_webhook: str
) -> None:
    manifest = labelled_pod("in-image", command=["sh", "-c"])
    manifest["metadata"]["annotations"] = {"leoflow.io/agent-path": images.AGENT_IN_IMAGE_PATH}
    create(cluster, namespace, manifest)
    pod = get(cluster, namespace, "pod", "in-image")
    assert "initContainers" not in pod["spec"]
    assert pod["spec"]["containers"][0]["command"] == [images.AGENT_IN_IMAGE_PATH, "run", "--", "sh", "-c"]
    assert [v["name"] for v in pod["spec"]["volumes"] if "emptyDir" in v] == ["leoflow-outputs"]
    assert pod["metadata"]["annotations"]["leoflow.io/agent-version"]


def test_pod_of_an_image_in_the_agent_in_image_index_gets_no_init_container(
    cluster: ClusterHandle, namespace: str, active_webhook: str
) -> None:
    manifest = labelled_pod("indexed", command=["true"])
    manifest["spec"]["containers"][0]["image"] = images.BASE_WITH_AGENT_IMAGE
    result = dry_run_create(cluster, namespace, manifest)
    assert result.returncode == 0, result.stderr
    pod = json.loads(result.stdout)
    assert not is_injected(pod)
    assert "initContainers" not in pod["spec"]
    assert pod["spec"]["containers"][0]["command"] == [images.AGENT_IN_IMAGE_PATH, "run", "--", "true"]


def test_a_bad_agent_path_annotation_is_denied_saying_what_to_write(
    cluster: ClusterHandle, namespace: str, active_webhook: str
) -> None:
    manifest = labelled_pod("bad-path", command=["true"])
    manifest["metadata"]["annotations"] = {"leoflow.io/agent-path": "usr/local/bin/leoflow-agent"}
    result = cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(manifest), check=False)
    assert result.returncode != 0
    assert "denied the request" in result.stderr
    assert "annotation leoflow.io/agent-path: 'usr/local/bin/leoflow-agent' is not absolute" in result.stderr


def pod_from_template(owner: dict[str, Any], template: dict[str, Any]) -> dict[str, Any]:
    """The pod a workload controller would create from ``template`` (labels, annotations, spec)."""
    metadata = dict(template.get("metadata") or {})
    metadata["generateName"] = f"{owner['metadata']['name']}-"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]}


def wait_for_owned_pod(cluster: ClusterHandle, namespace: str, selector: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        items = json.loads(
            cluster.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json").stdout
        )
        if items["items"]:
            pod: dict[str, Any] = items["items"][0]
            return pod
        time.sleep(0.5)
    raise AssertionError(f"no pod with {selector} appeared in {namespace}")


TEMPLATE = {
    "metadata": {"labels": {"leoflow.io/inject": "true", "app": "work"}},
    "spec": {
        **KWOK_ONLY,
        "containers": [
            {
                "name": "main",
                "image": images.BASE_IMAGE,
                "imagePullPolicy": "Never",
                "command": ["sleep", "3600"],
            }
        ],
    },
}


@pytest.mark.parametrize(
    "case",
    [
        (
            "deployment",
            {"deployment-controller", "replicaset-controller"},
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web"},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "work"}}, "template": TEMPLATE},
            },
        ),
        (
            "job",
            {"job-controller"},
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": "batch"},
                "spec": {
                    "template": {
                        "metadata": TEMPLATE["metadata"],
                        "spec": {**TEMPLATE["spec"], "restartPolicy": "Never"},
                    }
                },
            },
        ),
    ],
    ids=["deployment", "job"],
)
def test_workload_pod_templates_are_injected(
    cluster: ClusterHandle,
    namespace: str,
    active_webhook: str,
    case: tuple[str, set[str], dict[str, Any]],
) -> None:
    kind, controllers, manifest = case
    created = create(cluster, namespace, manifest)
    # The template as the API server stored and defaulted it, turned into the pod its controller makes.
    result = dry_run_create(cluster, namespace, pod_from_template(created, created["spec"]["template"]))
    assert result.returncode == 0, result.stderr
    assert is_injected(json.loads(result.stdout))
    if controllers <= set(dev_cluster.KCM_CONTROLLERS):
        pod = wait_for_owned_pod(cluster, namespace, "app=work")
        assert is_injected(pod), f"{kind} pod was created without the agent"


def test_webhook_down_refuses_labelled_pods_and_admits_the_rest(
    cluster: ClusterHandle, namespace: str, register_webhook: Register, tls_dir: Any
) -> None:
    nobody = f"https://127.0.0.1:{free_port()}/mutate-pods"
    register_webhook(nobody, (tls_dir / "ca.crt").read_bytes())

    def refused(outcome: Any) -> bool:
        return isinstance(outcome, subprocess.CompletedProcess) and "failed calling webhook" in outcome.stderr

    failure = wait_until_webhook_active(cluster, namespace, refused)
    assert "connection refused" in failure.stderr
    create(cluster, namespace, labelled_pod("unlabelled", labelled=False, command=["true"]))

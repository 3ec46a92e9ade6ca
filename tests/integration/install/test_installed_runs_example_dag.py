"""The installed controller and webhook, running as pods on the real node from these manifests,
run the example DAG (examples/etl/demo: outputs, fan-out, a retried failure) to success.

The dev cluster has no kube-proxy and no cluster DNS, which a real cluster provides. So, and only
here, the controller pod uses the host network: it reaches the API server on 127.0.0.1 (the
``KUBERNETES_SERVICE_*`` variables say where), and agents reach its gRPC server on the node
address, for which its serving certificate carries an IP SAN and the webhook injects that address.
Host networking needs the namespace's Pod Security level lowered and one replica (two would race
for the same host ports); everything else is the rendered install as `leoflow install --print`
prints it. The CA ConfigMap the agents trust is copied into the DAG's namespace.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from leoflow.certs import authority
from leoflow.controller.leaderpod import LEADER_LABEL
from leoflow.dev import images
from leoflow.dev.processes import free_port
from leoflow.dev.testing import ClusterHandle
from leoflow.install import controller_image, manifests, rendering

from .installing import (
    AGENT_IMAGE,
    MANIFESTS,
    NAMESPACE,
    assert_not_installed,
    import_local_images,
    leoflow_crds,
    remove_webhook_configuration,
    restore_crds,
    uninstall,
    wait_for,
    wait_for_webhook,
)

pytestmark = [pytest.mark.cluster, pytest.mark.node]

EXAMPLE = MANIFESTS.parent / "examples" / "etl" / "demo" / "leoflow.yaml"


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def set_env(container: dict[str, Any], name: str, value: str) -> None:
    container["env"] = [e for e in container.get("env", []) if e["name"] != name]
    container["env"].append({"name": name, "value": value})


def dev_cluster_install(cluster: ClusterHandle, agent_port: int, health_port: int) -> list[dict[str, Any]]:
    node_ip = cluster.state.node_address
    assert node_ip, "the real node's address"
    choice = rendering.ImageChoice(controller_image.CONTROLLER_IMAGE, AGENT_IMAGE, "Never")
    objects = rendering.with_images(manifests.load_kustomization(MANIFESTS), choice)
    generated = rendering.generate_certificates(NAMESPACE, now=datetime.datetime.now(datetime.UTC))
    serving = authority.issue_serving(
        generated.controller_ca,
        dns_names=authority.service_dns_names(rendering.CONTROLLER_SERVICE, NAMESPACE),
        ip_addresses=(node_ip,),
        now=datetime.datetime.now(datetime.UTC),
        validity=datetime.timedelta(days=1),
    )
    objects = rendering.with_certificates(
        objects, rendering.InstallCertificates(generated.webhook, generated.controller_ca, serving)
    )

    labels = find(objects, "Namespace", NAMESPACE)["metadata"]["labels"]
    labels["pod-security.kubernetes.io/enforce"] = "privileged"
    deployment = find(objects, "Deployment", "leoflow-controller")
    deployment["spec"]["replicas"] = 1
    pod = deployment["spec"]["template"]["spec"]
    pod["hostNetwork"] = True
    pod["dnsPolicy"] = "ClusterFirstWithHostNet"
    (container,) = pod["containers"]
    container["args"] = [
        a for a in container["args"] if not a.startswith(("--agent-address=", "--metrics-address="))
    ] + [f"--agent-address={node_ip}:{agent_port}", f"--metrics-address={node_ip}:{health_port}"]
    container["ports"] = []
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        container[probe]["httpGet"]["port"] = health_port
    api_port = cluster.state.apiserver_url.rpartition(":")[2]
    set_env(container, "KUBERNETES_SERVICE_HOST", "127.0.0.1")
    set_env(container, "KUBERNETES_SERVICE_PORT", api_port)

    webhook = find(objects, "Deployment", "leoflow-webhook")["spec"]["template"]["spec"]["containers"][0]
    set_env(webhook, "LEOFLOW_CONTROLLER_ADDR", f"{node_ip}:{agent_port}")
    return objects


@pytest.fixture(scope="module")
def installed(cluster: ClusterHandle) -> Iterator[tuple[ClusterHandle, str]]:
    """The install, and where the controller's /metrics is."""
    import_local_images(cluster)
    assert_not_installed(cluster)
    crds_before = leoflow_crds(cluster)
    node_ip = str(cluster.state.node_address)
    agent_port, health_port = free_port(node_ip), free_port(node_ip)
    try:
        objects = dev_cluster_install(cluster, agent_port, health_port)
        cluster.kubectl("apply", "-f", "-", input=rendering.dump(objects))
        yield cluster, f"http://{node_ip}:{health_port}/metrics"
    finally:
        remove_webhook_configuration(cluster)
        uninstall(cluster)
        restore_crds(cluster, crds_before)


def controller_ready(cluster: ClusterHandle) -> bool:
    ready = cluster.kubectl(
        "get", "deployment", "leoflow-controller", "-n", NAMESPACE, "-o", "jsonpath={.status.readyReplicas}"
    ).stdout
    return ready == "1"


def wait_until_ready(cluster: ClusterHandle) -> None:
    wait_for_webhook(cluster)
    wait_for(
        "a ready controller",
        lambda: controller_ready(cluster),
        within=240,
        describe=lambda: cluster.kubectl(
            "logs", "-n", NAMESPACE, "deploy/leoflow-controller", check=False
        ).stdout[-3000:],
    )


def start_run(cluster: ClusterHandle, namespace: str, dag_file: Path, run_name: str) -> None:
    compiled = subprocess.run(
        [sys.executable, "-m", "leoflow", "compile", str(dag_file), "-n", namespace],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cluster.kubectl("apply", "-f", "-", input=compiled)
    dag = next(d for d in yaml.safe_load_all(compiled) if d and d["kind"] == "DAG")
    run = {
        "apiVersion": "leoflow.io/v1alpha1",
        "kind": "DAGRun",
        "metadata": {"name": run_name},
        "spec": {"dagName": dag["metadata"]["name"]},
    }
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(run))


def wait_run_done(cluster: ClusterHandle, namespace: str, run_name: str) -> dict[str, Any]:
    def phase() -> str:
        return cluster.kubectl(
            "get", "dagrun", run_name, "-n", namespace, "-o", "jsonpath={.status.phase}"
        ).stdout

    wait_for(
        "the run to finish",
        lambda: phase() in ("Succeeded", "Failed", "Cancelled"),
        within=300,
        describe=lambda: cluster.kubectl("get", "dagrun,pods", "-n", namespace, "-o", "wide").stdout,
    )
    run: dict[str, Any] = json.loads(
        cluster.kubectl("get", "dagrun", run_name, "-n", namespace, "-o", "json").stdout
    )
    return run


def test_installed_controller_and_webhook_run_the_example_dag(
    installed: tuple[ClusterHandle, str], namespace: str
) -> None:
    cluster, metrics_url = installed
    wait_until_ready(cluster)
    start_run(cluster, namespace, EXAMPLE, "installed-1")
    done = wait_run_done(cluster, namespace, "installed-1")
    assert done["status"]["phase"] == "Succeeded", done["status"]
    # The agents reported to the controller pod over TLS, not only through pod status.
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        metrics = response.read().decode()
    finished = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith('leoflow_agent_reports_total{kind="finished",result="accepted"}')
    ]
    assert finished and finished[0] >= 1, "no finished report from an agent was accepted"
    # validate's pod was created while transform ran (its pods carried the injected agent) and
    # let go when the last region finished.
    released = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("leoflow_task_release_seconds_count")
    )
    assert released >= 1, "no prepared pod was released"
    # Nobody copied the agents' CA into the run's namespace: the controller did, from its Secret.
    ca = json.loads(cluster.kubectl("get", "configmap", "leoflow-ca", "-n", NAMESPACE, "-o", "json").stdout)
    copy = json.loads(cluster.kubectl("get", "configmap", "leoflow-ca", "-n", namespace, "-o", "json").stdout)
    assert copy["data"] == ca["data"]
    assert copy["metadata"]["labels"]["leoflow.io/agent-ca"] == "true"
    # The leader labelled its own pod, so the agents' Service (selecting that label) reaches it.
    selector = f"app.kubernetes.io/name=leoflow-controller,{LEADER_LABEL}=true"
    leader = cluster.kubectl("get", "pods", "-n", NAMESPACE, "-l", selector, "-o", "name").stdout.split()
    assert len(leader) == 1, leader


# `make` stands for a task that creates its downstream's ConfigMap as its last step: it ends when
# the test, having created the ConfigMap, tells it to.
MADE_BY_THE_UPSTREAM = """\
dag: made-upstream
image: {image}
defaults: {{nodeSelector: {{leoflow.io/node-type: real}}, prestart: true}}
tasks:
  make: {{command: [sh, -c, 'until [ -e /tmp/done ]; do sleep 0.1; done']}}
  use:
    after: [make]
    command: [sh, -c, 'test "$GREETING" = hello']
    env: {{GREETING: {{configMap: greeting, key: text}}}}
"""


def pod_of(cluster: ClusterHandle, namespace: str, task: str) -> dict[str, Any] | None:
    pods = json.loads(
        cluster.kubectl("get", "pods", "-n", namespace, "-l", f"leoflow.io/task={task}", "-o", "json").stdout
    )["items"]
    return pods[0] if pods else None


def config_error_retries(cluster: ClusterHandle, namespace: str, pod: str) -> int:
    """How often the kubelet has tried to create the pod's container and found its config missing."""
    events = json.loads(
        cluster.kubectl(
            "get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={pod}", "-o", "json"
        ).stdout
    )["items"]
    return sum(e.get("count") or 1 for e in events if "not found" in e.get("message", ""))


def test_prepared_pod_whose_configmap_its_upstream_creates_runs_in_a_fresh_pod_after_it(
    installed: tuple[ClusterHandle, str], namespace: str, tmp_path: Path
) -> None:
    cluster, _ = installed
    wait_until_ready(cluster)
    dag_file = tmp_path / "leoflow.yaml"
    dag_file.write_text(MADE_BY_THE_UPSTREAM.format(image=images.BASE_IMAGE))
    start_run(cluster, namespace, dag_file, "made-1")

    def prepared_pod_cannot_start() -> bool:
        pod = pod_of(cluster, namespace, "use")
        statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or []
        waiting = [(s.get("state") or {}).get("waiting") or {} for s in statuses]
        return any(w.get("reason") == "CreateContainerConfigError" for w in waiting)

    wait_for(
        "use's prepared pod waiting on its ConfigMap",
        prepared_pod_cannot_start,
        within=120,
        describe=lambda: cluster.kubectl("get", "dagrun,pods", "-n", namespace, "-o", "wide").stdout,
    )
    prepared = pod_of(cluster, namespace, "use")
    assert prepared is not None
    # Right after one of the kubelet's retries (10 to 15 s apart), so that it cannot retry
    # before the release: the release, not the kubelet, must be what starts the task.
    seen = config_error_retries(cluster, namespace, prepared["metadata"]["name"])
    wait_for(
        "a kubelet retry",
        lambda: config_error_retries(cluster, namespace, prepared["metadata"]["name"]) > seen,
        within=60,
    )
    cluster.kubectl("create", "configmap", "greeting", "-n", namespace, "--from-literal=text=hello")
    make = pod_of(cluster, namespace, "make")
    assert make is not None
    make_pod = make["metadata"]["name"]
    cluster.kubectl("exec", "-n", namespace, make_pod, "-c", "main", "--", "touch", "/tmp/done")

    done = wait_run_done(cluster, namespace, "made-1")
    assert done["status"]["phase"] == "Succeeded", done["status"]
    use = done["status"]["tasks"]["1"]
    assert (use["attempt"], use.get("infraAttempts")) == (2, 1), use
    events = json.loads(
        cluster.kubectl(
            "get", "events", "-n", namespace, "--field-selector", "involvedObject.name=made-1", "-o", "json"
        ).stdout
    )["items"]
    replaced = [e["message"] for e in events if e["reason"] == "PreparedPodReplaced"]
    assert len(replaced) == 1, [e["reason"] for e in events]
    assert 'configmap "greeting" not found' in replaced[0]

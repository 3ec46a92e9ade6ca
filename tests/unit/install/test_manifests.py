"""The install manifests keep the promises a cluster admin reads them for.

Every container hardened and bounded, the webhook configuration that cannot lock up a cluster,
RBAC with exactly the verbs each component uses, and a base that `leoflow install --print` reads
the same way kustomize does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from leoflow.controller.leaderpod import LEADER_LABEL
from leoflow.install import manifests
from tests.unit.install.rendered import MANIFESTS, containers, find, pod_specs

HARDENED = {
    "runAsNonRoot": True,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
SYSTEM_NAMESPACES = {"kube-system", "kube-public", "kube-node-lease", "leoflow-system"}


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return manifests.load_kustomization(MANIFESTS)


def test_every_generated_crd_is_part_of_the_install() -> None:
    listed = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["resources"]
    crds = MANIFESTS / "crds"
    generated = sorted(f"crds/{p.name}" for p in crds.glob("*.yaml") if p.name != "kustomization.yaml")
    assert generated, "manifests/crds/ holds the generated CRDs"
    if "crds" in listed:
        assert (crds / "kustomization.yaml").is_file()
        return
    assert sorted(r for r in listed if r.startswith("crds/")) == generated


def test_install_holds_the_components_a_cluster_admin_expects(objects: list[dict[str, Any]]) -> None:
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for expected in [
        ("Namespace", "leoflow-system"),
        ("CustomResourceDefinition", "dags.leoflow.io"),
        ("CustomResourceDefinition", "dagruns.leoflow.io"),
        ("ServiceAccount", "leoflow-controller"),
        ("ServiceAccount", "leoflow-webhook"),
        ("Deployment", "leoflow-controller"),
        ("Deployment", "leoflow-webhook"),
        ("Deployment", "leoflow-webhook-certificates"),
        ("PodDisruptionBudget", "leoflow-webhook"),
        ("Service", "leoflow-webhook"),
        ("Service", "leoflow-controller"),
        ("MutatingWebhookConfiguration", "leoflow-agent-injector"),
        ("NetworkPolicy", "leoflow-webhook"),
        ("NetworkPolicy", "leoflow-controller"),
    ]:
        assert expected in kinds


def test_namespaced_objects_all_live_in_leoflow_system(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        if obj["kind"] not in manifests.CLUSTER_SCOPED:
            assert obj["metadata"]["namespace"] == "leoflow-system", obj["metadata"]["name"]


def test_every_container_is_hardened_and_bounded(objects: list[dict[str, Any]]) -> None:
    found = list(containers(objects))
    assert len(found) >= 2
    for where, container in found:
        context = container.get("securityContext") or {}
        for key, value in HARDENED.items():
            assert context.get(key) == value, f"{where}: securityContext.{key} must be {value!r}"
        resources = container.get("resources") or {}
        for bound in ("requests", "limits"):
            assert set(resources.get(bound) or {}) >= {"cpu", "memory"}, f"{where}: {bound} cpu and memory"
        if container.get("ports"):
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", where
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", where
            assert container["startupProbe"]["httpGet"]["path"] == "/healthz", where


def test_every_pod_runs_as_non_root_with_runtime_default_seccomp(objects: list[dict[str, Any]]) -> None:
    for where, spec in pod_specs(objects):
        context = spec["securityContext"]
        assert context["runAsNonRoot"] is True, where
        assert context["runAsUser"] != 0, where
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert not spec.get("hostNetwork") and not spec.get("hostPID"), where


def test_controller_and_webhook_run_two_replicas_and_are_scraped(objects: list[dict[str, Any]]) -> None:
    for name in ("leoflow-controller", "leoflow-webhook"):
        deployment = find(objects, "Deployment", name)
        assert deployment["spec"]["replicas"] == 2
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
    assert (
        "--leader-elect"
        in find(objects, "Deployment", "leoflow-controller")["spec"]["template"]["spec"]["containers"][0][
            "args"
        ]
    )
    assert find(objects, "PodDisruptionBudget", "leoflow-webhook")["spec"]["minAvailable"] == 1


def test_webhook_service_maps_443_to_the_webhook_port(objects: list[dict[str, Any]]) -> None:
    (port,) = find(objects, "Service", "leoflow-webhook")["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (443, "https")
    container = find(objects, "Deployment", "leoflow-webhook")["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "https", "containerPort": 8443, "protocol": "TCP"} in container["ports"]


def test_agents_reach_only_the_leader_and_every_replica_is_scraped(objects: list[dict[str, Any]]) -> None:
    agents = find(objects, "Service", "leoflow-controller")["spec"]
    assert {p["name"]: p["port"] for p in agents["ports"]} == {"grpc-agent": 9443}
    assert agents["selector"] == {"app.kubernetes.io/name": "leoflow-controller", LEADER_LABEL: "true"}
    scraped = find(objects, "Service", "leoflow-controller-metrics")["spec"]
    assert {p["name"]: p["port"] for p in scraped["ports"]} == {"metrics": 8080}
    assert scraped["selector"] == {"app.kubernetes.io/name": "leoflow-controller"}
    container = find(objects, "Deployment", "leoflow-controller")["spec"]["template"]["spec"]["containers"][0]
    # The leader finds its own pod to label through these (leaderpod.own_pod_from_environment).
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"] if "valueFrom" in e}
    assert env["POD_NAME"] == "metadata.name"
    assert env["POD_NAMESPACE"] == "metadata.namespace"


def test_webhook_configuration_cannot_lock_up_the_cluster(objects: list[dict[str, Any]]) -> None:
    (webhook,) = find(objects, "MutatingWebhookConfiguration", "leoflow-agent-injector")["webhooks"]
    assert webhook["objectSelector"] == {"matchLabels": {"leoflow.io/inject": "true"}}
    (expression,) = webhook["namespaceSelector"]["matchExpressions"]
    assert expression["key"] == "kubernetes.io/metadata.name"
    assert expression["operator"] == "NotIn"
    assert set(expression["values"]) == SYSTEM_NAMESPACES
    assert webhook["failurePolicy"] == "Fail"
    assert webhook["sideEffects"] == "None"
    assert webhook["timeoutSeconds"] <= 5
    assert webhook["admissionReviewVersions"] == ["v1"]
    assert webhook["reinvocationPolicy"] == "Never"
    (rule,) = webhook["rules"]
    assert (rule["resources"], rule["operations"], rule["apiGroups"]) == (["pods"], ["CREATE"], [""])
    service = webhook["clientConfig"]["service"]
    assert (service["name"], service["namespace"], service["path"]) == (
        "leoflow-webhook",
        "leoflow-system",
        "/mutate-pods",
    )


def _rules(objects: list[dict[str, Any]], service_account: str) -> list[tuple[str, dict[str, Any]]]:
    """Every (binding kind, rule) granted to ``service_account`` by the manifests."""
    roles = {(o["kind"], o["metadata"]["name"]): o for o in objects if o["kind"] in ("Role", "ClusterRole")}
    granted = []
    for binding in objects:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(s.get("name") == service_account for s in binding["subjects"]):
            continue
        role = roles[(binding["roleRef"]["kind"], binding["roleRef"]["name"])]
        granted.extend((binding["kind"], rule) for rule in role["rules"])
    return granted


@pytest.mark.parametrize(
    "service_account", ["leoflow-controller", "leoflow-webhook", "leoflow-webhook-certificates"]
)
def test_no_rule_uses_a_wildcard(objects: list[dict[str, Any]], service_account: str) -> None:
    for _, rule in _rules(objects, service_account):
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], f"{service_account}: {rule}"


def test_controller_cannot_touch_secrets_logs_or_exec(objects: list[dict[str, Any]]) -> None:
    resources = {r for _, rule in _rules(objects, "leoflow-controller") for r in rule["resources"]}
    assert resources.isdisjoint(
        {"secrets", "pods/log", "pods/exec", "pods/attach", "namespaces", "nodes/status"}
    )


def test_controller_only_reads_nodes(objects: list[dict[str, Any]]) -> None:
    verbs = {
        verb
        for _, rule in _rules(objects, "leoflow-controller")
        if "nodes" in rule["resources"]
        for verb in rule["verbs"]
    }
    assert verbs == {"list", "watch"}


def test_controller_takes_leases_only_in_its_namespace(objects: list[dict[str, Any]]) -> None:
    lease_rules = [
        (kind, rule)
        for kind, rule in _rules(objects, "leoflow-controller")
        if "coordination.k8s.io" in rule["apiGroups"]
    ]
    assert lease_rules
    assert all(kind == "RoleBinding" for kind, _ in lease_rules)


def test_webhook_has_no_grants_and_mounts_no_token(objects: list[dict[str, Any]]) -> None:
    assert _rules(objects, "leoflow-webhook") == []
    assert find(objects, "ServiceAccount", "leoflow-webhook")["automountServiceAccountToken"] is False
    pod = find(objects, "Deployment", "leoflow-webhook")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False


def test_certificate_keeper_may_only_touch_its_secret_and_configuration(
    objects: list[dict[str, Any]],
) -> None:
    granted = _rules(objects, "leoflow-webhook-certificates")
    assert {r for _, rule in granted for r in rule["resources"]} == {
        "secrets",
        "mutatingwebhookconfigurations",
    }
    for kind, rule in granted:
        if rule["resources"] == ["secrets"]:
            assert kind == "RoleBinding", "Secrets only in Leoflow's namespace"
        if set(rule["verbs"]) - {"create"}:
            assert rule.get("resourceNames"), f"named objects only: {rule}"


def test_exactly_one_certificate_keeper_keeps_what_the_webhook_serves(objects: list[dict[str, Any]]) -> None:
    keeper = find(objects, "Deployment", "leoflow-webhook-certificates")["spec"]
    assert keeper["replicas"] == 1
    assert keeper["strategy"]["type"] == "Recreate"
    args = keeper["template"]["spec"]["containers"][0]["args"]
    assert args[:2] == ["certs", "keep"]
    webhook = find(objects, "Deployment", "leoflow-webhook")["spec"]["template"]["spec"]
    (served,) = [v["secret"]["secretName"] for v in webhook["volumes"] if "secret" in v]
    assert f"--secret={served}" in args
    assert "--webhook-configuration=leoflow-agent-injector" in args
    assert "--service=leoflow-webhook" in args


def test_base_with_unsupported_kustomize_field_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\npatches: [{path: p.yaml}]\n")
    with pytest.raises(manifests.ManifestError, match="patches not supported"):
        manifests.load_kustomization(tmp_path)


def test_missing_resource_is_named(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [gone.yaml]\n")
    with pytest.raises(manifests.ManifestError, match=r"'gone\.yaml' does not exist"):
        manifests.load_kustomization(tmp_path)


def test_document_that_is_not_an_object_is_named(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [a.yaml]\n")
    (tmp_path / "a.yaml").write_text("apiVersion: v1\nkind: ConfigMap\n---\n- just a list\n")
    with pytest.raises(manifests.ManifestError, match=r"a.yaml: document 2 is not a Kubernetes object"):
        manifests.load_kustomization(tmp_path)

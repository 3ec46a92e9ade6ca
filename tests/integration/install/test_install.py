"""A cluster admin's install: `kubectl apply -k manifests/`, what it may do, and a clean uninstall.

The MutatingWebhookConfiguration is removed as soon as an apply has shown it is accepted: the
webhook does not run here (its registry image is on no node), and with ``failurePolicy: Fail`` the
configuration would refuse every labelled pod the other tests of the session create.
test_installed_webhook.py runs the installed webhook for real on the real node.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator

import pytest
import yaml

from leoflow.dev.testing import ClusterHandle
from leoflow.install import manifests

from .installing import (
    CONFIGURATION,
    MANIFESTS,
    NAMESPACE,
    assert_not_installed,
    leoflow_crds,
    remove_webhook_configuration,
    restore_crds,
    uninstall,
    wait_until_gone,
)

pytestmark = pytest.mark.cluster

CONTROLLER = f"system:serviceaccount:{NAMESPACE}:leoflow-controller"
WEBHOOK = f"system:serviceaccount:{NAMESPACE}:leoflow-webhook"
KEEPER = f"system:serviceaccount:{NAMESPACE}:leoflow-webhook-certificates"
TASK_POD = "system:serviceaccount:team-a:default"
# Every authenticated identity may ask who it is and what it may do (system:basic-user).
SELF_REVIEWS = {
    "selfsubjectreviews.authentication.k8s.io",
    "selfsubjectaccessreviews.authorization.k8s.io",
    "selfsubjectrulesreviews.authorization.k8s.io",
}


@pytest.fixture(scope="module")
def installed(cluster: ClusterHandle) -> Iterator[ClusterHandle]:
    """`kubectl apply -k manifests/` for real; the CRDs other modules installed are put back after."""
    assert_not_installed(cluster)
    crds_before = leoflow_crds(cluster)
    try:
        applied = cluster.kubectl("apply", "-k", str(MANIFESTS), check=False)
        assert applied.returncode == 0, applied.stderr
        assert f"mutatingwebhookconfiguration.admissionregistration.k8s.io/{CONFIGURATION}" in applied.stdout
    finally:
        remove_webhook_configuration(cluster)
    try:
        yield cluster
    finally:
        uninstall(cluster)
        restore_crds(cluster, crds_before)


def test_kubectl_kustomize_and_install_print_read_the_same_objects(cluster: ClusterHandle) -> None:
    rendered = cluster.kubectl("kustomize", str(MANIFESTS)).stdout
    assert [d for d in yaml.safe_load_all(rendered) if d] == manifests.load_kustomization(MANIFESTS)


@pytest.mark.parametrize(
    ("overlay", "expected"),
    [
        ("cert-manager", {"Certificate", "Issuer", "MutatingWebhookConfiguration"}),
        ("prometheus", {"ServiceMonitor"}),
        ("dev", {"Deployment", "ConfigMap"}),
    ],
)
def test_overlay_renders(cluster: ClusterHandle, overlay: str, expected: set[str]) -> None:
    rendered = [
        d
        for d in yaml.safe_load_all(
            cluster.kubectl("kustomize", str(MANIFESTS / "overlays" / overlay)).stdout
        )
        if d
    ]
    assert expected <= {d["kind"] for d in rendered}


def test_cert_manager_overlay_injects_the_ca_and_drops_the_certificate_keeper(cluster: ClusterHandle) -> None:
    overlay = str(MANIFESTS / "overlays" / "cert-manager")
    rendered = [d for d in yaml.safe_load_all(cluster.kubectl("kustomize", overlay).stdout) if d]
    configuration = next(d for d in rendered if d["kind"] == "MutatingWebhookConfiguration")
    annotations = configuration["metadata"]["annotations"]
    assert annotations["cert-manager.io/inject-ca-from"] == f"{NAMESPACE}/leoflow-webhook"
    assert not [d for d in rendered if d["metadata"]["name"] == "leoflow-webhook-certificates"]
    roles = [d for d in rendered if d["kind"] in ("Role", "ClusterRole")]
    assert all("secrets" not in rule["resources"] for role in roles for rule in role["rules"])
    certificates = {d["spec"]["secretName"] for d in rendered if d["kind"] == "Certificate"}
    assert {"leoflow-webhook-tls", "leoflow-controller-tls"} <= certificates


def test_server_side_dry_run_accepts_every_object_and_creates_none(cluster: ClusterHandle) -> None:
    # A server-side dry run cannot create the namespace the other objects go into, so it exists first.
    assert_not_installed(cluster)
    cluster.kubectl("create", "namespace", NAMESPACE)
    crds_before = leoflow_crds(cluster)
    try:
        dry = cluster.kubectl("apply", "-k", str(MANIFESTS), "--dry-run=server", check=False)
        assert dry.returncode == 0, dry.stderr
        lines = dry.stdout.strip().splitlines()
        assert len(lines) == len(manifests.load_kustomization(MANIFESTS))
        assert all(line.endswith("(server dry run)") for line in lines), lines
        assert leoflow_crds(cluster) == crds_before
        assert not cluster.kubectl(
            "get", "mutatingwebhookconfiguration", CONFIGURATION, "--ignore-not-found", "-o", "name"
        ).stdout
        assert not cluster.kubectl("get", "deployments", "-n", NAMESPACE, "-o", "name").stdout
    finally:
        cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false")
        wait_until_gone(cluster, "namespace", NAMESPACE)


def test_install_creates_every_object(installed: ClusterHandle) -> None:
    for obj in manifests.load_kustomization(MANIFESTS):
        if obj["kind"] == "MutatingWebhookConfiguration":
            continue
        namespace = obj["metadata"].get("namespace")
        where = ["-n", namespace] if namespace else []
        kind = f"{obj['kind'].lower()}.{obj['apiVersion'].rpartition('/')[0] or 'core'}".removesuffix(".core")
        installed.kubectl("get", kind, obj["metadata"]["name"], *where)


def test_leoflow_pods_pass_the_restricted_pod_security_standard(installed: ClusterHandle) -> None:
    refused = installed.kubectl(
        "run", "unhardened", "-n", NAMESPACE, "--image=x", "--dry-run=server", check=False
    )
    assert "violates PodSecurity" in refused.stderr, "the namespace enforces the restricted standard"
    deadline = time.monotonic() + 60
    for obj in manifests.load_kustomization(MANIFESTS):
        if obj["kind"] != "Deployment":
            continue
        name, wanted = obj["metadata"]["name"], str(obj["spec"]["replicas"])
        while True:
            created = installed.kubectl(
                "get", "deployment", name, "-n", NAMESPACE, "-o", "jsonpath={.status.replicas}"
            ).stdout
            if created == wanted:
                break
            if time.monotonic() > deadline:
                events = installed.kubectl("get", "events", "-n", NAMESPACE).stdout
                raise AssertionError(f"{name}: {created or 0} of {wanted} pods created\n{events}")
            time.sleep(0.5)


def can_i(cluster: ClusterHandle, who: str, verb: str, resource: str, *flags: str) -> bool:
    result = cluster.kubectl("auth", "can-i", verb, resource, f"--as={who}", *flags, check=False)
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), result.stderr
    return answer == "yes"


ALLOWED = [
    (CONTROLLER, "create", "pods", "-n", "team-a"),
    (CONTROLLER, "delete", "pods", "-n", "team-a"),
    (CONTROLLER, "patch", "pods", "-n", "team-a"),
    (CONTROLLER, "watch", "pods", "--all-namespaces"),
    (CONTROLLER, "list", "nodes"),
    (CONTROLLER, "watch", "nodes"),
    (CONTROLLER, "create", "configmaps", "-n", "team-a"),
    (CONTROLLER, "patch", "configmaps", "-n", "team-a"),
    (CONTROLLER, "watch", "dags.leoflow.io", "--all-namespaces"),
    (CONTROLLER, "patch", "dags.leoflow.io", "--subresource=status", "-n", "team-a"),
    (CONTROLLER, "create", "dagruns.leoflow.io", "-n", "team-a"),
    (CONTROLLER, "patch", "dagruns.leoflow.io", "-n", "team-a"),
    (CONTROLLER, "patch", "dagruns.leoflow.io", "--subresource=status", "-n", "team-a"),
    (CONTROLLER, "update", "dagruns.leoflow.io", "--subresource=finalizers", "-n", "team-a"),
    (CONTROLLER, "create", "events", "-n", "team-a"),
    (CONTROLLER, "patch", "events", "-n", "team-a"),
    (CONTROLLER, "create", "tokenreviews.authentication.k8s.io"),
    (CONTROLLER, "create", "leases.coordination.k8s.io", "-n", NAMESPACE),
    (CONTROLLER, "update", "leases.coordination.k8s.io/leoflow-controller", "-n", NAMESPACE),
    (KEEPER, "get", "secrets/leoflow-webhook-tls", "-n", NAMESPACE),
    (KEEPER, "update", "secrets/leoflow-webhook-tls", "-n", NAMESPACE),
    (KEEPER, "get", "secrets/leoflow-controller-tls", "-n", NAMESPACE),
    (KEEPER, "update", "secrets/leoflow-controller-tls", "-n", NAMESPACE),
    (KEEPER, "create", "secrets", "-n", NAMESPACE),
    (KEEPER, "get", f"mutatingwebhookconfigurations.admissionregistration.k8s.io/{CONFIGURATION}"),
    (KEEPER, "patch", f"mutatingwebhookconfigurations.admissionregistration.k8s.io/{CONFIGURATION}"),
]
DENIED = [
    (CONTROLLER, "get", "secrets", "-n", NAMESPACE),
    (CONTROLLER, "list", "secrets", "--all-namespaces"),
    (CONTROLLER, "delete", "namespaces"),
    (CONTROLLER, "patch", "nodes"),
    (CONTROLLER, "update", "nodes", "--subresource=status"),
    (CONTROLLER, "delete", "nodes"),
    (CONTROLLER, "get", "pods", "--subresource=log", "-n", "team-a"),
    (CONTROLLER, "create", "pods", "--subresource=exec", "-n", "team-a"),
    (CONTROLLER, "update", "configmaps", "-n", "team-a"),
    (CONTROLLER, "delete", "configmaps", "-n", "team-a"),
    (CONTROLLER, "delete", "dags.leoflow.io", "-n", "team-a"),
    (CONTROLLER, "patch", "dags.leoflow.io", "-n", "team-a"),
    (CONTROLLER, "delete", "dagruns.leoflow.io", "-n", "team-a"),
    (CONTROLLER, "create", "deployments.apps", "-n", "team-a"),
    (CONTROLLER, "create", "leases.coordination.k8s.io", "-n", "team-a"),
    (CONTROLLER, "update", "leases.coordination.k8s.io/someone-else", "-n", NAMESPACE),
    (CONTROLLER, "patch", f"mutatingwebhookconfigurations.admissionregistration.k8s.io/{CONFIGURATION}"),
    (WEBHOOK, "list", "pods", "--all-namespaces"),
    (WEBHOOK, "get", "pods", "-n", "team-a"),
    (WEBHOOK, "get", "secrets/leoflow-webhook-tls", "-n", NAMESPACE),
    (WEBHOOK, "patch", f"mutatingwebhookconfigurations.admissionregistration.k8s.io/{CONFIGURATION}"),
    (WEBHOOK, "create", "leases.coordination.k8s.io", "-n", NAMESPACE),
    (KEEPER, "list", "pods", "--all-namespaces"),
    (KEEPER, "list", "secrets", "-n", NAMESPACE),
    (KEEPER, "get", "secrets/someone-elses", "-n", NAMESPACE),
    (KEEPER, "delete", "secrets/leoflow-controller-tls", "-n", NAMESPACE),
    (KEEPER, "get", "secrets/leoflow-controller-tls", "-n", "team-a"),
    (KEEPER, "create", "secrets", "-n", "team-a"),
    (KEEPER, "list", "mutatingwebhookconfigurations.admissionregistration.k8s.io"),
    (KEEPER, "patch", "mutatingwebhookconfigurations.admissionregistration.k8s.io/someone-elses"),
    (TASK_POD, "list", "pods", "-n", "team-a"),
    (TASK_POD, "create", "dagruns.leoflow.io", "-n", "team-a"),
    (TASK_POD, "get", "configmaps", "-n", "team-a"),
]


def _case_id(case: tuple[str, ...]) -> str:
    return " ".join((case[0].rsplit(":", 1)[1], *case[1:]))


@pytest.mark.parametrize("case", ALLOWED, ids=_case_id)
def test_component_can_do_what_it_needs(installed: ClusterHandle, case: tuple[str, ...]) -> None:
    assert can_i(installed, *case)


@pytest.mark.parametrize("case", DENIED, ids=_case_id)
def test_component_cannot_do_more(installed: ClusterHandle, case: tuple[str, ...]) -> None:
    assert not can_i(installed, *case)


_RESOURCE_ROW = re.compile(r"^(\S+)\s+\[\]\s+\[(.*?)\]\s+\[(.*?)\]$")


def granted(cluster: ClusterHandle, who: str, namespace: str) -> set[tuple[str, str, str]]:
    """(resource, resource names, verbs) rows of `kubectl auth can-i --list`, minus self reviews."""
    listing = cluster.kubectl("auth", "can-i", "--list", f"--as={who}", "-n", namespace).stdout
    rows = {m.groups() for m in map(_RESOURCE_ROW.match, listing.splitlines()[1:]) if m}
    return {row for row in rows if row[0] not in SELF_REVIEWS}


def test_controller_holds_exactly_its_grants(installed: ClusterHandle) -> None:
    cluster_wide = {
        ("pods", "", "get list watch create delete patch"),
        ("configmaps", "", "get create patch"),
        ("nodes", "", "list watch"),
        ("events", "", "create patch"),
        ("dags.leoflow.io", "", "get list watch"),
        ("dags.leoflow.io/status", "", "patch"),
        ("dagruns.leoflow.io", "", "get list watch create patch"),
        ("dagruns.leoflow.io/status", "", "patch"),
        ("dagruns.leoflow.io/finalizers", "", "update"),
        ("tokenreviews.authentication.k8s.io", "", "create"),
    }
    assert granted(installed, CONTROLLER, "team-a") == cluster_wide
    assert granted(installed, CONTROLLER, NAMESPACE) == cluster_wide | {
        ("leases.coordination.k8s.io", "", "create"),
        ("leases.coordination.k8s.io", "leoflow-controller", "get update"),
    }


def test_webhook_holds_no_grants(installed: ClusterHandle) -> None:
    assert granted(installed, WEBHOOK, NAMESPACE) == set()
    assert granted(installed, WEBHOOK, "team-a") == set()


def test_certificate_keeper_holds_exactly_its_grants(installed: ClusterHandle) -> None:
    configuration = (
        "mutatingwebhookconfigurations.admissionregistration.k8s.io",
        CONFIGURATION,
        "get patch update",
    )
    assert granted(installed, KEEPER, "team-a") == {configuration}
    assert granted(installed, KEEPER, NAMESPACE) == {
        configuration,
        ("secrets", "", "create"),
        ("secrets", "leoflow-webhook-tls", "get update"),
        ("secrets", "leoflow-controller-tls", "get update"),
    }


def test_task_pods_get_nothing_by_default(installed: ClusterHandle) -> None:
    assert granted(installed, TASK_POD, "team-a") == set()


def test_uninstall_leaves_nothing_behind(installed: ClusterHandle, namespace: str) -> None:
    reapplied = installed.kubectl("apply", "-k", str(MANIFESTS), check=False)
    try:
        assert reapplied.returncode == 0, reapplied.stderr
        uninstall(installed)
    finally:
        remove_webhook_configuration(installed)
    assert not installed.kubectl(
        "get", "mutatingwebhookconfiguration", CONFIGURATION, "--ignore-not-found"
    ).stdout
    assert leoflow_crds(installed) == []
    assert not installed.kubectl("get", "namespace", NAMESPACE, "--ignore-not-found").stdout
    leftovers = installed.kubectl(
        "get", "clusterroles,clusterrolebindings", "-l", "app.kubernetes.io/part-of=leoflow", "-o", "name"
    ).stdout
    assert not leftovers
    # Nothing intercepts a labelled pod any more: it is created as written.
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"after-{uuid.uuid4().hex[:6]}", "labels": {"leoflow.io/inject": "true"}},
        "spec": {"containers": [{"name": "main", "image": "leoflow.dev/base:1", "command": ["true"]}]},
    }
    created = installed.kubectl("create", "-n", namespace, "-f", "-", "-o", "yaml", input=yaml.safe_dump(pod))
    assert yaml.safe_load(created.stdout)["spec"]["containers"][0]["command"] == ["true"]

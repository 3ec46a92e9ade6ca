"""`kubectl apply -k` without cert-manager and without `leoflow install --print`: the certificate
keeper issues the webhook's Secret and fills the caBundle, the webhook pods wait for the Secret,
start, and inject, with the certificates verified the way the API server verifies them. It also
issues and renews the controller's Secret, which a controller started before it existed waits
for and then serves agents from, verified the way agents verify it (gRPC against ``ca.crt``).

The dev cluster has no kube-proxy, so pods cannot reach the API server's Service address; the
keeper therefore runs here on the host, as the keeper's ServiceAccount (a token from
``kubectl create token``), so it holds exactly the grants the manifests give it. For the same
reason the controller whose TLS is checked runs on the host, from a directory into which the test
projects the Secret the way the kubelet does (a ``..data`` symlink swapped atomically).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml
from cryptography import x509
from kubernetes_asyncio import config

from leoflow.agent.v1 import agent_pb2, agent_pb2_grpc
from leoflow.certs import authority, rotation, syncing
from leoflow.dev.processes import free_port
from leoflow.dev.testing import ClusterHandle

from .installing import (
    CONFIGURATION,
    MANIFESTS,
    NAMESPACE,
    assert_not_installed,
    import_local_images,
    leoflow_crds,
    remove_webhook_configuration,
    restore_crds,
    run_labelled_pod,
    uninstall,
    wait_for,
    wait_for_webhook,
)

pytestmark = [pytest.mark.cluster, pytest.mark.node]

KEEPER = "leoflow-webhook-certificates"


def service_account_kubeconfig(cluster: ClusterHandle, directory: Path) -> Path:
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    token = cluster.kubectl("create", "token", KEEPER, "-n", NAMESPACE, "--duration=1h").stdout.strip()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "dev", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": KEEPER, "user": {"token": token}}],
        "contexts": [{"name": KEEPER, "context": {"cluster": "dev", "user": KEEPER}}],
        "current-context": KEEPER,
    }
    path = directory / "keeper.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def ca_bundle(cluster: ClusterHandle) -> str:
    return cluster.kubectl(
        "get",
        "mutatingwebhookconfiguration",
        CONFIGURATION,
        "-o",
        "jsonpath={.webhooks[0].clientConfig.caBundle}",
    ).stdout


@pytest.fixture(scope="module")
def keeper_kubeconfig(cluster: ClusterHandle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keeper") / "keeper.kubeconfig"


@pytest.fixture(scope="module")
def self_managed_install(cluster: ClusterHandle, keeper_kubeconfig: Path) -> Iterator[ClusterHandle]:
    import_local_images(cluster)
    assert_not_installed(cluster)
    crds_before = leoflow_crds(cluster)
    keeper: subprocess.Popen[bytes] | None = None
    try:
        cluster.kubectl("apply", "-f", str(MANIFESTS / "crds"))
        cluster.kubectl("apply", "-k", str(MANIFESTS / "overlays" / "dev"))
        assert not ca_bundle(cluster), "nothing has filled the caBundle yet"
        args = json.loads(
            cluster.kubectl(
                "get",
                "deployment",
                KEEPER,
                "-n",
                NAMESPACE,
                "-o",
                "jsonpath={.spec.template.spec.containers[0].args}",
            ).stdout
        )
        args = [a.replace("$(POD_NAMESPACE)", NAMESPACE) for a in args]
        kubeconfig = service_account_kubeconfig(cluster, keeper_kubeconfig.parent)
        keeper = subprocess.Popen(
            [sys.executable, "-m", "leoflow", *args, f"--kubeconfig={kubeconfig}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        yield cluster
    finally:
        if keeper is not None:
            keeper.terminate()
            keeper.wait(timeout=10)
        remove_webhook_configuration(cluster)
        uninstall(cluster)
        restore_crds(cluster, crds_before)


def test_keeper_issues_the_secret_and_fills_the_ca_bundle(self_managed_install: ClusterHandle) -> None:
    cluster = self_managed_install
    wait_for("the caBundle", lambda: bool(ca_bundle(cluster)), within=60)
    secret = cluster.kubectl("get", "secret", "leoflow-webhook-tls", "-n", NAMESPACE, "-o", "json").stdout
    data = json.loads(secret)["data"]
    assert base64.b64decode(data["ca.crt"]) in base64.b64decode(ca_bundle(cluster))


def test_webhook_serves_a_certificate_the_api_server_trusts(self_managed_install: ClusterHandle) -> None:
    cluster = self_managed_install
    wait_for("the caBundle", lambda: bool(ca_bundle(cluster)), within=60)
    wait_for_webhook(cluster)
    context = ssl.create_default_context(cadata=base64.b64decode(ca_bundle(cluster)).decode())
    pods = json.loads(
        cluster.kubectl(
            "get", "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/name=leoflow-webhook", "-o", "json"
        ).stdout
    )["items"]
    assert len(pods) == 2
    for pod in pods:
        with (
            socket.create_connection((pod["status"]["podIP"], 8443), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=f"leoflow-webhook.{NAMESPACE}.svc") as tls,
        ):
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
        restarts = pod["status"]["containerStatuses"][0]["restartCount"]
        assert restarts == 0, "the init container waited for the Secret; the webhook never crashed"


def test_labelled_pod_is_injected_through_the_self_managed_install(
    self_managed_install: ClusterHandle, namespace: str
) -> None:
    cluster = self_managed_install
    wait_for("the caBundle", lambda: bool(ca_bundle(cluster)), within=60)
    wait_for_webhook(cluster)
    finished = run_labelled_pod(cluster, namespace, "task", "echo self-managed")
    assert finished["spec"]["containers"][0]["command"][:3] == ["/leoflow/bin/leoflow-agent", "run", "--"]
    assert finished["status"]["phase"] == "Succeeded", finished["status"]


# --- the controller's agent endpoint ---------------------------------------------------------------

CONTROLLER_SECRET = "leoflow-controller-tls"
CONTROLLER_NAMES = authority.service_dns_names("leoflow-controller", NAMESPACE)


def secret_data(cluster: ClusterHandle, name: str) -> dict[str, str] | None:
    found = cluster.kubectl("get", "secret", name, "-n", NAMESPACE, "-o", "json", check=False)
    return json.loads(found.stdout)["data"] if found.returncode == 0 else None


def issued_controller_secret(cluster: ClusterHandle) -> dict[str, str]:
    """The controller's Secret once the keeper has issued it."""
    wait_for(
        "Secret leoflow-controller-tls",
        lambda: secret_data(cluster, CONTROLLER_SECRET) is not None,
        within=60,
    )
    data = secret_data(cluster, CONTROLLER_SECRET)
    assert data is not None
    return data


def decoded(data: dict[str, str], key: str) -> bytes:
    return base64.b64decode(data[key])


def bundle(data: dict[str, str]) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(decoded(data, "ca.crt"))


def served_in(data: dict[str, str]) -> x509.Certificate:
    return x509.load_pem_x509_certificate(decoded(data, "tls.crt"))


def project(data: dict[str, str], directory: Path, items: tuple[str, ...]) -> None:
    """What the kubelet does for a Secret volume: a new timestamped directory, then ``..data``
    swapped to it in one rename, with each file a symlink through ``..data``."""
    target = directory / f"..{time.monotonic_ns()}"
    target.mkdir()
    for key in items:
        (target / key).write_bytes(decoded(data, key))
    swap = directory / "..data_tmp"
    swap.symlink_to(target.name)
    swap.replace(directory / "..data")
    for key in items:
        link = directory / key
        if not link.is_symlink():
            link.symlink_to(f"..data/{key}")


def served_certificate(port: int) -> x509.Certificate:
    """The certificate the agent endpoint presents to a new connection (gRPC needs ALPN h2)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="leoflow-controller") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def agent_call(port: int, ca_pem: bytes, namespace: str) -> grpc.StatusCode:
    """A report as an agent sends it, verifying the controller against ``ca_pem`` and the
    Service's DNS name; without a pod token the controller must refuse it (UNAUTHENTICATED),
    which proves the TLS handshake went through. UNAVAILABLE means it did not."""

    async def call() -> grpc.StatusCode:
        credentials = grpc.ssl_channel_credentials(root_certificates=ca_pem)
        options = (("grpc.ssl_target_name_override", f"leoflow-controller.{NAMESPACE}.svc"),)
        async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials, options=options) as channel:
            stub = agent_pb2_grpc.AgentServiceStub(channel)  # type: ignore[no-untyped-call]
            identity = agent_pb2.TaskIdentity(pod_namespace=namespace, pod_name="nobody", pod_uid="0")
            try:
                await stub.Heartbeat(agent_pb2.HeartbeatRequest(identity=identity), timeout=10)
            except grpc.aio.AioRpcError as err:
                return err.code()
            return grpc.StatusCode.OK

    return asyncio.run(call())


def trusted_by(served: x509.Certificate, cas: list[x509.Certificate]) -> bool:
    """What an agent checks apart from the validity period, which starts in the future for the
    certificates issued as if later: signed by a CA in ``ca.crt`` and named for the Service."""
    names, _ = authority.subject_alternative_names(served)
    return f"leoflow-controller.{NAMESPACE}.svc" in names and any(
        authority.signed_by(served, ca) for ca in cas
    )


def renew(keeper_kubeconfig: Path, now: datetime.datetime) -> rotation.Rotation:
    """One keeper round as if at ``now``, as the keeper's ServiceAccount."""

    async def round_() -> rotation.Rotation:
        api = await config.new_client_from_config(config_file=str(keeper_kubeconfig))
        async with api:
            target = syncing.Target(
                namespace=NAMESPACE,
                secret_name=CONTROLLER_SECRET,
                webhook_configuration=None,
                dns_names=CONTROLLER_NAMES,
                ca_common_name="leoflow-agent-ca",
            )
            return await syncing.sync_once(api, target, policy=rotation.RotationPolicy(), now=now)

    return asyncio.run(round_())


def test_keeper_issues_the_controller_secret_for_the_service_names(
    self_managed_install: ClusterHandle,
) -> None:
    cluster = self_managed_install
    data = issued_controller_secret(cluster)
    assert set(data) == {"ca.crt", "ca.key", "tls.crt", "tls.key"}
    (ca,) = bundle(data)
    served = served_in(data)
    assert authority.signed_by(served, ca)
    assert authority.subject_alternative_names(served) == (frozenset(CONTROLLER_NAMES), frozenset())
    webhook = secret_data(cluster, "leoflow-webhook-tls")
    assert webhook is not None and bundle(webhook)[0] != ca, "each endpoint has its own CA"


@pytest.fixture
def controller_on_host(
    self_managed_install: ClusterHandle, namespace: str, tmp_path: Path
) -> Iterator[tuple[Path, int, int, Path]]:
    """``leoflow controller run`` started before its certificate files exist."""
    cluster = self_managed_install
    projected = tmp_path / "controller-tls"
    projected.mkdir()
    port, health = free_port(), free_port()
    log = tmp_path / "controller.log"
    with log.open("wb") as out:
        controller = subprocess.Popen(
            [
                sys.executable, "-m", "leoflow", "controller", "run",
                f"--kubeconfig={cluster.kubeconfig}", f"--namespace={namespace}", "--no-leader-elect",
                f"--agent-address=127.0.0.1:{port}", f"--metrics-address=127.0.0.1:{health}",
                f"--agent-tls-cert={projected / 'tls.crt'}", f"--agent-tls-key={projected / 'tls.key'}",
                f"--agent-ca-file={projected / 'ca.crt'}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield projected, port, health, log
    finally:
        controller.terminate()
        controller.wait(timeout=20)
        print(log.read_text()[-3000:])


def healthy(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            return b" 200 " in conn.recv(64)
    except OSError:
        return False


def test_controller_waits_for_its_secret_then_serves_agents_and_follows_renewals(
    self_managed_install: ClusterHandle,
    controller_on_host: tuple[Path, int, int, Path],
    keeper_kubeconfig: Path,
    namespace: str,
) -> None:
    cluster = self_managed_install
    projected, port, health, log = controller_on_host
    items = ("tls.crt", "tls.key", "ca.crt")  # as controller.yaml mounts it: no ca.key
    wait_for(
        "the controller waiting for its certificate",
        lambda: b"waiting for the serving" in log.read_bytes(),
        within=60,
    )
    other_ca = authority.new_ca(
        common_name="other", now=datetime.datetime.now(datetime.UTC), validity=datetime.timedelta(days=1)
    )
    assert healthy(health), "the rest of the controller runs meanwhile"
    assert agent_call(port, other_ca.cert_pem, namespace) == grpc.StatusCode.UNAVAILABLE, (
        "nothing listens yet"
    )

    first = issued_controller_secret(cluster)
    project(first, projected, items)
    wait_for("the agent server", lambda: b"serving agents" in log.read_bytes(), within=30)
    assert agent_call(port, decoded(first, "ca.crt"), namespace) == grpc.StatusCode.UNAUTHENTICATED
    assert agent_call(port, other_ca.cert_pem, namespace) == grpc.StatusCode.UNAVAILABLE, "another CA"

    # The keeper's rounds as if at later dates: the certificates they issue are not valid yet for
    # a client on today's clock, so from here the served certificate is checked without gRPC.
    # Two thirds of the serving certificate's 90 days: a new one from the same CA.
    now = datetime.datetime.now(datetime.UTC)
    renewed = renew(keeper_kubeconfig, now + datetime.timedelta(days=61))
    assert renewed.reasons == ("serving certificate due for renewal",)
    second = secret_data(cluster, CONTROLLER_SECRET)
    assert second is not None and bundle(second) == bundle(first) and served_in(second) != served_in(first)
    project(second, projected, items)
    wait_for(
        "the renewed certificate served", lambda: served_certificate(port) == served_in(second), within=30
    )
    assert trusted_by(served_certificate(port), bundle(second))

    # Two thirds of the CA's ten years: a new CA, and ca.crt trusts the old one and the new one.
    rotated = renew(keeper_kubeconfig, now + datetime.timedelta(days=2500))
    assert "CA due for renewal" in rotated.reasons and rotated.state.ca is not None
    third = secret_data(cluster, CONTROLLER_SECRET)
    assert third is not None
    assert bundle(third) == [bundle(first)[0], x509.load_pem_x509_certificate(rotated.state.ca.cert_pem)]
    project(third, projected, items)
    wait_for(
        "the certificate from the new CA served",
        lambda: served_certificate(port) == served_in(third),
        within=30,
    )
    assert trusted_by(served_certificate(port), bundle(third))

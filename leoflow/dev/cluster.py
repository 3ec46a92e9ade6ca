"""Bring the local cluster up and down: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and KWOK as processes on 127.0.0.1, all state under one cluster home.

``up`` is idempotent: a healthy cluster is reported as is, a partly running one is stopped and
started again on its existing data. ``down`` stops every process it started and checks that no
port is left listening. The real kubelet + containerd node is started by :mod:`leoflow.dev.node`.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import ssl
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from leoflow.dev import etcdspace, kwok
from leoflow.dev.binaries import Binaries, ensure_binaries
from leoflow.dev.containerd import NodePaths
from leoflow.dev.node import NodeEnvironment, NodeError, real_node_pids, start_real_node, stop_real_node
from leoflow.dev.pki import Pki, ensure_pki
from leoflow.dev.processes import Layout, ProcessError, free_port, pid_of, port_in_use, start, stop, wait_http
from leoflow.spec.crds import crds

log = logging.getLogger(__name__)

# Start order; ``down`` stops in reverse.
CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
KCM_CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "node-lifecycle-controller",
    "taint-eviction-controller",
    "pod-garbage-collector-controller",
    "job-controller",
    "replicaset-controller",
    "deployment-controller",
    "disruption-controller",
    "endpoints-controller",
    "endpointslice-controller",
    "ttl-after-finished-controller",
)
SERVICE_CIDR = "10.96.0.0/24"
REAL_NODE_NAME = "leoflow-node"


class ClusterError(RuntimeError):
    """The cluster could not be brought up, reached or torn down; the message says why."""


def default_home() -> Path:
    return Path(os.environ.get("LEOFLOW_DEV_HOME", Path.home() / ".local" / "share" / "leoflow" / "dev"))


@dataclass
class Ports:
    etcd: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int

    def values(self) -> list[int]:
        return list(asdict(self).values())


@dataclass
class ClusterState:
    """What ``up`` started; persisted as ``<home>/state.json``."""

    home: Path
    kubernetes_version: str
    ports: Ports
    kwok_nodes: int
    real_node: bool
    started_at: float = field(default_factory=time.time)

    @property
    def kubeconfig(self) -> Path:
        return self.home / "kubeconfig"

    @property
    def apiserver_url(self) -> str:
        return f"https://127.0.0.1:{self.ports.apiserver}"

    @property
    def node_address(self) -> str | None:
        """The host's address on the real node's pod bridge: where pods reach host servers."""
        return NodePaths(self.home).node_ip if self.real_node else None

    def save(self) -> None:
        data = asdict(self)
        data["home"] = str(self.home)
        (self.home / "state.json").write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, home: Path) -> ClusterState | None:
        try:
            data = json.loads((home / "state.json").read_text())
        except FileNotFoundError:
            return None
        except (ValueError, OSError) as err:
            raise ClusterError(
                f"{home / 'state.json'} is unreadable ({err}); run `leoflow dev down`"
            ) from err
        return cls(
            home=Path(data["home"]),
            kubernetes_version=data["kubernetes_version"],
            ports=Ports(**data["ports"]),
            kwok_nodes=data["kwok_nodes"],
            real_node=data["real_node"],
            started_at=data["started_at"],
        )


@dataclass(frozen=True)
class UpOptions:
    """What the user asked of ``leoflow dev up``."""

    home: Path
    kwok_nodes: int = 3
    real_node: bool = True
    apiserver_port: int | None = None


def admin_ssl_context(pki: Pki) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    context.load_cert_chain(str(pki.cert("admin")), str(pki.key("admin")))
    return context


def kubectl(
    state: ClusterState, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Runs the cluster's own kubectl against its admin kubeconfig."""
    binary = ensure_binaries()["kubectl"]
    result = subprocess.run(
        [str(binary), f"--kubeconfig={state.kubeconfig}", *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise ClusterError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result


LEOFLOW_CRDS = ("dags.leoflow.io", "dagruns.leoflow.io")


def install_crds(state: ClusterState, timeout: float = 60) -> None:
    """Applies Leoflow's CRDs (server-side, as generated by :mod:`leoflow.spec.crds`) and waits
    until the API server serves them."""
    objects = {"apiVersion": "v1", "kind": "List", "items": list(crds().values())}
    kubectl(state, "apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps(objects))
    wait_established(state, LEOFLOW_CRDS, timeout)


def wait_established(state: ClusterState, names: tuple[str, ...], timeout: float = 60) -> None:
    """Waits until each CRD in ``names`` is Established. ``kubectl wait`` is not used: it fails
    at once on a CRD whose status has no conditions yet, as a just-created one may."""
    established = '{.status.conditions[?(@.type=="Established")].status}'
    deadline = time.monotonic() + timeout
    for name in names:
        while kubectl(state, "get", f"crd/{name}", "-o", f"jsonpath={established}").stdout != "True":
            if time.monotonic() > deadline:
                raise ClusterError(f"CRD {name} not Established after {timeout:.0f} s")
            time.sleep(0.1)


def _write_kubeconfig(state: ClusterState, pki: Pki) -> None:
    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "leoflow-dev",
                "cluster": {"server": state.apiserver_url, "certificate-authority-data": b64(pki.ca_cert)},
            }
        ],
        "users": [
            {
                "name": "leoflow-admin",
                "user": {
                    "client-certificate-data": b64(pki.cert("admin")),
                    "client-key-data": b64(pki.key("admin")),
                },
            }
        ],
        "contexts": [{"name": "leoflow-dev", "context": {"cluster": "leoflow-dev", "user": "leoflow-admin"}}],
        "current-context": "leoflow-dev",
    }
    state.kubeconfig.write_text(yaml.safe_dump(config))
    state.kubeconfig.chmod(0o600)


def _allocate_ports(options: UpOptions) -> Ports:
    if options.apiserver_port is not None and port_in_use(options.apiserver_port):
        raise ClusterError(
            f"--apiserver-port {options.apiserver_port}: 127.0.0.1:{options.apiserver_port} is already "
            "in use; pick another port or omit the flag to get a free one"
        )
    chosen: set[int] = set()

    def pick() -> int:
        while (port := free_port()) in chosen or port == options.apiserver_port:
            pass
        chosen.add(port)
        return port

    return Ports(
        etcd=pick(),
        etcd_peer=pick(),
        apiserver=options.apiserver_port or pick(),
        controller_manager=pick(),
        scheduler=pick(),
    )


def _start_etcd(layout: Layout, binaries: Binaries, state: ClusterState) -> None:
    p = state.ports
    start(
        layout,
        "etcd",
        [
            str(binaries["etcd"]),
            "--name=leoflow",
            f"--data-dir={state.home / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{p.etcd}",
            f"--advertise-client-urls=http://127.0.0.1:{p.etcd}",
            f"--listen-peer-urls=http://127.0.0.1:{p.etcd_peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{p.etcd_peer}",
            f"--initial-cluster=leoflow=http://127.0.0.1:{p.etcd_peer}",
            "--unsafe-no-fsync=true",
            f"--quota-backend-bytes={etcdspace.QUOTA_BYTES}",
            "--log-level=warn",
        ],
    )
    # A NOSPACE alarm persists across restarts; _reclaim_etcd_space lifts it once etcd answers.
    wait_http(layout, "etcd", f"http://127.0.0.1:{p.etcd}/health?exclude={etcdspace.NOSPACE}", timeout=30)
    _reclaim_etcd_space(state)


def _reclaim_etcd_space(state: ClusterState) -> None:
    try:
        etcdspace.reclaim(f"http://127.0.0.1:{state.ports.etcd}")
    except etcdspace.EtcdMaintenanceError as err:
        raise ClusterError(f"etcd space could not be reclaimed: {err}") from None


def _start_apiserver(layout: Layout, binaries: Binaries, state: ClusterState, pki: Pki) -> None:
    port = state.ports.apiserver
    start(
        layout,
        "kube-apiserver",
        [
            str(binaries["kube-apiserver"]),
            f"--etcd-servers=http://127.0.0.1:{state.ports.etcd}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={pki.dir}",
            f"--tls-cert-file={pki.cert('apiserver')}",
            f"--tls-private-key-file={pki.key('apiserver')}",
            f"--client-ca-file={pki.ca_cert}",
            f"--service-account-issuer=https://127.0.0.1:{port}",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            "--allow-privileged=true",
            f"--kubelet-client-certificate={pki.cert('apiserver-kubelet-client')}",
            f"--kubelet-client-key={pki.key('apiserver-kubelet-client')}",
            f"--kubelet-certificate-authority={pki.ca_cert}",
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            # No kube-proxy here: the apiserver reaches webhook Services through their endpoints.
            "--enable-aggregator-routing=true",
            "--endpoint-reconciler-type=none",
            "--enable-priority-and-fairness=false",
            "--max-requests-inflight=2000",
            "--max-mutating-requests-inflight=1000",
            "--profiling=false",
            "--v=1",
        ],
    )
    wait_http(
        layout,
        "kube-apiserver",
        f"{state.apiserver_url}/readyz",
        context=admin_ssl_context(pki),
        timeout=90,
        ok=lambda body: body.strip() == b"ok",
    )


def _start_controller_manager(layout: Layout, binaries: Binaries, state: ClusterState, pki: Pki) -> None:
    start(
        layout,
        "kube-controller-manager",
        [
            str(binaries["kube-controller-manager"]),
            f"--kubeconfig={state.kubeconfig}",
            "--leader-elect=false",
            f"--controllers={','.join(KCM_CONTROLLERS)}",
            "--bind-address=127.0.0.1",
            f"--secure-port={state.ports.controller_manager}",
            f"--service-account-private-key-file={pki.sa_key}",
            f"--root-ca-file={pki.ca_cert}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--use-service-account-credentials=false",
            "--kube-api-qps=500",
            "--kube-api-burst=1000",
            "--concurrent-gc-syncs=10",
            "--v=1",
        ],
    )


def _start_scheduler(layout: Layout, binaries: Binaries, state: ClusterState) -> None:
    config = {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {"kubeconfig": str(state.kubeconfig), "qps": 1000, "burst": 2000},
        "leaderElection": {"leaderElect": False},
        # Short backoff: an unschedulable pod is retried quickly once a node appears.
        "podInitialBackoffSeconds": 1,
        "podMaxBackoffSeconds": 2,
    }
    path = state.home / "scheduler.yaml"
    path.write_text(yaml.safe_dump(config))
    start(
        layout,
        "kube-scheduler",
        [
            str(binaries["kube-scheduler"]),
            f"--config={path}",
            "--bind-address=127.0.0.1",
            f"--secure-port={state.ports.scheduler}",
            "--v=1",
        ],
    )


def _start_kwok(layout: Layout, binaries: Binaries, state: ClusterState) -> None:
    path = state.home / "kwok.yaml"
    path.write_text(kwok.stages_yaml())
    start(
        layout,
        "kwok",
        [
            str(binaries.kwok),
            f"--kubeconfig={state.kubeconfig}",
            f"--config={path}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={kwok.KWOK_ANNOTATION}=fake",
            "--cidr=10.244.0.1/16",
            "--node-ip=127.0.0.1",
            "--node-lease-duration-seconds=40",
        ],
    )


def _wait(what: str, check: Any, timeout: float, layout: Layout, component: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if pid_of(layout, component) is None:
            raise ClusterError(f"{component} exited while waiting for {what}")
        time.sleep(0.2)
    raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}")


def _nodes_ready(state: ClusterState, selector: str, count: int) -> bool:
    result = kubectl(state, "get", "nodes", "-l", selector, "-o", "json", check=False)
    if result.returncode != 0:
        return False
    items = json.loads(result.stdout)["items"]
    ready = [
        n
        for n in items
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
        and not any(t["key"] == "node.kubernetes.io/not-ready" for t in n["spec"].get("taints", []))
    ]
    return len(ready) >= count


def _healthy(state: ClusterState, layout: Layout) -> bool:
    if any(pid_of(layout, name) is None for name in CONTROL_PLANE):
        return False
    if state.real_node and None in real_node_pids(state.home).values():
        return False
    try:
        wait_http(
            layout,
            "kube-apiserver",
            f"{state.apiserver_url}/readyz",
            context=admin_ssl_context(Pki(state.home / "pki")),
            timeout=3,
        )
    except ProcessError:
        return False
    return True


def up(options: UpOptions) -> ClusterState:
    """Starts (or confirms) the cluster in ``options.home`` and returns what runs there."""
    home = options.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    layout = Layout(home)
    existing = ClusterState.load(home)
    if existing is not None and _healthy(existing, layout):
        log.info("cluster already up", extra={"home": str(home)})
        _reclaim_etcd_space(existing)
        return existing
    if existing is not None:
        log.warning("cluster partly running; restarting it on its existing data", extra={"home": str(home)})
        down(home)
    binaries = ensure_binaries()
    pki = ensure_pki(home)
    state = ClusterState(
        home=home,
        kubernetes_version=binaries.kubernetes_dir.name,
        ports=_allocate_ports(options),
        kwok_nodes=options.kwok_nodes,
        real_node=options.real_node,
    )
    state.save()
    _write_kubeconfig(state, pki)
    try:
        _start_etcd(layout, binaries, state)
        _start_apiserver(layout, binaries, state, pki)
        _start_controller_manager(layout, binaries, state, pki)
        _start_scheduler(layout, binaries, state)
        _start_kwok(layout, binaries, state)
        insecure = ssl._create_unverified_context()
        wait_http(
            layout,
            "kube-controller-manager",
            f"https://127.0.0.1:{state.ports.controller_manager}/healthz",
            context=insecure,
        )
        wait_http(
            layout, "kube-scheduler", f"https://127.0.0.1:{state.ports.scheduler}/readyz", context=insecure
        )
        if options.kwok_nodes:
            nodes = {
                "apiVersion": "v1",
                "kind": "List",
                "items": [kwok.node_manifest(i) for i in range(options.kwok_nodes)],
            }
            kubectl(state, "apply", "-f", "-", input=json.dumps(nodes))
            _wait(
                f"{options.kwok_nodes} KWOK nodes Ready",
                lambda: _nodes_ready(state, f"{kwok.NODE_TYPE_LABEL}=kwok", options.kwok_nodes),
                60,
                layout,
                "kwok",
            )
        _wait(
            "the default ServiceAccount",
            lambda: kubectl(state, "get", "serviceaccount", "default", check=False).returncode == 0,
            60,
            layout,
            "kube-controller-manager",
        )
        if options.real_node:
            start_real_node(
                NodeEnvironment(
                    home=home,
                    bin_dir=binaries.kubernetes_dir,
                    kubeconfig=state.kubeconfig,
                    apiserver_url=state.apiserver_url,
                    ca_cert=pki.ca_cert,
                    ca_key=pki.ca_key,
                    node_name=REAL_NODE_NAME,
                    log_dir=layout.log_dir,
                )
            )
    except (ProcessError, ClusterError, NodeError) as err:
        down(home)
        raise ClusterError(str(err)) from err
    return state


def down(home: Path) -> list[str]:
    """Stops every component started from ``home``; returns the names it stopped."""
    home = home.resolve()
    layout = Layout(home)
    state = ClusterState.load(home)
    stopped = [name for name, pid in real_node_pids(home).items() if pid is not None]
    if stopped or (state is not None and state.real_node):
        stop_real_node(home)
    stopped += [name for name in reversed(CONTROL_PLANE) if pid_of(layout, name) is not None]
    for name in reversed(CONTROL_PLANE):
        stop(layout, name)
    if state is not None:
        busy = [p for p in state.ports.values() if port_in_use(p)]
        if busy:
            raise ClusterError(f"ports still listening after down: {busy}")
    return stopped


def restart_apiserver(home: Path) -> ClusterState:
    """Stops the cluster's kube-apiserver and starts it again on the same port, certificates and
    etcd data, returning once it is ready: what an API server upgrade or crash looks like to its
    clients (tests use it to prove that controllers ride it out)."""
    home = home.resolve()
    state = ClusterState.load(home)
    if state is None:
        raise ClusterError(f"no cluster in {home}: run `leoflow dev up` first")
    layout = Layout(home)
    stop(layout, "kube-apiserver")
    try:
        _start_apiserver(layout, ensure_binaries(), state, Pki(home / "pki"))
    except ProcessError as err:
        raise ClusterError(str(err)) from err
    return state


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int | None


def status(home: Path) -> tuple[ClusterState | None, list[ComponentStatus]]:
    home = home.resolve()
    layout = Layout(home)
    state = ClusterState.load(home)
    components = [ComponentStatus(name, pid_of(layout, name)) for name in CONTROL_PLANE]
    if state is not None and state.real_node:
        components += [ComponentStatus(name, pid) for name, pid in real_node_pids(home).items()]
    return state, components

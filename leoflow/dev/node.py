"""The dev cluster's real node: containerd + a kubelet of the cluster's version, running real pods.

KWOK nodes only pretend; this node runs containers for real (runc, cgroup v1 with the cgroupfs
driver, locally built images), so the agent, the webhook and failure handling can be proven on
pods that truly run. Everything it creates lives under ``<home>/node`` and is removed again by
:func:`stop_real_node`: processes, containers, sandboxes, network namespaces, mounts, cgroups and
the pod bridge. Images stay in containerd's content store, so the next start is warm.

The kubelet serves on 127.0.0.1 only, with a serving certificate for 127.0.0.1 signed by the
cluster CA and client-certificate authentication against that CA, so ``kubectl logs`` works through
the apiserver's ``--kubelet-client-certificate``.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import grpc
import yaml
from cryptography import x509

from leoflow.certs.authority import issue_leaf
from leoflow.dev import images
from leoflow.dev.containerd import ContainerdError, NodePaths, delete_bridge, ensure_bridge, write_config
from leoflow.dev.pki import load_pair, write_pair
from leoflow.dev.processes import Layout, free_port, pid_of, start, stop

log = logging.getLogger(__name__)

NODE_TYPE_LABEL = "leoflow.io/node-type"
CTR = "ctr"
CONTAINERD = "containerd"
_START_TIMEOUT = 90.0
# The kubelet listens on unix sockets under its root dir (pod-resources/<random>, device-plugins);
# Linux caps a socket path at 107 bytes.
_MAX_KUBELET_ROOT = 80
_CERT_VALIDITY = datetime.timedelta(days=365)
# Lines worth showing when a daemon fails: klog errors/fatals and logrus error levels.
_ERROR_LINE = re.compile(
    r"^[EF]\d{4} |level=(error|fatal)|^Error: |^containerd: |failed to run Kubelet", re.IGNORECASE
)


class NodeError(RuntimeError):
    """The real node failed to start or stop; the message carries the daemons' error lines."""


@dataclass(frozen=True)
class NodeEnvironment:
    """What the control plane hands to the real node (see leoflow/dev/cluster.py)."""

    home: Path  # cluster instance dir; node state goes under home / "node"
    bin_dir: Path  # has kubelet, kubectl
    kubeconfig: Path  # admin kubeconfig
    apiserver_url: str  # https://127.0.0.1:PORT
    ca_cert: Path
    ca_key: Path
    node_name: str
    log_dir: Path


@dataclass(frozen=True)
class _NodeLayout(Layout):
    """Pid files under ``<home>/node/run``, logs where the cluster keeps all its logs."""

    logs: Path

    @property
    def log_dir(self) -> Path:
        return self.logs


def _layout(home: Path, log_dir: Path | None = None) -> _NodeLayout:
    return _NodeLayout(home=home / "node", logs=log_dir or home / "logs")


# --- certificates -------------------------------------------------------------------------------


def _issue(
    env: NodeEnvironment,
    cert_path: Path,
    key_path: Path,
    *,
    common_name: str,
    organizations: tuple[str, ...] = (),
    dns_names: tuple[str, ...] = (),
    ip_addresses: tuple[str, ...] = (),
    server: bool,
) -> None:
    try:
        ca = load_pair(env.ca_cert, env.ca_key)
        pair = issue_leaf(
            ca,
            common_name=common_name,
            organizations=organizations,
            dns_names=dns_names,
            ip_addresses=ip_addresses,
            server=server,
            client=not server,
            now=datetime.datetime.now(datetime.UTC),
            validity=_CERT_VALIDITY,
        )
    except ValueError as err:
        raise NodeError(f"{env.ca_key}: cannot sign the kubelet's certificates: {err}") from err
    write_pair(pair, cert_path, key_path)


def _signed_by(cert_path: Path, ca_cert: Path) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        ca = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    except (FileNotFoundError, ValueError):
        return False
    return cert.issuer == ca.subject and cert.not_valid_after_utc > datetime.datetime.now(datetime.UTC)


def _ensure_certs(env: NodeEnvironment, paths: NodePaths) -> None:
    """Kubelet client (system:node:NAME in system:nodes) and serving (127.0.0.1) certificates."""
    paths.pki.mkdir(parents=True, exist_ok=True)
    client = paths.pki / "kubelet-client.crt"
    if not _signed_by(client, env.ca_cert):
        _issue(
            env,
            client,
            paths.pki / "kubelet-client.key",
            common_name=f"system:node:{env.node_name}",
            organizations=("system:nodes",),
            server=False,
        )
    serving = paths.pki / "kubelet-serving.crt"
    if not _signed_by(serving, env.ca_cert):
        _issue(
            env,
            serving,
            paths.pki / "kubelet-serving.key",
            common_name=env.node_name,
            dns_names=(env.node_name, "localhost"),
            ip_addresses=("127.0.0.1", paths.node_ip),
            server=True,
        )


# --- kubelet configuration ----------------------------------------------------------------------


def kubelet_config(env: NodeEnvironment, paths: NodePaths, port: int, healthz_port: int) -> dict[str, object]:
    """The KubeletConfiguration of the real node (cgroup v1, cgroupfs, loopback only, no eviction)."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": paths.node_ip,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "tlsCertFile": str(paths.pki / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(paths.pki / "kubelet-serving.key"),
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(env.ca_cert)},
        },
        # Only holders of a CA-signed client certificate get past authentication; in the dev
        # cluster those are the apiserver and the admin, so no SubjectAccessReview round trip.
        "authorization": {"mode": "AlwaysAllow"},
        "containerRuntimeEndpoint": f"unix://{paths.socket}",
        "cgroupDriver": "cgroupfs",
        "cgroupsPerQOS": True,
        "cgroupRoot": paths.cgroup_root,
        # This host has cgroup v1 hierarchies; Kubernetes 1.35 turns this default to true.
        "failCgroupV1": False,
        "failSwapOn": False,
        "resolvConf": str(paths.root / "resolv.conf"),
        "staticPodPath": "",
        "podLogsDir": str(paths.pod_logs),
        "evictionHard": {
            "memory.available": "1Mi",
            "nodefs.available": "0%",
            "nodefs.inodesFree": "0%",
            "imagefs.available": "0%",
            "imagefs.inodesFree": "0%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "registerNode": True,
        "protectKernelDefaults": False,
        # Leave the host's iptables alone: nothing here needs the kubelet's canary/firewall chains.
        "makeIPTablesUtilChains": False,
        "localStorageCapacityIsolation": True,
        "nodeStatusUpdateFrequency": "4s",
        "nodeStatusReportFrequency": "10s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "20s",
        "runtimeRequestTimeout": "2m",
        "shutdownGracePeriod": "0s",
        "maxPods": 110,
    }


def _node_kubeconfig(env: NodeEnvironment, paths: NodePaths) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "leoflow-dev",
                "cluster": {"server": env.apiserver_url, "certificate-authority": str(env.ca_cert)},
            }
        ],
        "users": [
            {
                "name": f"system:node:{env.node_name}",
                "user": {
                    "client-certificate": str(paths.pki / "kubelet-client.crt"),
                    "client-key": str(paths.pki / "kubelet-client.key"),
                },
            }
        ],
        "contexts": [
            {"name": "node", "context": {"cluster": "leoflow-dev", "user": f"system:node:{env.node_name}"}}
        ],
        "current-context": "node",
    }


# --- lifecycle ----------------------------------------------------------------------------------


def _error_lines(layout: _NodeLayout, name: str, limit: int = 15) -> str:
    try:
        lines = layout.log_file(name).read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"({name}: no log)"
    last_start = max((i for i, line in enumerate(lines) if line.startswith("==== ")), default=0)
    lines = lines[last_start:]
    errors = [line for line in lines if _ERROR_LINE.search(line)]
    shown = (errors or lines)[-limit:]
    return f"{name} ({layout.log_file(name)}):\n  " + "\n  ".join(shown)


def _ctr(paths: NodePaths, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CTR, "--address", str(paths.socket), "--namespace", images.CONTAINERD_NAMESPACE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _start_containerd(env: NodeEnvironment, layout: _NodeLayout, paths: NodePaths) -> None:
    if shutil.which(CONTAINERD) is None or shutil.which("runc") is None:
        raise NodeError("containerd/runc not installed: run hack/apt-packages.sh")
    write_config(paths, images.PAUSE_IMAGE)
    paths.socket_dir.mkdir(parents=True, exist_ok=True)
    start(layout, "containerd", [CONTAINERD, "--config", str(paths.containerd_config)])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if pid_of(layout, "containerd") is None:
            raise NodeError("containerd exited during start-up\n" + _error_lines(layout, "containerd"))
        # ctr answers before the CRI plugin has loaded its state; a kubelet started then fails
        # with "server is not initialized yet" (seen on a restart over an existing state dir).
        if (
            paths.socket.exists()
            and _ctr(paths, "version", timeout=5).returncode == 0
            and cri_answers(paths.socket)
        ):
            return
        time.sleep(0.1)
    raise NodeError(
        "containerd did not answer on its socket (ctr and CRI) within 30s\n"
        + _error_lines(layout, "containerd")
    )


def cri_answers(socket: Path, timeout: float = 2.0) -> bool:
    """Whether containerd's CRI service answers ``RuntimeService/Version``, as the kubelet's
    first call does. An empty request is a valid ``VersionRequest``, so no CRI stubs are needed."""
    with grpc.insecure_channel(f"unix://{socket}") as channel:
        version = channel.unary_unary(
            "/runtime.v1.RuntimeService/Version", request_serializer=None, response_deserializer=None
        )
        try:
            version(b"", timeout=timeout)
        except grpc.RpcError as error:
            log.debug("CRI not answering yet", extra={"socket": str(socket), "error": str(error)})
            return False
    return True


def ensure_base_images(env: NodeEnvironment) -> list[images.BuiltImage]:
    """Builds (cached) and imports the base and sandbox images into this node's containerd."""
    paths = NodePaths(env.home)
    built = [images.build_image(images.base_spec()), images.build_image(images.pause_spec())]
    for image in built:
        images.import_image(image, paths.socket)
    return built


def _create_cgroup_root(paths: NodePaths) -> None:
    """The kubelet refuses a cgroupRoot missing from any v1 hierarchy; cpuset needs its cpus/mems
    copied from the parent before any process can join."""
    base = Path("/sys/fs/cgroup")
    for hierarchy in sorted(base.iterdir()):
        if hierarchy.name == "unified" or not (hierarchy / "cgroup.procs").exists():
            continue
        top = hierarchy / paths.cgroup_root.lstrip("/")
        top.mkdir(exist_ok=True)
        for name in ("cpuset.cpus", "cpuset.mems"):
            if (top / name).exists() and not (top / name).read_text().strip():
                (top / name).write_text((hierarchy / name).read_text())


def load_image(home: Path, spec: images.ImageSpec) -> images.BuiltImage:
    """Builds ``spec`` (cached) and imports it into the running real node of ``home``."""
    socket = NodePaths(home).socket
    if not socket.exists():
        raise NodeError(f"no real node running in {home} (no {socket})")
    built = images.build_image(spec)
    images.import_image(built, socket)
    return built


def _start_kubelet(env: NodeEnvironment, layout: _NodeLayout, paths: NodePaths) -> int:
    """Starts the kubelet; returns its healthz port."""
    kubelet = env.bin_dir / "kubelet"
    if not kubelet.is_file():
        raise NodeError(f"{kubelet} not found: build the Kubernetes binaries first")
    _ensure_certs(env, paths)
    _create_cgroup_root(paths)
    try:
        ensure_bridge(paths)
    except ContainerdError as err:
        raise NodeError(str(err)) from err
    paths.kubelet_root.mkdir(parents=True, exist_ok=True)
    paths.pod_logs.mkdir(parents=True, exist_ok=True)
    # Pods get no upstream resolver: nothing they look up can leave the machine.
    (paths.root / "resolv.conf").write_text("nameserver 127.0.0.1\noptions ndots:1\n")
    config_path = paths.root / "kubelet-config.yaml"
    healthz_port = free_port()
    config_path.write_text(yaml.safe_dump(kubelet_config(env, paths, free_port(), healthz_port)))
    kubeconfig = paths.root / "kubelet.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(_node_kubeconfig(env, paths)))
    start(
        layout,
        "kubelet",
        [
            str(kubelet),
            f"--config={config_path}",
            f"--kubeconfig={kubeconfig}",
            f"--root-dir={paths.kubelet_root}",
            f"--cert-dir={paths.pki}",
            f"--hostname-override={env.node_name}",
            f"--node-ip={paths.node_ip}",
            f"--node-labels={NODE_TYPE_LABEL}=real",
            "--v=1",
        ],
    )
    return healthz_port


def _kubelet_healthy(healthz_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{healthz_port}/healthz", timeout=2) as response:
            return bool(response.status == 200 and response.read().strip() == b"ok")
    except OSError:
        return False


def _node_ready(env: NodeEnvironment, since: float = 0.0) -> bool:
    """Ready, and (with ``since``) reported by a kubelet heartbeat at or after that wall time."""
    result = subprocess.run(
        [
            str(env.bin_dir / "kubectl"),
            f"--kubeconfig={env.kubeconfig}",
            "get",
            "node",
            env.node_name,
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if result.returncode != 0:
        return False
    node = json.loads(result.stdout)
    conditions = node.get("status", {}).get("conditions", [])
    for condition in conditions:
        if condition["type"] == "Ready" and condition["status"] == "True":
            beat = datetime.datetime.fromisoformat(condition["lastHeartbeatTime"].replace("Z", "+00:00"))
            return beat.timestamp() >= int(since)
    return False


def start_real_node(env: NodeEnvironment) -> None:
    """Starts containerd and the kubelet for ``env.home`` and returns once the Node is Ready.

    Idempotent: a running, Ready node is left as it is; a half-running one is stopped and started
    again. Raises :class:`NodeError` with the daemons' error lines on failure.
    """
    paths = NodePaths(env.home)
    if len(str(paths.kubelet_root)) > _MAX_KUBELET_ROOT:
        raise NodeError(
            f"cluster home {env.home} is too deep for the kubelet's unix sockets: {paths.kubelet_root} "
            f"is {len(str(paths.kubelet_root))} characters, at most {_MAX_KUBELET_ROOT} work; "
            "use a shorter home"
        )
    layout = _layout(env.home, env.log_dir)
    running = pid_of(layout, "containerd") is not None and pid_of(layout, "kubelet") is not None
    if running and _node_ready(env):
        return
    stop_real_node(env.home)
    try:
        _start(env, paths, layout)
    except NodeError:
        # Leave nothing half-running; the logs stay for whoever reads the error.
        stop_real_node(env.home)
        raise


def _start(env: NodeEnvironment, paths: NodePaths, layout: _NodeLayout) -> None:
    started = time.monotonic()
    started_wall = time.time()
    paths.root.mkdir(parents=True, exist_ok=True)
    _start_containerd(env, layout, paths)
    try:
        ensure_base_images(env)
    except images.ImageError as err:
        raise NodeError(f"{err}\n{_error_lines(layout, 'containerd')}") from err
    healthz_port = _start_kubelet(env, layout, paths)
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        for name in ("containerd", "kubelet"):
            if pid_of(layout, name) is None:
                raise NodeError(f"{name} exited during start-up\n{_error_lines(layout, name)}")
        if _kubelet_healthy(healthz_port) and _node_ready(env, since=started_wall):
            log.info(
                "real node ready",
                extra={"node": env.node_name, "seconds": round(time.monotonic() - started, 1)},
            )
            return
        time.sleep(0.25)
    raise NodeError(
        f"node {env.node_name} not Ready after {_START_TIMEOUT:.0f}s\n"
        f"{_error_lines(layout, 'kubelet')}\n{_error_lines(layout, 'containerd')}"
    )


def _remove_workloads(paths: NodePaths) -> None:
    """Kills and deletes every container and sandbox of this containerd (k8s.io namespace)."""
    listed = _ctr(paths, "containers", "list", "--quiet")
    if listed.returncode != 0:
        log.warning("cannot list containers", extra={"error": listed.stderr.strip()})
        return
    for container in listed.stdout.split():
        _ctr(paths, "tasks", "delete", "--force", container)
        _ctr(paths, "containers", "delete", container)


def _kill_shims(paths: NodePaths) -> None:
    """Shims daemonize out of containerd's process group; find ours by their -address argument."""
    needle = str(paths.socket).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"containerd-shim-runc-v2") and needle in argv:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(proc.name), signal.SIGKILL)


def _unmount_under(root: Path) -> None:
    prefix = str(root.resolve()) + "/"
    mounts: list[str] = []
    with contextlib.suppress(FileNotFoundError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            mount_point = line.split()[4].replace("\\040", " ")
            if mount_point.startswith(prefix):
                mounts.append(mount_point)
    for mount_point in sorted(set(mounts), key=len, reverse=True):
        result = subprocess.run(
            ["umount", "--lazy", mount_point], capture_output=True, text=True, check=False
        )
        if result.returncode != 0 and "not mounted" not in result.stderr:
            log.warning("umount failed", extra={"mount": mount_point, "error": result.stderr.strip()})


def _remove_cgroups(paths: NodePaths) -> None:
    base = Path("/sys/fs/cgroup")
    if not base.is_dir():
        return
    for hierarchy in base.iterdir():
        top = hierarchy / paths.cgroup_root.lstrip("/")
        if not top.is_dir():
            continue
        for directory in sorted(
            (d for d in top.rglob("*") if d.is_dir()), key=lambda d: len(d.parts), reverse=True
        ):
            with contextlib.suppress(OSError):
                directory.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


def stop_real_node(home: Path) -> None:
    """Stops the kubelet and containerd of ``home`` and removes their containers, sandboxes,
    network namespaces, mounts, cgroups and pod bridge. Leaves no process behind; keeps images."""
    paths = NodePaths(home)
    layout = _layout(home)
    stop(layout, "kubelet")
    if pid_of(layout, "containerd") is not None:
        _remove_workloads(paths)
    stop(layout, "containerd")
    _kill_shims(paths)
    _unmount_under(paths.root)
    _remove_cgroups(paths)
    delete_bridge(paths)
    shutil.rmtree(paths.cni_data_dir, ignore_errors=True)
    shutil.rmtree(paths.containerd_state, ignore_errors=True)
    shutil.rmtree(paths.socket_dir, ignore_errors=True)


def real_node_pids(home: Path) -> dict[str, int | None]:
    """The running pid of containerd and the kubelet of ``home`` (None when stopped), for status."""
    layout = _layout(home)
    return {name: pid_of(layout, name) for name in ("containerd", "kubelet")}

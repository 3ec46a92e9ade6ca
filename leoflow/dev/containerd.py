"""containerd for the real node: a private instance per cluster home, plus its in-machine pod network.

Each dev cluster runs its own containerd (Debian's package, never the system service) with root,
state and socket under ``<home>/node/containerd``, so it clashes with nothing else on the machine
and ``dev down`` can remove everything it created. The CRI plugin is configured for this host:
runc with the cgroupfs driver (cgroup v1, no systemd), the locally built sandbox image, overlayfs,
and the Debian CNI plugins in ``/usr/lib/cni``.

Pod network: a Linux bridge private to this instance with ``ipMasq: false`` and no default route
in the pods, so a pod can talk to other pods and to the host's address on the bridge, and nothing
it sends can leave the machine (see docs/dev-cluster-node.md).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

CNI_BIN_DIR = Path("/usr/lib/cni")
RUNC = "/usr/sbin/runc"
# Every registry host resolves to this closed port, so a pull of an image that was not imported
# fails at once with "connection refused" instead of waiting on DNS or a network timeout.
UNREACHABLE_REGISTRY = "http://127.0.0.1:9"


class ContainerdError(RuntimeError):
    """The node's containerd or its network could not be set up; the message says which step."""


@dataclass(frozen=True)
class NodePaths:
    """Where the real node of one cluster home keeps its state."""

    home: Path

    @property
    def root(self) -> Path:
        return self.home / "node"

    @property
    def containerd_root(self) -> Path:
        return self.root / "containerd" / "root"

    @property
    def containerd_state(self) -> Path:
        return self.root / "containerd" / "state"

    @property
    def containerd_config(self) -> Path:
        return self.root / "containerd" / "config.toml"

    @property
    def registry_hosts(self) -> Path:
        return self.root / "containerd" / "certs.d"

    @property
    def socket_dir(self) -> Path:
        """Short on purpose: unix socket paths are limited to ~104 bytes and homes can be deep."""
        return Path("/run") / f"leoflow-{self.instance_id}"

    @property
    def socket(self) -> Path:
        return self.socket_dir / "containerd.sock"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def cni_data_dir(self) -> Path:
        return self.root / "cni" / "ipam"

    @property
    def kubelet_root(self) -> Path:
        return self.root / "kubelet"

    @property
    def pod_logs(self) -> Path:
        return self.root / "pod-logs"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def imported_images(self) -> Path:
        """Tag -> image id of what was imported into this containerd, to skip re-imports."""
        return self.root / "containerd" / "imported-images.json"

    def pid_file(self, name: str) -> Path:
        return self.root / f"{name}.pid"

    @property
    def instance_id(self) -> str:
        """A short stable id of this home: names the bridge, cgroup root and subnet."""
        return hashlib.sha256(str(self.home.resolve()).encode()).hexdigest()[:8]

    @property
    def bridge(self) -> str:
        return f"lf{self.instance_id}"  # 10 characters, under the 15-character interface limit

    @property
    def bridge_mac(self) -> str:
        """The bridge's own MAC, fixed (locally administered, from the instance id).

        A bridge without one takes the lowest MAC of its ports and changes it whenever that port
        goes: a pod that resolved the host's address before then keeps sending to a MAC no port
        has until its ARP entry expires (tens of seconds). An agent starting next to a pod being
        torn down lost the controller that way for its whole --finish-timeout."""
        digits = self.instance_id[:6]
        return ":".join(["02", "6c", "66", digits[0:2], digits[2:4], digits[4:6]])

    @property
    def cgroup_root(self) -> str:
        return f"/leoflow-{self.instance_id}"

    @property
    def pod_subnet(self) -> str:
        """A /24 in 10.244.0.0/16 picked from the instance id, so two instances rarely overlap."""
        return f"10.244.{self._subnet_octet}.0/24"

    @property
    def node_ip(self) -> str:
        """The host's address on the pod bridge: the node's InternalIP, where the kubelet listens."""
        return f"10.244.{self._subnet_octet}.1"

    @property
    def _subnet_octet(self) -> int:
        return int(self.instance_id, 16) % 254 + 1


def _toml_str(value: str | Path) -> str:
    return json.dumps(str(value))


def containerd_config(paths: NodePaths, sandbox_image: str) -> str:
    """The TOML configuration (version 2, containerd 1.6) of this node's containerd."""
    cri = '[plugins."io.containerd.grpc.v1.cri"]'
    runc = '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]'
    return f"""version = 2
root = {_toml_str(paths.containerd_root)}
state = {_toml_str(paths.containerd_state)}
disabled_plugins = [
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = {_toml_str(paths.socket)}

[ttrpc]
  address = {_toml_str(str(paths.socket) + ".ttrpc")}

[metrics]
  address = ""

{cri}
  sandbox_image = {_toml_str(sandbox_image)}
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  # This host drops CAP_SYS_RESOURCE, so no process may lower its oom_score_adj (the sandbox
  # asks for -998, guaranteed pods for -997): clamp requests to containerd's own value instead.
  restrict_oom_score_adj = true
  max_concurrent_downloads = 3
  netns_mounts_under_state_dir = true

{cri[:-1]}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
  discard_unpacked_layers = false

{runc}
  runtime_type = "io.containerd.runc.v2"

{runc[:-1]}.options]
  BinaryName = {_toml_str(RUNC)}
  Root = {_toml_str(paths.containerd_state / "runc")}
  SystemdCgroup = false

{cri[:-1]}.cni]
  bin_dir = {_toml_str(CNI_BIN_DIR)}
  conf_dir = {_toml_str(paths.cni_conf_dir)}
  max_conf_num = 1

{cri[:-1]}.registry]
  config_path = {_toml_str(paths.registry_hosts)}
"""


def cni_config(paths: NodePaths) -> dict[str, object]:
    """bridge + host-local with no masquerade and no default route: pod traffic stays in the machine."""
    subnet = paths.pod_subnet
    return {
        "cniVersion": "0.4.0",
        "name": f"leoflow-{paths.instance_id}",
        "plugins": [
            {
                "type": "bridge",
                "bridge": paths.bridge,
                "isGateway": True,
                "isDefaultGateway": False,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(paths.cni_data_dir),
                    "ranges": [[{"subnet": subnet}]],
                },
            },
            {"type": "loopback"},
        ],
    }


def ensure_bridge(paths: NodePaths) -> None:
    """Creates the pod bridge with the node's address and a fixed MAC before the kubelet starts.

    The kubelet rejects a loopback node IP, and the apiserver reaches kubelets by InternalIP; the
    bridge's own address is local to this machine and routes nowhere else, so it serves as both.
    The CNI bridge plugin later finds the bridge with its gateway address already in place.
    """
    taken = subprocess.run(
        ["ip", "-o", "-4", "addr", "show", "to", paths.pod_subnet],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if len(taken) > 1 and taken[1] != paths.bridge:
        raise ContainerdError(
            f"pod subnet {paths.pod_subnet} of this cluster home is already used by interface {taken[1]} "
            "(another dev cluster?): stop it or use another --home"
        )
    link = Path(f"/sys/class/net/{paths.bridge}")
    commands = [] if link.exists() else [["ip", "link", "add", paths.bridge, "type", "bridge"]]
    commands += [
        # Set explicitly, the kernel never replaces it with a port's MAC (see NodePaths.bridge_mac).
        ["ip", "link", "set", paths.bridge, "address", paths.bridge_mac],
        ["ip", "addr", "replace", f"{paths.node_ip}/24", "dev", paths.bridge],
        ["ip", "link", "set", paths.bridge, "up"],
    ]
    for argv in commands:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ContainerdError(f"{' '.join(argv)} failed: {result.stderr.strip()}")


def delete_bridge(paths: NodePaths) -> None:
    if Path(f"/sys/class/net/{paths.bridge}").exists():
        subprocess.run(["ip", "link", "delete", paths.bridge], capture_output=True, check=False)


def registry_hosts_toml() -> str:
    return (
        f'server = "{UNREACHABLE_REGISTRY}"\n\n'
        f'[host."{UNREACHABLE_REGISTRY}"]\n  capabilities = ["pull", "resolve"]\n'
    )


REGISTRY_HOSTS = ("_default", "docker.io", "leoflow.dev", "registry.k8s.io", "ghcr.io", "quay.io")


def write_config(paths: NodePaths, sandbox_image: str) -> None:
    """Writes containerd's config, the CNI network and the registry overrides (idempotent)."""
    for directory in (
        paths.containerd_root,
        paths.containerd_state,
        paths.cni_conf_dir,
        paths.cni_data_dir,
    ):
        directory.mkdir(parents=True, exist_ok=True)
    paths.containerd_config.write_text(containerd_config(paths, sandbox_image))
    for stale in paths.cni_conf_dir.iterdir():
        stale.unlink()
    (paths.cni_conf_dir / "10-leoflow.conflist").write_text(json.dumps(cni_config(paths), indent=2))
    shutil.rmtree(paths.registry_hosts, ignore_errors=True)
    for host in REGISTRY_HOSTS:
        host_dir = paths.registry_hosts / host
        host_dir.mkdir(parents=True)
        (host_dir / "hosts.toml").write_text(registry_hosts_toml())

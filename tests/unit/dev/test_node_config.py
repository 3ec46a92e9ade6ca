"""The real node's generated configuration: private to its home, loopback/bridge only, no way out."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from leoflow.dev import images
from leoflow.dev.containerd import NodePaths, cni_config, containerd_config, write_config
from leoflow.dev.node import NodeEnvironment, NodeError, kubelet_config, start_real_node


def _env(home: Path) -> NodeEnvironment:
    return NodeEnvironment(
        home=home,
        bin_dir=home / "bin",
        kubeconfig=home / "kubeconfig",
        apiserver_url="https://127.0.0.1:6443",
        ca_cert=home / "pki" / "ca.crt",
        ca_key=home / "pki" / "ca.key",
        node_name="leoflow-node",
        log_dir=home / "logs",
    )


def test_containerd_state_and_socket_live_under_the_home(tmp_path: Path) -> None:
    paths = NodePaths(tmp_path)
    config = tomllib.loads(containerd_config(paths, images.PAUSE_IMAGE))
    assert config["root"] == str(tmp_path / "node" / "containerd" / "root")
    assert config["state"] == str(tmp_path / "node" / "containerd" / "state")
    assert config["grpc"]["address"] == str(paths.socket)
    assert len(str(paths.socket) + ".ttrpc") < 100
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"] == "leoflow.dev/pause:1"
    assert cri["restrict_oom_score_adj"] is True
    assert cri["cni"]["bin_dir"] == "/usr/lib/cni"
    runc = cri["containerd"]["runtimes"]["runc"]
    assert runc["options"]["SystemdCgroup"] is False
    assert runc["options"]["Root"].startswith(str(tmp_path))


def test_pod_network_never_masquerades_and_has_no_default_route(tmp_path: Path) -> None:
    paths = NodePaths(tmp_path)
    bridge: dict[str, Any] = cni_config(paths)["plugins"][0]  # type: ignore[index]
    assert bridge["type"] == "bridge"
    assert bridge["ipMasq"] is False
    assert bridge["isDefaultGateway"] is False
    assert "routes" not in bridge["ipam"]
    assert bridge["ipam"]["ranges"] == [[{"subnet": paths.pod_subnet}]]
    assert bridge["ipam"]["dataDir"].startswith(str(tmp_path))
    assert paths.node_ip.rsplit(".", 1)[0] == paths.pod_subnet.rsplit(".", 1)[0]


def test_two_homes_get_different_bridges_and_cgroup_roots(tmp_path: Path) -> None:
    first, second = NodePaths(tmp_path / "a"), NodePaths(tmp_path / "b")
    assert first.bridge != second.bridge
    assert first.cgroup_root != second.cgroup_root
    assert len(first.bridge) <= 15


def test_the_pod_bridge_mac_is_a_stable_locally_administered_unicast_per_home(tmp_path: Path) -> None:
    first, second = NodePaths(tmp_path / "a"), NodePaths(tmp_path / "b")
    assert first.bridge_mac == NodePaths(tmp_path / "a").bridge_mac
    assert first.bridge_mac != second.bridge_mac
    octets = [int(octet, 16) for octet in first.bridge_mac.split(":")]
    assert len(octets) == 6
    assert octets[0] & 0b10 and not octets[0] & 0b01  # locally administered, unicast


def test_every_registry_points_at_a_closed_local_port(tmp_path: Path) -> None:
    paths = NodePaths(tmp_path)
    write_config(paths, images.PAUSE_IMAGE)
    for host in ("_default", "docker.io", "leoflow.dev"):
        hosts = tomllib.loads((paths.registry_hosts / host / "hosts.toml").read_text())
        assert hosts["server"] == "http://127.0.0.1:9"


def test_kubelet_serves_on_the_node_address_with_ca_auth_and_never_evicts(tmp_path: Path) -> None:
    env = _env(tmp_path)
    paths = NodePaths(tmp_path)
    config = kubelet_config(env, paths, port=41000, healthz_port=41001)
    assert config["address"] == paths.node_ip
    assert config["healthzBindAddress"] == "127.0.0.1"
    assert (config["port"], config["healthzPort"], config["readOnlyPort"]) == (41000, 41001, 0)
    assert config["cgroupDriver"] == "cgroupfs"
    assert config["cgroupRoot"] == paths.cgroup_root
    assert config["failCgroupV1"] is False
    assert config["failSwapOn"] is False
    assert config["containerRuntimeEndpoint"] == f"unix://{paths.socket}"
    assert config["authentication"] == {
        "anonymous": {"enabled": False},
        "webhook": {"enabled": False},
        "x509": {"clientCAFile": str(env.ca_cert)},
    }
    assert config["imageGCHighThresholdPercent"] == 100
    assert config["serializeImagePulls"] is False
    assert config["staticPodPath"] == ""
    eviction: dict[str, str] = config["evictionHard"]  # type: ignore[assignment]
    assert all(v in ("0%", "1Mi") for v in eviction.values())


def test_a_home_too_deep_for_unix_sockets_is_refused_before_anything_starts(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 80)
    with pytest.raises(NodeError, match="too deep for the kubelet's unix sockets"):
        start_real_node(_env(deep))
    assert not deep.exists()

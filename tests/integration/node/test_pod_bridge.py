"""The real node's pod bridge keeps its MAC while pods come and go.

A Linux bridge without an address of its own takes the lowest MAC of its ports and changes it
when that port goes. Pods resolve the host's address (the node IP, where the controller's agent
server listens in the dev setups) to the bridge's MAC once; after a change they send to a MAC no
port has until their ARP entry expires, tens of seconds. In bench/realnode that was an agent
waiting out its whole --finish-timeout for the controller's answer.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from leoflow.dev.containerd import NodePaths, delete_bridge, ensure_bridge

pytestmark = pytest.mark.node

LOWEST_MAC = "02:00:00:00:00:01"


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, text=True)


def _address(interface: str) -> str:
    return Path(f"/sys/class/net/{interface}/address").read_text().strip()


@pytest.fixture
def bridge() -> Iterator[NodePaths]:
    # A home whose subnet no running dev cluster uses (ensure_bridge refuses a taken one).
    with tempfile.TemporaryDirectory(prefix="lf-bridge-", dir="/tmp") as tmp:
        for attempt in range(20):
            paths = NodePaths(Path(tmp) / str(attempt))
            taken = subprocess.run(
                ["ip", "-o", "-4", "addr", "show", "to", paths.pod_subnet],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            if not taken and not Path(f"/sys/class/net/{paths.bridge}").exists():
                break
        ensure_bridge(paths)
        try:
            yield paths
        finally:
            delete_bridge(paths)


def test_the_bridge_keeps_its_mac_when_a_port_with_a_lower_one_comes_and_goes(bridge: NodePaths) -> None:
    port, peer = f"{bridge.bridge}p", f"{bridge.bridge}q"
    _ip("link", "add", port, "type", "veth", "peer", "name", peer)
    try:
        _ip("link", "set", port, "address", LOWEST_MAC)
        _ip("link", "set", port, "master", bridge.bridge, "up")
        assert _address(bridge.bridge) == bridge.bridge_mac
    finally:
        _ip("link", "delete", port)
    assert _address(bridge.bridge) == bridge.bridge_mac


def test_a_bridge_left_by_an_earlier_start_gets_the_fixed_mac_too(bridge: NodePaths) -> None:
    _ip("link", "set", bridge.bridge, "address", "02:00:00:00:00:02")

    ensure_bridge(bridge)

    assert _address(bridge.bridge) == bridge.bridge_mac

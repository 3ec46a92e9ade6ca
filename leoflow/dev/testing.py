"""What the pytest fixtures use to run tests against the dev cluster.

Kept in the package (not in conftest) so the benchmarks and the demo start clusters the same way
the tests do.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from leoflow.dev import cluster
from leoflow.dev.processes import Layout, log_tail


@dataclass
class ClusterHandle:
    """A running dev cluster as a test sees it."""

    state: cluster.ClusterState
    keep_running: bool

    @property
    def home(self) -> Path:
        return self.state.home

    @property
    def kubeconfig(self) -> Path:
        return self.state.kubeconfig

    @property
    def has_real_node(self) -> bool:
        return self.state.real_node

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return cluster.kubectl(self.state, *args, input=input, check=check, timeout=timeout)

    def create_namespace(self, name: str) -> None:
        """Creates ``name`` and waits for its default ServiceAccount, without which pods are refused."""
        self.kubectl("create", "namespace", name)
        deadline = time.monotonic() + 30
        while self.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise cluster.ClusterError(f"namespace {name}: default ServiceAccount never appeared")
            time.sleep(0.1)

    def close(self) -> None:
        if not self.keep_running:
            cluster.down(self.home)


def start_test_cluster(home: Path, *, keep_running: bool) -> ClusterHandle:
    state = cluster.up(cluster.UpOptions(home=home, kwok_nodes=3, real_node=True))
    return ClusterHandle(state=state, keep_running=keep_running)


def component_log_tails(home: Path, lines: int = 30) -> dict[str, str]:
    layout = Layout(home)
    if not layout.log_dir.exists():
        return {}
    return {
        path.stem: tail
        for path in sorted(layout.log_dir.glob("*.log"))
        if (tail := log_tail(layout, path.stem, lines))
    }

"""The real node for these tests: the cluster's own when it has one, otherwise started here once.

Starting it here keeps the real-node tests runnable against a cluster fixture that was brought up
without a kubelet; it is stopped again at the end of the session.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from leoflow.dev.binaries import ensure_binaries
from leoflow.dev.node import NodeEnvironment, start_real_node, stop_real_node
from leoflow.dev.pki import Pki
from leoflow.dev.processes import Layout
from leoflow.dev.testing import ClusterHandle

NODE_NAME = "leoflow-node"


@pytest.fixture(scope="session")
def real_node(cluster: ClusterHandle) -> Iterator[str]:
    if cluster.has_real_node:
        yield NODE_NAME
        return
    pki = Pki(cluster.home / "pki")
    env = NodeEnvironment(
        home=cluster.home,
        bin_dir=ensure_binaries().kubernetes_dir,
        kubeconfig=cluster.kubeconfig,
        apiserver_url=cluster.state.apiserver_url,
        ca_cert=pki.ca_cert,
        ca_key=pki.ca_key,
        node_name=NODE_NAME,
        log_dir=Layout(cluster.home).log_dir,
    )
    start_real_node(env)
    try:
        yield NODE_NAME
    finally:
        stop_real_node(cluster.home)

"""Shared fixtures: one real local cluster per test session, a fresh namespace per test.

Tests that run the real agent take ``agent_binary``. Tests that need the control plane take the
``cluster`` (or ``namespace``/``kube``) fixture; the
first such test starts ``leoflow dev`` in a session home under the pytest temp dir (or reuses the
cluster named by ``LEOFLOW_TEST_HOME``), and the session tears it down at the end. When a test
that used the cluster fails, the tails of the component logs are attached to its report.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from leoflow.dev.cluster import REAL_NODE_NAME
from leoflow.dev.testing import ClusterHandle, component_log_tails, start_test_cluster

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def agent_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real leoflow-agent, built once per session like ``make agent``; never skipped: a missing
    Go toolchain fails loudly, because these tests are the agent's contract."""
    if shutil.which("go") is None:
        pytest.fail(
            "the Go toolchain (go) is not on PATH: it is needed to build leoflow-agent", pytrace=False
        )
    out = tmp_path_factory.mktemp("agent-bin") / "leoflow-agent"
    done = subprocess.run(
        [str(REPO / "hack/build-agent.sh"), str(out), "test"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"building leoflow-agent failed:\n{done.stderr}", pytrace=False)
    return out


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterHandle]:
    reuse = os.environ.get("LEOFLOW_TEST_HOME")
    home = Path(reuse) if reuse else tmp_path_factory.mktemp("leoflow-dev")
    handle = start_test_cluster(home, keep_running=bool(reuse))
    try:
        yield handle
    finally:
        handle.close()


@pytest.fixture(scope="session")
def real_node(cluster: ClusterHandle) -> str:
    """The name of the session cluster's real kubelet + containerd node (pods that must truly run)."""
    assert cluster.has_real_node, "the test cluster is started with its real node"
    return REAL_NODE_NAME


@pytest.fixture
def namespace(cluster: ClusterHandle, request: pytest.FixtureRequest) -> Iterator[str]:
    slug = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")
    name = f"t-{slug}-{uuid.uuid4().hex[:6]}"
    cluster.create_namespace(name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture
async def kube(cluster: ClusterHandle) -> AsyncIterator[object]:
    from kubernetes_asyncio.config import new_client_from_config

    client = await new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        yield client
    finally:
        await client.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    handle = item.funcargs.get("cluster") if hasattr(item, "funcargs") else None
    if report.failed and isinstance(handle, ClusterHandle):
        for name, tail in component_log_tails(handle.home).items():
            report.sections.append((f"component log: {name}", tail))
    return report

"""The README quickstart and docs/kubectl-workflow.md, run as written against the local cluster.

These are the newcomer's path: if a command in them stops working, this fails. The doc's `sh`
blocks are extracted and run in order with bash; the README's quickstart is the `make demo` line
of its "Two commands" block, run literally (with LEOFLOW_DEMO_HOME pointing at this session's
cluster, so `leoflow dev up` inside it reuses the running cluster instead of starting another).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from leoflow.cli import demo
from leoflow.dev.binaries import ensure_binaries
from leoflow.dev.testing import ClusterHandle
from tests.integration.cli.conftest import ROOT

pytestmark = [pytest.mark.cluster, pytest.mark.node]


def sh_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL)


def test_kubectl_workflow_doc_runs_as_written(crds: ClusterHandle, leoflow_running: str) -> None:
    blocks = sh_blocks((ROOT / "docs" / "kubectl-workflow.md").read_text())
    assert len(blocks) >= 6, "the doc lost its runnable blocks"
    kubectl_dir = ensure_binaries()["kubectl"].parent
    env = {
        **os.environ,
        "NS": leoflow_running,
        "KUBECONFIG": str(crds.kubeconfig),
        "PATH": f"{kubectl_dir}{os.pathsep}{os.environ['PATH']}",
    }
    for block in blocks:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, f"block failed:\n{block}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"


def test_readme_quickstart_make_demo_runs_a_dag_to_success(crds: ClusterHandle, agent_binary: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Two commands", 1)[1]
    quickstart = next(block for block in re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL))
    line = next(line for line in quickstart.splitlines() if line.startswith("make demo"))
    command = line.split("#", 1)[0].strip()
    assert command == "make demo"
    env = {**os.environ, "LEOFLOW_DEMO_HOME": str(crds.home)}
    try:
        done = subprocess.run(
            command.split(), cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200, check=False
        )
        assert done.returncode == 0, f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}"
        out = done.stdout
        assert re.search(r"==> run etl-demo-\w+ Succeeded", out)
        validate = next(line for line in out.splitlines() if line.strip().startswith("validate "))
        assert validate.split()[:3] == ["validate", "Succeeded", "2"], "validate fails once, then succeeds"
        assert "(3/3 ok)" in out
        runs = json.loads(crds.kubectl("get", "dagruns", "-n", "leoflow-demo", "-o", "json").stdout)["items"]
        assert any((r.get("status") or {}).get("phase") == "Succeeded" for r in runs)
        configurations = crds.kubectl("get", "mutatingwebhookconfigurations", "-o", "name").stdout
        assert demo.WEBHOOK_CONFIGURATION not in configurations, "the demo removes its webhook when it ends"
    finally:
        crds.kubectl("delete", "namespace", "leoflow-demo", "--wait=false", "--ignore-not-found", check=False)


def test_demo_entry_point_is_the_cli_command() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "leoflow.demo", "--help"], capture_output=True, text=True, check=False
    )
    assert help_text.returncode == 0 and "--stop-cluster" in help_text.stdout

"""The CLI over runs that the real controller drives on the real node: a task that fails makes
`watch` exit 1 and `describe` name the reason; `retry --failed` runs it again as attempt 2;
`cancel` stops a running run."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from leoflow.dev.testing import ClusterHandle
from tests.integration.cli.conftest import Leoflow

pytestmark = [pytest.mark.cluster, pytest.mark.node]

FAILING = """\
dag: breaks
image: leoflow.dev/base:1
tasks:
  first:
    command: [sh, -c, 'echo working']
  second:
    after: [first]
    command: [sh, -c, 'echo "no good" >&2; exit 4']
  third:
    after: [second]
    command: [sh, -c, 'echo never']
"""

SLOW = """\
dag: slow
image: leoflow.dev/base:1
tasks:
  nap:
    command: [sh, -c, 'sleep 120']
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "leoflow.yaml"
    path.write_text(text)
    return path


def trigger(leoflow: Leoflow, dag: str) -> str:
    done = leoflow("trigger", dag)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().split()[-1].removeprefix("dagrun.leoflow.io/")


def test_failed_run_exits_1_describes_its_reason_and_retries_as_attempt_2(
    leoflow: Leoflow, leoflow_running: str, tmp_path: Path
) -> None:
    assert leoflow("apply", str(write(tmp_path, FAILING))).returncode == 0
    run = trigger(leoflow, "breaks")
    watched = leoflow("watch", "run", run, "--timeout", "180", timeout=240)
    assert watched.returncode == 1, watched.stdout + watched.stderr
    assert "second: Failed" in watched.stdout and "third: UpstreamFailed" in watched.stdout
    described = leoflow("describe", "run", run)
    assert described.returncode == 0
    second = next(line for line in described.stdout.splitlines() if line.strip().startswith("second "))
    assert second.split()[:5] == ["second", "Failed", "1", second.split()[3], "UserError"]
    assert "exit code 4" in described.stdout
    assert leoflow("retry", run, "--failed").returncode == 0
    again = leoflow("watch", "run", run, "--timeout", "180", timeout=240)
    assert again.returncode == 1
    described = leoflow("describe", "run", run)
    second = next(line for line in described.stdout.splitlines() if line.strip().startswith("second "))
    assert second.split()[:3] == ["second", "Failed", "2"]


def test_cancel_stops_a_running_run_and_watch_exits_1(
    leoflow: Leoflow, leoflow_running: str, crds: ClusterHandle, tmp_path: Path
) -> None:
    assert leoflow("apply", str(write(tmp_path, SLOW))).returncode == 0
    run = trigger(leoflow, "slow")
    deadline = time.monotonic() + 120
    while "Running" not in leoflow("get", "run", run).stdout:
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.5)
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "leoflow",
            "watch",
            "run",
            run,
            "--timeout",
            "120",
            "-n",
            leoflow_running,
            "--kubeconfig",
            str(crds.kubeconfig),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert leoflow("cancel", run).returncode == 0
        assert watcher.wait(150) == 1
        assert watcher.stdout is not None and f"run {run} Cancelled" in watcher.stdout.read()
    finally:
        watcher.kill()

"""Each `leoflow` command against the local cluster, including its errors and exit codes.

Until a controller runs in these tests, run status is written by the test itself through the
DAGRun status subresource, exactly as the controller writes it: what is under test is the CLI's
rendering and exit codes, not the controller's decisions.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from leoflow.controller.podnames import AttemptKey, attempt_pod_name
from leoflow.dev import images
from leoflow.dev.testing import ClusterHandle
from tests.integration.cli.conftest import DEMO, Leoflow, annotations, create_run, set_status

pytestmark = pytest.mark.cluster

FAILED = {
    "phase": "Failed",
    "definitionHash": None,
    "taskStates": "SSSFU",
    "items": {"2": "SSS"},
    "progress": "5/5",
    "startTime": "2026-11-24T08:00:00Z",
    "completionTime": "2026-11-24T08:01:10Z",
    "message": "task 'validate' failed: UserError: main: exit code 3",
    "tasks": {
        "3": {
            "attempt": 3,
            "reason": "UserError",
            "message": "main: exit code 3",
            "exitCode": 3,
            "startTime": "2026-11-24T08:00:30Z",
            "finishTime": "2026-11-24T08:01:10Z",
        }
    },
}


def applied(leoflow: Leoflow) -> None:
    result = leoflow("apply", str(DEMO))
    assert result.returncode == 0, result.stderr


def test_apply_is_server_side_and_idempotent(leoflow: Leoflow, crds: ClusterHandle, namespace: str) -> None:
    first = leoflow("apply", str(DEMO))
    assert first.returncode == 0, first.stderr
    assert "dag.leoflow.io/etl-demo applied" in first.stdout
    again = leoflow("apply", str(DEMO / "leoflow.yaml"))
    assert again.returncode == 0 and "(generation 1)" in again.stdout
    stored = json.loads(
        crds.kubectl("get", "dag", "etl-demo", "-n", namespace, "-o", "json", "--show-managed-fields").stdout
    )
    managers = [m["manager"] for m in stored["metadata"]["managedFields"]]
    assert managers == ["leoflow"] and stored["metadata"]["managedFields"][0]["operation"] == "Apply"


def test_apply_of_an_invalid_file_exits_2_and_names_the_problem(leoflow: Leoflow, tmp_path: object) -> None:
    result = leoflow("apply", str(DEMO / "missing.yaml"))
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_get_lists_dags_and_runs_as_tables_and_json(
    leoflow: Leoflow, crds: ClusterHandle, namespace: str
) -> None:
    applied(leoflow)
    create_run(crds, namespace, "etl-demo-1", "etl-demo")
    dags = leoflow("get", "dags", "-o", "wide")
    assert dags.returncode == 0
    assert dags.stdout.split("\n")[0].split() == [
        "NAME",
        "SCHEDULE",
        "IMAGE",
        "TASKS",
        "AGE",
        "DEFINITION",
        "LAST",
        "SCHEDULED",
        "ACTIVE",
        "RUNS",
    ]
    assert dags.stdout.split("\n")[1].split()[:4] == ["etl-demo", "-", images.BASE_IMAGE, "5"]
    runs = leoflow("get", "runs", "--dag", "etl-demo", "-o", "json")
    assert [r["metadata"]["name"] for r in json.loads(runs.stdout)["items"]] == ["etl-demo-1"]
    one = leoflow("get", "run", "etl-demo-1")
    assert one.stdout.split("\n")[1].split()[:3] == ["etl-demo-1", "etl-demo", "Pending"]


def test_unknown_dag_and_unknown_run_exit_1_with_one_line(leoflow: Leoflow) -> None:
    for args in (
        ("get", "dag", "nope"),
        ("get", "runs", "--dag", "nope"),
        ("describe", "run", "nope"),
        ("watch", "run", "nope"),
        ("logs", "nope", "extract"),
        ("cancel", "nope"),
        ("retry", "nope"),
    ):
        result = leoflow(*args)
        assert result.returncode == 1, args
        assert result.stderr.count("\n") == 1 and "not found in namespace" in result.stderr, args


def test_describe_a_failed_run_shows_tasks_reasons_graph_and_logs(
    leoflow: Leoflow, crds: ClusterHandle, namespace: str
) -> None:
    applied(leoflow)
    run = create_run(crds, namespace, "etl-demo-f", "etl-demo")
    set_status(crds, namespace, "etl-demo-f", {k: v for k, v in FAILED.items() if v is not None})
    result = leoflow("describe", "run", "etl-demo-f")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Phase:         Failed" in out and "Duration:      1m10s" in out
    pod = attempt_pod_name("etl-demo-f", AttemptKey(run["metadata"]["uid"], "validate", None, 3))
    validate = next(line for line in out.splitlines() if line.strip().startswith("validate "))
    assert validate.split() == ["validate", "Failed", "3", "40s", "UserError", pod, "(deleted)"]
    load = next(line for line in out.splitlines() if line.strip().startswith("load "))
    assert load.split() == ["load", "UpstreamFailed", "-", "-", "-", "-"]
    assert "(3/3 ok)" in out
    assert "  3 [F] validate  <- transform" in out
    assert f"leoflow logs etl-demo-f TASK [--attempt N] [--item I] -n {namespace}" in out


def test_watch_exits_1_for_a_failed_run_and_0_for_a_succeeded_one(
    leoflow: Leoflow, crds: ClusterHandle, namespace: str
) -> None:
    applied(leoflow)
    create_run(crds, namespace, "etl-demo-f", "etl-demo")
    set_status(crds, namespace, "etl-demo-f", {k: v for k, v in FAILED.items() if v is not None})
    failed = leoflow("watch", "run", "etl-demo-f")
    assert failed.returncode == 1
    assert "validate: Failed (attempt 3): UserError main: exit code 3" in failed.stdout
    assert failed.stdout.rstrip().endswith(
        "run etl-demo-f Failed: task 'validate' failed: UserError: main: exit code 3"
    )
    create_run(crds, namespace, "etl-demo-c", "etl-demo")
    set_status(
        crds, namespace, "etl-demo-c", {"phase": "Cancelled", "taskStates": "SSCCC", "progress": "5/5"}
    )
    assert leoflow("watch", "run", "etl-demo-c").returncode == 1
    create_run(crds, namespace, "etl-demo-s", "etl-demo")
    set_status(
        crds, namespace, "etl-demo-s", {"phase": "Succeeded", "taskStates": "SSSSS", "items": {"2": "SSS"}}
    )
    assert leoflow("watch", "run", "etl-demo-s").returncode == 0


def test_watch_follows_a_run_as_its_status_changes(crds: ClusterHandle, namespace: str) -> None:
    assert (
        subprocess.run(
            [
                sys.executable,
                "-m",
                "leoflow",
                "apply",
                str(DEMO),
                "-n",
                namespace,
                "--kubeconfig",
                str(crds.kubeconfig),
            ],
            check=False,
        ).returncode
        == 0
    )
    create_run(crds, namespace, "etl-demo-w", "etl-demo")
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "leoflow",
            "watch",
            "run",
            "etl-demo-w",
            "-n",
            namespace,
            "--kubeconfig",
            str(crds.kubeconfig),
            "--timeout",
            "60",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert watcher.stdout is not None
    try:
        assert "run etl-demo-w: Pending" in watcher.stdout.readline()
        steps = [
            {"phase": "Running", "taskStates": "Sr..."},
            {"phase": "Running", "taskStates": "SSr..", "items": {"2": "rrr"}},
            {
                "phase": "Running",
                "taskStates": "SSSw.",
                "items": {"2": "SSS"},
                "tasks": {"3": {"attempt": 1, "reason": "UserError", "message": "main: exit code 3"}},
            },
            {
                "phase": "Succeeded",
                "taskStates": "SSSSS",
                "items": {"2": "SSS"},
                "tasks": {"3": {"attempt": 2}},
            },
        ]
        expected = [
            "run etl-demo-w: Running",
            "wait-for-data: Succeeded",
            "extract: Running",
            "extract: Succeeded",
            "transform: Running",
            "transform: Succeeded",
            "validate: RetryWait: UserError main: exit code 3",
            "run etl-demo-w: Succeeded",
            "validate: Succeeded (attempt 2)",
            "load: Succeeded",
        ]
        for step in steps:
            set_status(crds, namespace, "etl-demo-w", step)
            time.sleep(1)
        assert watcher.wait(30) == 0
        lines = [line.split(" ", 1)[1].split("  [")[0] for line in watcher.stdout.read().splitlines()]
        assert [line for line in lines if line in expected] == expected
    finally:
        watcher.kill()


def test_cancel_sets_the_annotation_and_refuses_a_finished_run(
    leoflow: Leoflow, crds: ClusterHandle, namespace: str
) -> None:
    applied(leoflow)
    create_run(crds, namespace, "etl-demo-r", "etl-demo")
    set_status(crds, namespace, "etl-demo-r", {"phase": "Running", "taskStates": "Sr..."})
    assert leoflow("cancel", "etl-demo-r").returncode == 0
    assert annotations(crds, namespace, "etl-demo-r")["leoflow.io/cancel"] == "true"
    create_run(crds, namespace, "etl-demo-s", "etl-demo")
    set_status(crds, namespace, "etl-demo-s", {"phase": "Succeeded", "taskStates": "SSSSS"})
    refused = leoflow("cancel", "etl-demo-s")
    assert refused.returncode == 1 and "already Succeeded" in refused.stderr


def test_retry_failed_bumps_the_generation_and_drops_a_cancel(
    leoflow: Leoflow, crds: ClusterHandle, namespace: str
) -> None:
    applied(leoflow)
    create_run(crds, namespace, "etl-demo-f", "etl-demo")
    crds.kubectl("annotate", "dagrun", "etl-demo-f", "-n", namespace, "leoflow.io/cancel=true")
    set_status(crds, namespace, "etl-demo-f", {"phase": "Cancelled", "taskStates": "SCCCC"})
    assert leoflow("retry", "etl-demo-f", "--failed").returncode == 0
    assert annotations(crds, namespace, "etl-demo-f") == {"leoflow.io/retry": "1"}
    assert leoflow("retry", "etl-demo-f", "--failed").returncode == 0
    assert annotations(crds, namespace, "etl-demo-f") == {"leoflow.io/retry": "2"}
    set_status(crds, namespace, "etl-demo-f", {"phase": "Running", "taskStates": "SSr.."})
    refused = leoflow("retry", "etl-demo-f", "--failed")
    assert refused.returncode == 1 and "only a Failed or Cancelled run" in refused.stderr


def test_retry_without_failed_creates_a_new_run_of_the_same_version(
    leoflow: Leoflow, crds: ClusterHandle, namespace: str
) -> None:
    applied(leoflow)
    create_run(
        crds,
        namespace,
        "etl-demo-f",
        "etl-demo",
        params={"day": "2026-11-01"},
        logicalDate="2026-11-01T00:00:00Z",
    )
    set_status(
        crds,
        namespace,
        "etl-demo-f",
        {**{k: v for k, v in FAILED.items() if v}, "definitionHash": "0123456789abcdef"},
    )
    result = leoflow("retry", "etl-demo-f")
    assert result.returncode == 0, result.stderr
    name = result.stdout.split()[0].removeprefix("dagrun.leoflow.io/")
    new = json.loads(crds.kubectl("get", "dagrun", name, "-n", namespace, "-o", "json").stdout)
    assert new["spec"] == {
        "dagName": "etl-demo",
        "params": {"day": "2026-11-01"},
        "logicalDate": "2026-11-01T00:00:00Z",
        "definitionHash": "0123456789abcdef",
    }


def test_logs_of_a_gone_pod_say_so_and_exit_1(leoflow: Leoflow, crds: ClusterHandle, namespace: str) -> None:
    applied(leoflow)
    create_run(crds, namespace, "etl-demo-f", "etl-demo")
    set_status(crds, namespace, "etl-demo-f", {k: v for k, v in FAILED.items() if v is not None})
    gone = leoflow("logs", "etl-demo-f", "validate")
    assert gone.returncode == 1 and "attempt 3 is gone" in gone.stderr
    not_started = leoflow("logs", "etl-demo-f", "transform")
    assert not_started.returncode == 2 and "--item" in not_started.stderr
    unknown = leoflow("logs", "etl-demo-f", "nope")
    assert unknown.returncode == 2 and "has no task 'nope'" in unknown.stderr


@pytest.mark.node
def test_logs_prints_the_main_container_of_the_attempt_pod(
    leoflow: Leoflow, crds: ClusterHandle, namespace: str
) -> None:
    if not crds.has_real_node:
        pytest.skip("needs the real node")
    applied(leoflow)
    create_run(crds, namespace, "etl-demo-l", "etl-demo")
    set_status(
        crds,
        namespace,
        "etl-demo-l",
        {"phase": "Running", "taskStates": "Sr...", "tasks": {"1": {"attempt": 2}}},
    )
    for attempt in (1, 2):
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"extract-{attempt}",
                "labels": {
                    "leoflow.io/run": "etl-demo-l",
                    "leoflow.io/task": "extract",
                    "leoflow.io/attempt": str(attempt),
                },
            },
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 0,
                "nodeSelector": {"leoflow.io/node-type": "real"},
                "containers": [
                    {
                        "name": "main",
                        "image": images.BASE_IMAGE,
                        "imagePullPolicy": "Never",
                        "command": ["sh", "-c", f"echo hello from attempt {attempt}"],
                    }
                ],
            },
        }
        crds.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(pod))
    crds.kubectl(
        "wait",
        "-n",
        namespace,
        "--for=jsonpath={.status.phase}=Succeeded",
        "pod/extract-2",
        "pod/extract-1",
        timeout=120,
    )
    assert leoflow("logs", "etl-demo-l", "extract").stdout == "hello from attempt 2\n"
    assert leoflow("logs", "etl-demo-l", "extract", "--attempt", "1", "-f").stdout == "hello from attempt 1\n"

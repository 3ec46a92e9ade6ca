"""DAGRun status stays compact, pod names stay legal, and a run's pinned definition round-trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leoflow.spec import resources as res
from leoflow.spec.compiler import compile_path
from leoflow.spec.fields import DNS_LABEL, MAX_TASK_NAME
from leoflow.spec.snapshots import SnapshotError, definition_configmap_name, load_snapshot, snapshot_configmap

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "etl" / "leoflow.yaml"
names = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)


@given(run=names, task=names.filter(lambda n: len(n) <= MAX_TASK_NAME), attempt=st.integers(1, 999))
def test_pod_names_are_dns_labels_of_at_most_63_characters(run: str, task: str, attempt: int) -> None:
    name = res.pod_name(run, task, attempt)
    assert len(name) <= 63
    assert DNS_LABEL.match(name)
    assert name.endswith(f"{task}-{attempt}")
    assert res.pod_name(run, task, attempt) == name


def test_long_run_names_are_hash_shortened_and_stay_distinct() -> None:
    a = res.pod_name("x" * 60 + "-a", "load", 1)
    b = res.pod_name("x" * 60 + "-b", "load", 1)
    assert a != b and len(a) <= 63 and len(b) <= 63


def test_status_of_a_10000_task_run_stays_far_below_the_etcd_limit() -> None:
    tasks = 10_000
    states = "S" * 9_000 + "r" * 900 + "F" * 100
    details = {
        str(i): res.TaskDetail(
            attempt=3,
            message="OOMKilled: container exceeded its memory limit of 512Mi",
            pod=f"etl-20240501t1000-abcde-task-{i:05d}-3",
            exitCode=137,
            startTime="2024-05-01T10:00:00Z",
            finishTime="2024-05-01T10:05:00Z",
            outputs={"rows": "123456"},
        )
        for i in range(9_000, tasks)
    }
    status = res.DagRunStatus(
        phase=res.RunPhase.RUNNING,
        taskStates=states,
        tasks=details,
        progress=res.progress(states),
        definitionHash="0123456789abcdef",
    )
    size = len(json.dumps(res.dump(status)))
    assert size < 512 * 1024, size
    assert status.progress == "9100/10000"


def test_snapshot_configmap_round_trips_the_definition() -> None:
    spec = compile_path(EXAMPLE).spec
    configmap = snapshot_configmap("etl", spec, namespace="ns")
    assert configmap["immutable"] is True
    assert configmap["metadata"]["name"] == definition_configmap_name("etl", spec.definitionHash)
    assert load_snapshot(json.loads(json.dumps(configmap))) == spec


def test_snapshot_with_tampered_content_is_refused() -> None:
    spec = compile_path(EXAMPLE).spec
    changed = spec.model_copy(update={"image": "evil:1"})
    configmap = snapshot_configmap("etl", changed)
    with pytest.raises(SnapshotError, match="does not match its hash"):
        load_snapshot(configmap)


def test_dagrun_resource_carries_the_dag_label() -> None:
    run = res.dagrun_resource("etl-manual-1", res.DagRunSpec(dagName="etl", params={"day": "2024-05-01"}))
    assert run["kind"] == "DAGRun"
    assert run["metadata"]["labels"] == {"leoflow.io/dag": "etl"}
    assert run["spec"] == {"dagName": "etl", "params": {"day": "2024-05-01"}}

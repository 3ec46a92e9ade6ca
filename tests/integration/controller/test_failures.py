"""Failures the controller must classify and survive, on KWOK pods: image pull errors, OOM kills
(named as such even from a bare exit 137 when the agent saw the OOM kill), and a controller killed
in the middle of a run."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from leoflow.controller.agentserver import AgentIdentity, AgentReport
from leoflow.controller.agentsink import RunReportSink
from leoflow.controller.cleanup import CleanupPolicy
from leoflow.controller.podnames import TASK_LABEL
from leoflow.controller.podstatus import ClassifySettings
from tests.integration.controller.conftest import Harness, dag_yaml, fail, run_status

CHAIN = (
    "  extract: {command: [extract]}\n"
    "  transform: {after: [extract], command: [transform]}\n"
    "  load: {after: [transform], command: [load]}\n"
)


async def test_image_pull_error_fails_the_task_after_the_grace_with_kubelet_message(harness: Harness) -> None:
    await harness.apply_dag(dag_yaml("pull", "  fetch: {command: [fetch]}\n"))
    harness.script.tasks = {"fetch": {"kwok.leoflow.io/image-pull": "ImagePullBackOff"}}
    await harness.start(classify=ClassifySettings(image_pull_grace=3.0))
    await harness.create_run("r1", "pull")
    waiting = await harness.wait_run(
        "r1", lambda o: "ImagePullBackOff" in (run_status(o).get("message") or "")
    )
    assert run_status(waiting)["phase"] == "Running"
    done = await harness.wait_phase("r1", "Failed")
    message = run_status(done)["message"]
    assert message.startswith("task 'fetch' failed: ImagePullFailed:")
    assert "Back-off pulling image registry.local/app:1" in message


async def test_oom_killed_task_is_named_as_such(harness: Harness) -> None:
    await harness.apply_dag(dag_yaml("oom", "  hungry: {command: [eat]}\n"))
    harness.script.tasks = {"hungry": fail(reason="OOMKilled", exit_code=137)}
    await harness.start()
    await harness.create_run("r1", "oom")
    done = await harness.wait_phase("r1", "Failed")
    assert run_status(done)["message"].startswith("task 'hungry' failed: OOMKilled:")


async def test_exit_137_without_a_reason_is_oom_killed_when_the_agent_saw_an_oom_kill(
    harness: Harness,
) -> None:
    # A child process OOM-killed under a cgroup that kills single processes: the container exits
    # 137 with reason Error, and only the agent's summary (its cgroup's oom_kill counter) knows.
    await harness.apply_dag(dag_yaml("sigkill", "  hungry: {command: [eat]}\n  killed: {command: [eat]}\n"))
    summary = '{"exitCode":137,"signal":9,"durationMs":812,"oomKilled":true,"agentVersion":"test"}'
    harness.script.tasks = {
        "hungry": {**fail(reason="Error", exit_code=137), "kwok.leoflow.io/fail-message": summary},
        "killed": fail(reason="Error", exit_code=137),
    }
    await harness.start()
    await harness.create_run("r1", "sigkill")
    tasks = run_status(await harness.wait_phase("r1", "Failed"))["tasks"]
    assert (tasks["0"]["reason"], tasks["0"]["exitCode"]) == ("OOMKilled", 137)
    assert "the agent saw an OOM kill" in tasks["0"]["message"]
    # Without the agent's evidence a SIGKILL stays a plain failure, with the hint.
    assert (tasks["1"]["reason"], tasks["1"]["exitCode"]) == ("UserError", 137)
    assert "possibly a child process ran out of memory" in tasks["1"]["message"]


async def test_agent_finished_report_with_oom_evidence_names_the_task_oom_killed(harness: Harness) -> None:
    await harness.apply_dag(dag_yaml("oomreport", "  hungry: {command: [eat]}\n"))
    harness.script.tasks = {"hungry": {"kwok.leoflow.io/succeed-after": "10m"}}
    controller = await harness.start()
    sink = RunReportSink(controller.reconciler)
    await harness.create_run("r1", "oomreport")
    await harness.wait_run("r1", lambda o: run_status(o).get("taskStates") == "r")
    [pod] = await harness.pods("r1")
    meta = pod["metadata"]
    labels = meta["labels"]
    identity = AgentIdentity(
        meta["namespace"], meta["name"], meta["uid"], labels["leoflow.io/dag"], "r1", "hungry", 1
    )
    await sink.wait_start(identity)
    await sink.report(AgentReport(identity, "finished", datetime.now(UTC), exit_code=137, signal=9, oom=True))
    task = run_status(await harness.wait_phase("r1", "Failed"))["tasks"]["0"]
    assert (task["reason"], task["exitCode"]) == ("OOMKilled", 137)


async def test_controller_killed_mid_run_adopts_its_pods_and_creates_no_duplicates(harness: Harness) -> None:
    await harness.apply_dag(dag_yaml("restart", CHAIN))
    harness.script.tasks = {"extract": {"kwok.leoflow.io/succeed-after": "5s"}}
    policy = CleanupPolicy(delete_succeeded=False)
    await harness.start(cleanup=policy)
    await harness.create_run("r1", "restart")
    await harness.wait_run("r1", lambda o: run_status(o).get("taskStates") in ("q..", "r.."))
    await harness.kill()
    # The pod finishes while no controller runs: its result must not be lost.
    await harness.start(cleanup=policy)
    done = await harness.wait_phase("r1", "Succeeded")
    assert run_status(done)["taskStates"] == "SSS"
    per_task = Counter(p["metadata"]["labels"][TASK_LABEL] for p in await harness.pods("r1"))
    assert per_task == {"extract": 1, "transform": 1, "load": 1}


async def test_deleted_run_leaves_no_pod_behind(harness: Harness) -> None:
    await harness.apply_dag(dag_yaml("gone", "  slow: {command: [sleep]}\n"))
    harness.script.tasks = {"slow": {"kwok.leoflow.io/succeed-after": "10m"}}
    await harness.start()
    await harness.create_run("r1", "gone")
    await harness.wait_run("r1", lambda o: run_status(o).get("taskStates") == "r")
    await harness.kubectl("delete", "dagrun", "r1", "--wait=false")
    await harness.wait_until_no_pods("r1", within=90)


async def test_outputs_reach_downstream_from_the_termination_message_without_an_agent_report(
    harness: Harness,
) -> None:
    tasks = (
        "  produce: {command: [produce], outputs: [rows]}\n"
        "  consume: {after: [produce], command: [consume], env: {ROWS: '{{ tasks.produce.outputs.rows }}'}}\n"
    )
    await harness.apply_dag(dag_yaml("summary", tasks))
    # KWOK's fail stage can write a terminated state with exit code 0 and a message: exactly what
    # the kubelet records for an agent that exited 0 after writing its JSON summary.
    summary = {
        **fail(exit_code=0, reason="Completed"),
        "kwok.leoflow.io/fail-message": '{"outputs":{"rows":"7"}}',
    }
    harness.script.tasks = {"produce": summary, "consume": {"kwok.leoflow.io/succeed-after": "10m"}}
    await harness.start(cleanup=CleanupPolicy(delete_succeeded=False))
    await harness.create_run("r1", "summary")
    running = await harness.wait_run("r1", lambda o: (run_status(o).get("taskStates") or "").startswith("S"))
    assert running["status"]["tasks"]["0"]["outputs"] == {"rows": "7"}
    pods = {p["metadata"]["labels"][TASK_LABEL]: p for p in await harness.pods("r1")}
    assert {"name": "ROWS", "value": "7"} in pods["consume"]["spec"]["containers"][0]["env"]


async def test_failed_pods_are_kept_for_the_ttl_then_deleted(harness: Harness) -> None:
    await harness.apply_dag(dag_yaml("ttl", "  broken: {command: [broken]}\n"))
    harness.script.tasks = {"broken": fail()}
    await harness.start(cleanup=CleanupPolicy(delete_succeeded=True, failed_ttl=10.0))
    await harness.create_run("r1", "ttl")
    await harness.wait_phase("r1", "Failed")
    [pod] = await harness.pods("r1")
    assert pod["status"]["phase"] == "Failed"
    assert "leoflow.io/result" not in (pod["metadata"].get("finalizers") or [])
    await harness.wait_until_no_pods("r1", within=60)

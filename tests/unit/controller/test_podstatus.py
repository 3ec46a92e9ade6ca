"""One test per failure scenario of reference/failures.md, with the exact status fields it names."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leoflow.controller.podstatus import (
    ClassifySettings,
    FailureClass,
    FailureReason,
    PodContext,
    PodPhase,
    classify,
)

from .podfixtures import at, disruption, pod, running, scheduled, terminated, waiting


def test_pending_pod_without_status_is_pending() -> None:
    obs = classify(pod("Pending"), now=at(1))
    assert obs.phase is PodPhase.PENDING
    assert obs.reason is None


def test_bound_pod_is_scheduled_before_containers_start() -> None:
    obs = classify(pod("Pending", conditions=[scheduled()]), now=at(2))
    assert obs.phase is PodPhase.SCHEDULED


def test_running_main_container_is_running_and_started() -> None:
    obs = classify(pod("Running", containers=[running()], conditions=[scheduled()]), now=at(10))
    assert obs.phase is PodPhase.RUNNING
    assert obs.started


def test_main_exit_zero_succeeds() -> None:
    obs = classify(pod("Succeeded", containers=[terminated(exit_code=0)]), now=at(30))
    assert obs.phase is PodPhase.SUCCEEDED
    assert obs.exit_code == 0


def test_phase_succeeded_without_an_exit_status_of_main_is_no_success() -> None:
    # A virtual kubelet may report the phase with no container statuses (failures.md 24): without
    # evidence the task ran, it is retried as infrastructure, never recorded as a success.
    for statuses in (None, [], [running("istio-proxy")]):
        obs = classify(
            pod("Succeeded", containers=statuses, spec_containers=("main", "istio-proxy")), now=at(30)
        )
        assert obs.phase is PodPhase.FAILED, statuses
        assert obs.reason is FailureReason.UNKNOWN
        assert obs.failure_class is FailureClass.INFRA
        assert "no evidence the task ran" in obs.message


def test_main_exit_zero_succeeds_while_sidecar_keeps_pod_running() -> None:
    statuses = [terminated("main", 0), running("istio-proxy")]
    obs = classify(pod("Running", containers=statuses, spec_containers=("main", "istio-proxy")), now=at(30))
    assert obs.phase is PodPhase.SUCCEEDED


def test_user_failure_carries_exit_code_and_counts_against_retries() -> None:
    obs = classify(pod("Failed", containers=[terminated(exit_code=3)]), now=at(30))
    assert obs.phase is PodPhase.FAILED
    assert obs.reason is FailureReason.USER_ERROR
    assert obs.exit_code == 3
    assert obs.failure_class is FailureClass.USER
    assert "exit code 3" in obs.message


def test_containers_are_found_by_name_not_position() -> None:
    # The kubelet sorts containerStatuses by name: "aaa-sidecar" comes before "main".
    statuses = [running("aaa-sidecar"), terminated("main", 2)]
    obs = classify(pod("Running", containers=statuses, spec_containers=("main", "aaa-sidecar")), now=at(30))
    assert obs.reason is FailureReason.USER_ERROR
    assert obs.container == "main"
    assert obs.exit_code == 2


def test_image_pull_backoff_waits_within_grace_with_kubelet_message() -> None:
    message = 'Back-off pulling image "registry.local/nope:1"'
    p = pod(
        "Pending",
        containers=[waiting("main", "ImagePullBackOff", message)],
        conditions=[scheduled(at_offset=1)],
    )
    obs = classify(p, now=at(60), settings=ClassifySettings(image_pull_grace=180))
    assert obs.phase is PodPhase.SCHEDULED
    assert obs.reason is None
    assert obs.waiting_reason == "ImagePullBackOff"
    assert message in obs.message
    assert obs.deadline == at(181)
    assert obs.fails_as is FailureReason.IMAGE_PULL_FAILED, "what the wait turns into at its deadline"


def test_image_pull_backoff_fails_task_after_grace() -> None:
    message = 'Back-off pulling image "registry.local/nope:1"'
    p = pod(
        "Pending",
        containers=[waiting("main", "ImagePullBackOff", message)],
        conditions=[scheduled(at_offset=1)],
    )
    obs = classify(p, now=at(181), settings=ClassifySettings(image_pull_grace=180))
    assert obs.phase is PodPhase.FAILED
    assert obs.reason is FailureReason.IMAGE_PULL_FAILED
    assert message in obs.message
    assert obs.container == "main"


def test_err_image_pull_grace_counts_from_when_the_controller_first_saw_it() -> None:
    p = pod(
        "Pending", containers=[waiting("main", "ErrImagePull", "manifest unknown")], conditions=[scheduled()]
    )
    context = PodContext(waiting_since=at(100))
    assert classify(p, now=at(250), context=context).phase is PodPhase.SCHEDULED
    assert classify(p, now=at(280), context=context).reason is FailureReason.IMAGE_PULL_FAILED


def test_kubelet_pull_throttling_never_fails_the_task() -> None:
    p = pod(
        "Pending", containers=[waiting("main", "ErrImagePull", "pull QPS exceeded")], conditions=[scheduled()]
    )
    obs = classify(p, now=at(10_000))
    assert obs.phase is PodPhase.SCHEDULED
    assert obs.deadline is None
    assert obs.fails_as is None


def test_invalid_image_name_fails_at_once() -> None:
    p = pod("Pending", containers=[waiting("main", "InvalidImageName", 'couldn\'t parse image "Bad:Ref"')])
    obs = classify(p, now=at(1))
    assert obs.reason is FailureReason.IMAGE_INVALID
    assert obs.failure_class is FailureClass.CONFIG
    assert "Bad:Ref" in obs.message


def test_pods_kubernetes_would_keep_waiting_are_stranded_so_the_controller_deletes_them() -> None:
    invalid = pod("Pending", containers=[waiting("main", "InvalidImageName", "bad")])
    unschedulable = pod("Pending", conditions=[scheduled("False", "Unschedulable", "0/3", at_offset=1)])
    config = pod("Pending", containers=[waiting("main", "CreateContainerConfigError", "x")])
    running_on_lost_node = pod("Running", containers=[running()], conditions=[scheduled()])
    settings = ClassifySettings(unschedulable_grace=10, node_lost_grace=10)
    lost = PodContext(node_not_ready_since=at(0))
    for p, context in ((invalid, None), (unschedulable, None), (config, None), (running_on_lost_node, lost)):
        obs = classify(p, now=at(100), settings=settings, context=context)
        assert obs.phase is PodPhase.FAILED
        assert obs.stranded, obs
    # Terminal pods end by themselves: the cleanup policy decides about them, not the verdict.
    evicted = pod("Failed", containers=[terminated(exit_code=137)], reason="Evicted", message="low")
    assert not classify(evicted, now=at(100)).stranded
    assert not classify(pod("Failed", containers=[terminated(exit_code=1)]), now=at(100)).stranded
    # Still within its grace: not a verdict yet.
    assert not classify(unschedulable, now=at(5), settings=settings).stranded


def test_create_container_config_error_fails_at_once_with_message() -> None:
    p = pod(
        "Pending",
        containers=[waiting("main", "CreateContainerConfigError", 'secret "db-creds" not found')],
        conditions=[scheduled()],
    )
    obs = classify(p, now=at(2))
    assert obs.reason is FailureReason.CONFIG_ERROR
    assert obs.failure_class is FailureClass.CONFIG
    assert 'secret "db-creds" not found' in obs.message


def test_create_container_error_fails_at_once() -> None:
    p = pod(
        "Pending",
        containers=[waiting("main", "CreateContainerError", "failed to create containerd task")],
        conditions=[scheduled()],
    )
    assert classify(p, now=at(2)).reason is FailureReason.CONFIG_ERROR


def test_create_container_deadline_under_cri_load_gets_a_grace() -> None:
    p = pod(
        "Pending",
        containers=[waiting("main", "CreateContainerError", "context deadline exceeded")],
        conditions=[scheduled(at_offset=0)],
    )
    settings = ClassifySettings(transient_create_grace=120)
    assert classify(p, now=at(60), settings=settings).phase is PodPhase.SCHEDULED
    assert classify(p, now=at(120), settings=settings).reason is FailureReason.CONFIG_ERROR


def test_start_error_exit_128_is_a_config_failure() -> None:
    term = terminated(exit_code=128, reason="StartError", message='exec: "pyhton": executable file not found')
    obs = classify(pod("Failed", containers=[term]), now=at(30))
    assert obs.reason is FailureReason.START_ERROR
    assert obs.failure_class is FailureClass.CONFIG
    assert "pyhton" in obs.message


def test_oom_killed_is_named_as_such() -> None:
    obs = classify(pod("Failed", containers=[terminated(exit_code=137, reason="OOMKilled")]), now=at(30))
    assert obs.reason is FailureReason.OOM_KILLED
    assert obs.failure_class is FailureClass.USER
    assert "OOMKilled" in obs.message
    assert obs.exit_code == 137


def test_oom_killed_with_exit_zero_is_still_oom() -> None:
    obs = classify(pod("Succeeded", containers=[terminated(exit_code=0, reason="OOMKilled")]), now=at(30))
    assert obs.reason is FailureReason.OOM_KILLED


def test_exit_137_without_reason_is_oom_when_agent_saw_oom_kill() -> None:
    p = pod("Failed", containers=[terminated(exit_code=137, reason="Error")])
    obs = classify(p, now=at(30), context=PodContext(agent_oom=True))
    assert obs.reason is FailureReason.OOM_KILLED


def test_exit_137_without_oom_evidence_is_a_user_failure_with_a_hint() -> None:
    obs = classify(pod("Failed", containers=[terminated(exit_code=137, reason="Error")]), now=at(30))
    assert obs.reason is FailureReason.USER_ERROR
    assert "SIGKILL" in obs.message


def test_sidecar_oom_fails_the_task() -> None:
    statuses = [terminated("logger", 137, "OOMKilled"), running("main")]
    obs = classify(pod("Running", containers=statuses, spec_containers=("main", "logger")), now=at(30))
    assert obs.reason is FailureReason.OOM_KILLED
    assert obs.container == "logger"


def test_unschedulable_waits_with_scheduler_message_then_fails_after_grace() -> None:
    message = "0/3 nodes are available: 3 Insufficient cpu."
    p = pod("Pending", conditions=[scheduled("False", "Unschedulable", message, at_offset=1)])
    settings = ClassifySettings(unschedulable_grace=300)
    waiting_obs = classify(p, now=at(100), settings=settings)
    assert waiting_obs.phase is PodPhase.PENDING
    assert message in waiting_obs.message
    assert waiting_obs.deadline == at(301)
    failed = classify(p, now=at(301), settings=settings)
    assert failed.reason is FailureReason.UNSCHEDULABLE
    assert message in failed.message


def test_prepared_pods_unschedulable_bound_counts_from_its_release() -> None:
    # It waited unscheduled for its upstreams' resources; the bound starts when it may run.
    p = pod("Pending", conditions=[scheduled("False", "Unschedulable", "Insufficient cpu", at_offset=1)])
    settings = ClassifySettings(unschedulable_grace=300)
    released = PodContext(released_at=at(1000))
    waiting_obs = classify(p, now=at(1001), settings=settings, context=released)
    assert waiting_obs.phase is PodPhase.PENDING
    assert waiting_obs.deadline == at(1300)
    assert (
        classify(p, now=at(1300), settings=settings, context=released).reason is FailureReason.UNSCHEDULABLE
    )


def test_node_pressure_eviction_is_an_infrastructure_failure() -> None:
    message = (
        "The node was low on resource: memory. "
        "Container main was using 2Gi, which exceeds its request of 1Gi."
    )
    p = pod("Failed", containers=[terminated(exit_code=137)], reason="Evicted", message=message)
    obs = classify(p, now=at(30))
    assert obs.reason is FailureReason.EVICTED
    assert obs.failure_class is FailureClass.INFRA
    assert obs.message == message


def test_eviction_for_own_ephemeral_storage_limit_is_a_user_failure() -> None:
    p = pod(
        "Failed",
        reason="Evicted",
        message="Pod ephemeral local storage usage exceeds the total limit of containers 1Gi.",
    )
    obs = classify(p, now=at(30))
    assert obs.reason is FailureReason.EPHEMERAL_STORAGE_LIMIT
    assert obs.failure_class is FailureClass.USER


def test_api_eviction_seen_through_disruption_target_is_infrastructure() -> None:
    p = pod(
        "Running", containers=[running()], conditions=[disruption("EvictionByEvictionAPI")], deleting=True
    )
    obs = classify(p, now=at(45))
    assert obs.reason is FailureReason.EVICTED
    assert obs.failure_class is FailureClass.INFRA


def test_scheduler_preemption_is_infrastructure_and_beats_exit_code() -> None:
    p = pod(
        "Failed",
        containers=[terminated(exit_code=143)],
        conditions=[disruption("PreemptionByScheduler")],
        deleting=True,
    )
    obs = classify(p, now=at(45))
    assert obs.reason is FailureReason.PREEMPTED
    assert obs.failure_class is FailureClass.INFRA


def test_kubelet_preemption_reason_is_preempted() -> None:
    p = pod("Failed", reason="Preempting", message="Preempted in order to admit critical pod")
    assert classify(p, now=at(30)).reason is FailureReason.PREEMPTED


def test_disruption_target_alone_does_not_fail_a_running_pod() -> None:
    p = pod("Running", containers=[running()], conditions=[disruption("PreemptionByScheduler")])
    assert classify(p, now=at(45)).phase is PodPhase.RUNNING


def test_success_before_disruption_is_still_success() -> None:
    p = pod(
        "Succeeded",
        containers=[terminated(exit_code=0)],
        conditions=[disruption("EvictionByEvictionAPI")],
        deleting=True,
    )
    assert classify(p, now=at(45)).phase is PodPhase.SUCCEEDED


def test_graceful_node_shutdown_is_infrastructure() -> None:
    p = pod(
        "Failed", reason="Terminated", message="Pod was terminated in response to imminent node shutdown."
    )
    obs = classify(p, now=at(30))
    assert obs.reason is FailureReason.NODE_SHUTDOWN
    assert obs.failure_class is FailureClass.INFRA


@pytest.mark.parametrize(
    "reason", ["OutOfcpu", "OutOfmemory", "OutOfpods", "NodeAffinity", "UnexpectedAdmissionError"]
)
def test_kubelet_admission_rejection_is_infrastructure(reason: str) -> None:
    obs = classify(pod("Failed", reason=reason, message=f"Pod {reason}"), now=at(3))
    assert obs.reason is FailureReason.ADMISSION_REJECTED
    assert obs.failure_class is FailureClass.INFRA
    assert not obs.started


def test_node_lost_pod_reason_is_infrastructure() -> None:
    p = pod(
        "Unknown",
        containers=[running()],
        reason="NodeLost",
        message="Node n1 which was running pod p is unresponsive",
    )
    obs = classify(p, now=at(400))
    assert obs.reason is FailureReason.NODE_LOST
    assert obs.failure_class is FailureClass.INFRA


def test_taint_manager_deletion_of_terminating_running_pod_is_node_lost() -> None:
    p = pod(
        "Running", containers=[running()], conditions=[disruption("DeletionByTaintManager")], deleting=True
    )
    assert classify(p, now=at(400)).reason is FailureReason.NODE_LOST


def test_unknown_phase_is_node_lost() -> None:
    assert classify(pod("Unknown"), now=at(400)).reason is FailureReason.NODE_LOST


def test_node_not_ready_fails_running_pod_after_grace() -> None:
    p = pod("Running", containers=[running()], conditions=[scheduled()])
    context = PodContext(node_not_ready_since=at(100))
    settings = ClassifySettings(node_lost_grace=120)
    before = classify(p, now=at(200), settings=settings, context=context)
    assert before.phase is PodPhase.RUNNING
    assert before.deadline == at(220)
    assert classify(p, now=at(220), settings=settings, context=context).reason is FailureReason.NODE_LOST


def test_pod_deleted_with_its_node_gone_is_node_lost() -> None:
    p = pod("Running", containers=[running()])
    obs = classify(p, now=at(60), context=PodContext(deleted=True, node_gone=True))
    assert obs.reason is FailureReason.NODE_LOST


def test_deadline_exceeded_is_a_timeout_counting_against_user_retries() -> None:
    p = pod(
        "Failed",
        containers=[terminated(exit_code=137)],
        reason="DeadlineExceeded",
        message="Pod was active on the node longer than the specified deadline",
    )
    obs = classify(p, now=at(30))
    assert obs.reason is FailureReason.DEADLINE_EXCEEDED
    assert obs.failure_class is FailureClass.USER


def test_running_pod_deleted_by_someone_else_is_infrastructure() -> None:
    obs = classify(pod("Running", containers=[running()]), now=at(60), context=PodContext(deleted=True))
    assert obs.reason is FailureReason.DELETED_EXTERNALLY
    assert obs.failure_class is FailureClass.INFRA
    assert obs.started


def test_terminating_pod_deleted_by_someone_else_fails_before_it_is_gone() -> None:
    obs = classify(pod("Running", containers=[running()], deleting=True), now=at(60))
    assert obs.reason is FailureReason.DELETED_EXTERNALLY


def test_sigterm_exit_during_external_deletion_is_infrastructure_not_user() -> None:
    obs = classify(pod("Failed", containers=[terminated(exit_code=143)], deleting=True), now=at(60))
    assert obs.reason is FailureReason.DELETED_EXTERNALLY


def test_pod_deleted_by_the_controller_is_reported_as_ours() -> None:
    obs = classify(
        pod("Running", containers=[running()], deleting=True),
        now=at(60),
        context=PodContext(deleted_by_controller=True),
    )
    assert obs.reason is FailureReason.DELETED_BY_CONTROLLER


def test_agent_init_container_failure_is_infrastructure() -> None:
    init = [terminated("leoflow-agent-init", 1, message="cp: can't create /leoflow/bin/leoflow-agent")]
    p = pod("Failed", init=init, containers=[waiting("main", "PodInitializing")])
    obs = classify(p, now=at(30))
    assert obs.reason is FailureReason.AGENT_INIT_FAILED
    assert obs.failure_class is FailureClass.INFRA
    assert "leoflow-agent-init" in obs.message


def test_agent_init_container_oom_is_infrastructure() -> None:
    p = pod("Failed", init=[terminated("leoflow-agent-init", 137, "OOMKilled")])
    assert classify(p, now=at(30)).reason is FailureReason.AGENT_INIT_FAILED


def test_agent_image_pull_failure_does_not_blame_the_user() -> None:
    init = [waiting("leoflow-agent-init", "ImagePullBackOff", "pull access denied")]
    p = pod("Pending", init=init, conditions=[scheduled(at_offset=0)])
    obs = classify(p, now=at(1000))
    assert obs.reason is FailureReason.AGENT_IMAGE_PULL_FAILED
    assert obs.failure_class is FailureClass.INFRA


def test_user_init_container_failure_is_a_user_failure() -> None:
    p = pod("Failed", init=[terminated("leoflow-agent-init", 0), terminated("fetch-data", 2)])
    obs = classify(p, now=at(30))
    assert obs.reason is FailureReason.USER_ERROR
    assert obs.container == "fetch-data"


def test_agent_reserved_exit_code_is_an_agent_failure() -> None:
    obs = classify(pod("Failed", containers=[terminated(exit_code=125)]), now=at(30))
    assert obs.reason is FailureReason.AGENT_ERROR
    assert obs.failure_class is FailureClass.INFRA


def test_failed_pod_with_nothing_in_it_is_unknown_infrastructure_not_ignored() -> None:
    obs = classify(pod("Failed"), now=at(30))
    assert obs.phase is PodPhase.FAILED
    assert obs.reason is FailureReason.UNKNOWN


def test_negative_grace_is_rejected() -> None:
    with pytest.raises(ValueError, match="image_pull_grace"):
        ClassifySettings(image_pull_grace=-1)


_reasons = st.sampled_from(
    [
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CreateContainerConfigError",
        "ContainerCreating",
        "PodInitializing",
        "CrashLoopBackOff",
        "Weird",
    ]
)
_phases = st.sampled_from(["Pending", "Running", "Succeeded", "Failed", "Unknown", "Bogus"])
_states = st.one_of(
    st.builds(lambda r: waiting("main", r), _reasons),
    st.just(running()),
    st.builds(
        lambda c, r: terminated("main", c, r),
        st.integers(0, 255),
        st.sampled_from([None, "Error", "OOMKilled", "StartError", "Completed"]),
    ),
)


@given(
    phase=_phases,
    state=st.lists(_states, max_size=1),
    deleting=st.booleans(),
    deleted=st.booleans(),
    pod_reason=st.sampled_from([None, "Evicted", "DeadlineExceeded", "NodeLost", "Preempting", "Odd"]),
    now=st.integers(0, 10_000),
)
def test_classifier_is_total_and_failed_always_has_a_reason(
    *,
    phase: str,
    state: list[dict[str, Any]],
    deleting: bool,
    deleted: bool,
    pod_reason: str | None,
    now: int,
) -> None:
    p = pod(phase, containers=state, reason=pod_reason, deleting=deleting)
    obs = classify(p, now=at(now), context=PodContext(deleted=deleted))
    assert (obs.phase is PodPhase.FAILED) == (obs.reason is not None)
    if obs.phase is PodPhase.FAILED:
        assert obs.message
    if deleted and obs.phase is not PodPhase.SUCCEEDED:
        assert obs.terminal


@given(
    garbage=st.recursive(
        st.none() | st.integers() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
        max_leaves=12,
    )
)
def test_classifier_never_crashes_on_malformed_pods(garbage: Any) -> None:
    classify({"status": garbage, "metadata": garbage, "spec": garbage}, now=at(0))


def test_garbled_exit_code_is_a_failure_not_a_crash() -> None:
    p = pod(
        "Failed", containers=[{"name": "main", "state": {"terminated": {"exitCode": "x", "reason": "Error"}}}]
    )
    obs = classify(p, now=at(30))
    assert obs.phase is PodPhase.FAILED


def test_container_creating_forever_fails_after_the_start_grace_pointing_at_events() -> None:
    p = pod("Pending", containers=[waiting("main", "ContainerCreating")], conditions=[scheduled(at_offset=0)])
    settings = ClassifySettings(start_grace=600)
    before = classify(p, now=at(599), settings=settings)
    assert before.phase is PodPhase.SCHEDULED
    assert before.deadline == at(600)
    obs = classify(p, now=at(600), settings=settings)
    assert obs.reason is FailureReason.START_TIMEOUT
    assert "FailedMount" in obs.message


def test_a_long_running_init_container_is_not_a_start_timeout() -> None:
    p = pod(
        "Pending",
        init=[running("download")],
        containers=[waiting("main", "PodInitializing")],
        conditions=[scheduled(at_offset=0)],
    )
    obs = classify(p, now=at(5000))
    assert obs.phase is PodPhase.SCHEDULED
    assert obs.reason is None

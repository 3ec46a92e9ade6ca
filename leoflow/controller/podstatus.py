"""What a task pod's API status means for the task: one pure classifier.

Pod phase alone never tells the outcome (reference/failures.md): a pod whose image cannot be pulled
stays Pending forever, a Succeeded pod can carry OOMKilled, a pod on a dead node stays Running.
So the classifier reads container states by name, pod-level reasons and conditions, and the few
facts only the controller knows (the pod is gone, we deleted it, the node is gone, the agent saw an
OOM kill), and decides. Every "give up" decision for a pod that Kubernetes would leave waiting is
taken here, against a grace period, and the observation carries the deadline so the caller can
come back exactly when it expires.

Precedence (failures.md, entry 25): positive success evidence of the main container, then
pod-level disruption (status.reason, DisruptionTarget), then init and agent containers, then any
OOMKilled, then the main container's exit code, then deletion, then waiting reasons, then unknown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

Pod = Mapping[str, Any]


class PodPhase(StrEnum):
    """The task-level view of a pod: Kubernetes phases, with Scheduled split out of Pending."""

    PENDING = "Pending"
    SCHEDULED = "Scheduled"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class FailureClass(StrEnum):
    """Whose fault a failure is, which decides which retry budget it spends.

    USER failures count against the task's retries; INFRA failures against the separate
    infrastructure budget; CONFIG failures are not retried at all, because an identical pod
    would fail identically (a bad image reference, a missing Secret, a command that cannot exec).
    """

    USER = "user"
    INFRA = "infra"
    CONFIG = "config"


class FailureReason(StrEnum):
    USER_ERROR = "UserError"
    OOM_KILLED = "OOMKilled"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    IMAGE_PULL_FAILED = "ImagePullFailed"
    IMAGE_INVALID = "InvalidImage"
    CONFIG_ERROR = "ContainerConfigError"
    START_ERROR = "StartError"
    UNSCHEDULABLE = "Unschedulable"
    START_TIMEOUT = "StartTimeout"
    EVICTED = "Evicted"
    EPHEMERAL_STORAGE_LIMIT = "EphemeralStorageLimit"
    PREEMPTED = "Preempted"
    NODE_SHUTDOWN = "NodeShutdown"
    NODE_LOST = "NodeLost"
    ADMISSION_REJECTED = "AdmissionRejected"
    POD_REFUSED = "PodRefused"
    QUOTA_EXCEEDED = "ExceededQuota"
    DELETED_EXTERNALLY = "DeletedExternally"
    DELETED_BY_CONTROLLER = "DeletedByController"
    INTERRUPTED = "Interrupted"
    AGENT_INIT_FAILED = "AgentInitFailed"
    AGENT_IMAGE_PULL_FAILED = "AgentImagePullFailed"
    AGENT_ERROR = "AgentError"
    UNKNOWN = "Unknown"


FAILURE_CLASS: Mapping[FailureReason, FailureClass] = {
    FailureReason.USER_ERROR: FailureClass.USER,
    FailureReason.OOM_KILLED: FailureClass.USER,
    FailureReason.DEADLINE_EXCEEDED: FailureClass.USER,
    FailureReason.EPHEMERAL_STORAGE_LIMIT: FailureClass.USER,
    FailureReason.IMAGE_PULL_FAILED: FailureClass.USER,
    FailureReason.UNSCHEDULABLE: FailureClass.USER,
    FailureReason.START_TIMEOUT: FailureClass.USER,
    FailureReason.IMAGE_INVALID: FailureClass.CONFIG,
    FailureReason.CONFIG_ERROR: FailureClass.CONFIG,
    FailureReason.START_ERROR: FailureClass.CONFIG,
    FailureReason.POD_REFUSED: FailureClass.CONFIG,
    FailureReason.EVICTED: FailureClass.INFRA,
    FailureReason.PREEMPTED: FailureClass.INFRA,
    FailureReason.NODE_SHUTDOWN: FailureClass.INFRA,
    FailureReason.NODE_LOST: FailureClass.INFRA,
    FailureReason.ADMISSION_REJECTED: FailureClass.INFRA,
    FailureReason.QUOTA_EXCEEDED: FailureClass.INFRA,
    FailureReason.DELETED_EXTERNALLY: FailureClass.INFRA,
    FailureReason.DELETED_BY_CONTROLLER: FailureClass.INFRA,
    FailureReason.INTERRUPTED: FailureClass.INFRA,
    FailureReason.AGENT_INIT_FAILED: FailureClass.INFRA,
    FailureReason.AGENT_IMAGE_PULL_FAILED: FailureClass.INFRA,
    FailureReason.AGENT_ERROR: FailureClass.INFRA,
    FailureReason.UNKNOWN: FailureClass.INFRA,
}

# Kubelet waiting reasons (kubelet images/types.go, the list Tekton uses).
_IMAGE_INVALID_REASONS = frozenset({"InvalidImageName", "ErrImageNeverPull"})
_IMAGE_PULL_REASONS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "ImageInspectError", "RegistryUnavailable"}
)
_CONFIG_REASONS = frozenset({"CreateContainerConfigError", "CreateContainerError", "RunContainerError"})
_STARTING_REASONS = frozenset({"ContainerCreating", "PodInitializing"})
# Messages that mean "slow down", not "this image is wrong": failing on them killed healthy bursts
# in Airflow, Tekton (#10588), Tilt and Pachyderm.
_THROTTLED_PULL_MARKERS = ("pull QPS exceeded", "toomanyrequests", "429 Too Many Requests")
# CRI under load, not a bad spec (Tekton's default-create-container-error-timeout).
_TRANSIENT_CREATE_MARKERS = ("context deadline exceeded",)

_ADMISSION_REASONS = frozenset(
    {
        "OutOfcpu",
        "OutOfmemory",
        "OutOfpods",
        "OutOfephemeral-storage",
        "NodeAffinity",
        "UnexpectedAdmissionError",
        "ProviderFailed",
    }
)
_DISRUPTION_REASONS: Mapping[str, FailureReason] = {
    "PreemptionByScheduler": FailureReason.PREEMPTED,
    "PreemptionByKubeScheduler": FailureReason.PREEMPTED,
    "DeletionByTaintManager": FailureReason.NODE_LOST,
    "DeletionByPodGC": FailureReason.NODE_LOST,
    "EvictionByEvictionAPI": FailureReason.EVICTED,
    "TerminationByKubelet": FailureReason.EVICTED,
}
# Kubelet eviction messages when the pod broke its own limit rather than the node running short.
_OWN_STORAGE_LIMIT_MARKERS = (
    "exceeds the total limit of containers",
    "exceeded its local ephemeral storage limit",
    "Usage of EmptyDir volume",
)
# The ResourceQuota admission plugin's wording (k8s.io/apiserver .../resourcequota/controller.go):
# a full quota, and a quota created a moment ago whose usage the controller has not counted yet.
_QUOTA_MARKERS = ("exceeded quota", "status unknown for quota")
_SIGKILL = 137
_SIGTERM = 143


@dataclass(frozen=True)
class ClassifySettings:
    """Per-task knobs of the classifier, in seconds.

    ``config_error_grace`` is zero because the issue asks config errors to fail at once; a task
    whose Secret is created a moment later by an operator can raise it.
    """

    image_pull_grace: float = 180.0
    config_error_grace: float = 0.0
    transient_create_grace: float = 120.0
    unschedulable_grace: float = 300.0
    start_grace: float = 600.0
    node_lost_grace: float = 120.0
    main_container: str = "main"
    agent_init_containers: frozenset[str] = frozenset({"leoflow-agent-init"})
    agent_exit_code: int = 125

    def __post_init__(self) -> None:
        for name in (
            "image_pull_grace",
            "config_error_grace",
            "transient_create_grace",
            "unschedulable_grace",
            "start_grace",
            "node_lost_grace",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")


@dataclass(frozen=True)
class PodContext:
    """What the controller knows about a pod beyond its own status.

    ``deleted``: the object is gone (a DELETED watch event, confirmed by a live GET).
    ``deleted_by_controller``: we asked for the deletion (cancel, timeout, fast fail).
    ``node_gone``: the Node object the pod was bound to no longer exists.
    ``node_not_ready_since``: when the controller first saw the pod's node not Ready.
    ``waiting_since``: when the controller first saw the pod stuck in its current waiting reason
    (persisted across restarts); without it the pod's own timestamps are used.
    ``agent_oom``: the agent's cgroup evidence of an OOM kill inside the container.
    ``released_at``: when a prepared (prestart) pod was told to start; its bounded waits count
    from then, since it may have waited unscheduled for its upstreams' resources until then.
    """

    deleted: bool = False
    deleted_by_controller: bool = False
    node_gone: bool = False
    node_not_ready_since: datetime | None = None
    waiting_since: datetime | None = None
    agent_oom: bool = False
    released_at: datetime | None = None


@dataclass(frozen=True)
class PodObservation:
    """The classifier's verdict. ``deadline`` is set while a grace timer runs.

    ``stranded``: the verdict is a failure but Kubernetes will never end the pod by itself (it
    waits Pending on an image, a Secret or a node, or sits on a lost node): whoever acts on the
    verdict deletes the pod, or it holds its node slot and quota forever.
    ``fails_as``: while a bounded wait runs (``deadline`` set), the failure it turns into then.
    """

    phase: PodPhase
    reason: FailureReason | None = None
    message: str = ""
    exit_code: int | None = None
    container: str | None = None
    deadline: datetime | None = None
    started: bool = False
    waiting_reason: str | None = None
    stranded: bool = False
    fails_as: FailureReason | None = None

    @property
    def failure_class(self) -> FailureClass | None:
        return FAILURE_CLASS[self.reason] if self.reason is not None else None

    @property
    def terminal(self) -> bool:
        return self.phase in (PodPhase.SUCCEEDED, PodPhase.FAILED)


@dataclass(frozen=True)
class _Container:
    name: str
    state: Mapping[str, Any]
    is_init: bool
    is_agent: bool = False

    @property
    def terminated(self) -> Mapping[str, Any] | None:
        value = self.state.get("terminated")
        return value if isinstance(value, Mapping) else None

    @property
    def waiting(self) -> Mapping[str, Any] | None:
        value = self.state.get("waiting")
        return value if isinstance(value, Mapping) else None

    @property
    def running(self) -> bool:
        return isinstance(self.state.get("running"), Mapping)


@dataclass
class _PodView:
    pod: Pod
    settings: ClassifySettings
    init: list[_Container] = field(default_factory=list)
    regular: dict[str, _Container] = field(default_factory=dict)

    @property
    def status(self) -> Mapping[str, Any]:
        return _mapping(self.pod.get("status"))

    @property
    def metadata(self) -> Mapping[str, Any]:
        return _mapping(self.pod.get("metadata"))

    def main_name(self) -> str:
        names = [str(c.get("name", "")) for c in _list(_mapping(self.pod.get("spec")).get("containers"))]
        if self.settings.main_container in names or not names:
            return self.settings.main_container
        return names[0]

    def condition(self, kind: str) -> Mapping[str, Any] | None:
        for cond in _list(self.status.get("conditions")):
            if cond.get("type") == kind:
                return cond
        return None


def classify(
    pod: Pod,
    *,
    now: datetime,
    settings: ClassifySettings | None = None,
    context: PodContext | None = None,
) -> PodObservation:
    """Classify ``pod`` (a v1 Pod as JSON from the API) at controller time ``now``."""
    settings = settings or ClassifySettings()
    context = context or PodContext()
    view = _view(pod, settings)
    main = view.regular.get(view.main_name())
    phase = str(view.status.get("phase", "Pending"))
    started = _started(main)

    success = _main_success(view, main)
    if success is not None:
        return success
    for decide in (_pod_reason, _disruption):
        verdict = decide(view, context, started)
        if verdict is not None:
            return verdict
    verdict = _init_failure(view) or _oom(view) or _main_exit(view, main, context)
    if verdict is not None:
        return verdict
    if context.deleted or _deleting(view):
        return _deletion(context, started)
    if phase == "Failed":
        return _failed(
            FailureReason.UNKNOWN,
            _pod_message(view, "pod failed without a container exit status"),
            started=started,
        )
    if phase == "Succeeded":
        # Success needs positive evidence, the main container's exit 0 (taken above) or the
        # agent's report; a phase alone (a virtual kubelet with no container statuses) is not it.
        return _failed(
            FailureReason.UNKNOWN,
            _pod_message(
                view,
                "pod phase Succeeded, but no exit status of its main container: no evidence the task ran",
            ),
            started=started,
        )
    if phase == "Unknown":
        return _failed(
            FailureReason.NODE_LOST,
            _pod_message(view, "pod phase Unknown: node not reporting"),
            started=started,
        )
    node = str(_mapping(pod.get("spec")).get("nodeName") or "") or "(unknown)"
    node_lost = _node_lost(context, now, settings, started, node)
    if node_lost is not None and node_lost.terminal:
        return node_lost
    verdict = _waiting(view, now, context)
    if verdict is not None:
        return verdict
    if main is not None and main.running:
        running = PodObservation(PodPhase.RUNNING, container=main.name, started=True)
        return _with_deadline(running, node_lost)
    scheduled = view.condition("PodScheduled")
    if scheduled is not None and scheduled.get("status") == "True":
        return _with_deadline(PodObservation(PodPhase.SCHEDULED, started=started), node_lost)
    if phase == "Running":
        return _with_deadline(PodObservation(PodPhase.RUNNING, started=started), node_lost)
    return PodObservation(PodPhase.PENDING)


def create_refused(code: int, reason: str, message: str, *, transient: bool) -> PodObservation | None:
    """What an API server's refusal to create a task pod means for the attempt, or ``None`` when
    the create should simply be tried again (no response, 409 conflict, 429, 5xx).

    An invalid pod (400/422), one forbidden by policy (403 PodSecurity, RBAC, a webhook's denial)
    or a missing namespace (404) is refused identically every time: the task fails at once with
    the API server's words (failures.md, entry 6). A 403 from ResourceQuota ("exceeded quota", or
    "status unknown" just after the quota was made) is capacity, not a bad spec: the reconciler
    waits for room (quotawait.py) and only a wait past its bound becomes the attempt's failure.
    """
    text = f"pod refused by the API server (HTTP {code} {reason}): {message}"
    if code == 403 and any(marker in message for marker in _QUOTA_MARKERS):
        return _failed(FailureReason.QUOTA_EXCEEDED, text)
    if transient:
        return None
    return _failed(FailureReason.POD_REFUSED, text)


def node_ready(node: Mapping[str, Any] | None) -> bool | None:
    """A Node's Ready condition as a bool, ``None`` when it has none (yet)."""
    for cond in _list(_mapping((node or {}).get("status")).get("conditions")):
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return None


def node_not_ready_since(node: Mapping[str, Any], now: datetime) -> datetime | None:
    """``PodContext.node_not_ready_since`` from a Node: when its Ready condition left True (the
    kubelet or the node lifecycle controller stamps it, so it survives a controller restart), or
    ``None`` while it is Ready. A node that never posted Ready is not judged (it may still be
    registering); a transition time missing or in the future (clock skew) counts as ``now``."""
    for cond in _list(_mapping(node.get("status")).get("conditions")):
        if cond.get("type") != "Ready":
            continue
        if cond.get("status") == "True":
            return None
        since = _timestamp(cond.get("lastTransitionTime"))
        return now if since is None or since > now else since
    return None


def _view(pod: Pod, settings: ClassifySettings) -> _PodView:
    view = _PodView(pod, settings)
    for raw in _list(view.status.get("initContainerStatuses")):
        name = str(raw.get("name", ""))
        view.init.append(
            _Container(name, _mapping(raw.get("state")), True, name in settings.agent_init_containers)
        )
    for raw in _list(view.status.get("containerStatuses")):
        name = str(raw.get("name", ""))
        view.regular[name] = _Container(name, _mapping(raw.get("state")), False)
    return view


def _main_success(view: _PodView, main: _Container | None) -> PodObservation | None:
    """A main container that exited 0 is a success, even if a disruption arrived just after it."""
    term = main.terminated if main is not None else None
    if main is None or term is None or _exit_code(term) != 0:
        return None
    if any(_is_oom(c) for c in [*view.init, *view.regular.values()]):
        return None
    return PodObservation(PodPhase.SUCCEEDED, exit_code=0, container=main.name, started=True)


def _pod_reason(view: _PodView, context: PodContext, started: bool) -> PodObservation | None:
    reason = str(view.status.get("reason") or "")
    phase = view.status.get("phase")
    message = _pod_message(view, reason)
    if reason == "NodeLost":
        return _failed(FailureReason.NODE_LOST, message, started=started)
    if phase != "Failed" or not reason:
        return None
    if reason == "DeadlineExceeded":
        return _failed(FailureReason.DEADLINE_EXCEEDED, message, started=started)
    if reason == "Evicted":
        own_limit = any(marker in message for marker in _OWN_STORAGE_LIMIT_MARKERS)
        kind = FailureReason.EPHEMERAL_STORAGE_LIMIT if own_limit else FailureReason.EVICTED
        return _failed(kind, message, started=started)
    if reason == "Preempting":
        return _failed(FailureReason.PREEMPTED, message, started=started)
    if reason in ("Terminated", "NodeShutdown", "Shutdown"):
        return _failed(FailureReason.NODE_SHUTDOWN, message, started=started)
    if reason in _ADMISSION_REASONS:
        return _failed(FailureReason.ADMISSION_REJECTED, message, started=started)
    return None


def _disruption(view: _PodView, context: PodContext, started: bool) -> PodObservation | None:
    cond = view.condition("DisruptionTarget")
    if cond is None or cond.get("status") != "True":
        return None
    # The condition may be set shortly before the kill; it decides only once the pod is going away.
    going = view.status.get("phase") == "Failed" or _deleting(view) or context.deleted
    if not going or context.deleted_by_controller:
        return None
    kind = _DISRUPTION_REASONS.get(str(cond.get("reason", "")), FailureReason.DELETED_EXTERNALLY)
    message = f"{cond.get('reason', 'DisruptionTarget')}: {cond.get('message', '')}".rstrip(": ")
    return _failed(kind, message, started=started)


def _init_failure(view: _PodView) -> PodObservation | None:
    for container in view.init:
        term = container.terminated
        code = _exit_code(term)
        if term is None or code == 0:
            continue
        detail = _container_message(container.name, term, f"exit code {code}")
        if container.is_agent:
            return _failed(FailureReason.AGENT_INIT_FAILED, detail, exit_code=code, container=container.name)
        kind = FailureReason.OOM_KILLED if _is_oom(container) else FailureReason.USER_ERROR
        return _failed(kind, f"init container {detail}", exit_code=code, container=container.name)
    return None


def _oom(view: _PodView) -> PodObservation | None:
    for container in [*view.init, *view.regular.values()]:
        if not _is_oom(container):
            continue
        term = container.terminated or {}
        code = _exit_code(term)
        if container.is_agent:
            return _failed(
                FailureReason.AGENT_INIT_FAILED,
                f"{container.name}: OOMKilled (the agent's own limit)",
                exit_code=code,
                container=container.name,
            )
        detail = _container_message(container.name, term, f"OOMKilled (exit code {code})")
        return _failed(
            FailureReason.OOM_KILLED, detail, exit_code=code, container=container.name, started=True
        )
    return None


def _main_exit(view: _PodView, main: _Container | None, context: PodContext) -> PodObservation | None:
    term = main.terminated if main is not None else None
    if main is None or term is None:
        return None
    code = _exit_code(term)
    reason = str(term.get("reason") or "")
    if code == view.settings.agent_exit_code:
        return _failed(
            FailureReason.AGENT_ERROR,
            _container_message(main.name, term, "leoflow-agent failed"),
            exit_code=code,
            container=main.name,
        )
    if reason in ("StartError", "ContainerCannotRun"):
        return _failed(
            FailureReason.START_ERROR,
            _container_message(main.name, term, "command could not start"),
            exit_code=code,
            container=main.name,
        )
    if code == _SIGKILL and context.agent_oom:
        return _failed(
            FailureReason.OOM_KILLED,
            f"{main.name}: OOMKilled (exit code 137, the agent saw an OOM kill)",
            exit_code=code,
            container=main.name,
            started=True,
        )
    external = (context.deleted or _deleting(view)) and not context.deleted_by_controller
    if code in (_SIGKILL, _SIGTERM) and external:
        return _failed(
            FailureReason.DELETED_EXTERNALLY,
            f"{main.name}: killed (exit code {code}) by a pod deletion",
            exit_code=code,
            container=main.name,
            started=True,
        )
    fallback = f"exit code {code}"
    if code == _SIGKILL:
        fallback += " (SIGKILL: possibly a child process ran out of memory, or the grace period expired)"
    return _failed(
        FailureReason.USER_ERROR,
        _container_message(main.name, term, fallback),
        exit_code=code,
        container=main.name,
        started=True,
    )


def _deletion(context: PodContext, started: bool) -> PodObservation:
    if context.deleted_by_controller:
        return _failed(FailureReason.DELETED_BY_CONTROLLER, "pod deleted by the controller", started=started)
    if context.node_gone:
        return _failed(FailureReason.NODE_LOST, "pod deleted and its node is gone", started=started)
    return _failed(
        FailureReason.DELETED_EXTERNALLY, "pod deleted by someone other than Leoflow", started=started
    )


def _node_lost(
    context: PodContext, now: datetime, settings: ClassifySettings, started: bool, node: str
) -> PodObservation | None:
    if context.node_gone:
        return _failed(FailureReason.NODE_LOST, f"node {node} was deleted", started=started, stranded=True)
    since = context.node_not_ready_since
    if since is None:
        return None
    deadline = since + timedelta(seconds=settings.node_lost_grace)
    if now >= deadline:
        return _failed(
            FailureReason.NODE_LOST,
            f"node {node} not Ready since {since.isoformat(timespec='seconds')} "
            f"(more than the {settings.node_lost_grace:g} s grace)",
            started=started,
            stranded=True,
        )
    return PodObservation(PodPhase.RUNNING, deadline=deadline, started=started)


def _waiting(view: _PodView, now: datetime, context: PodContext) -> PodObservation | None:
    settings = view.settings
    starting: _Container | None = None
    for container in [*view.init, *view.regular.values()]:
        waiting = container.waiting
        if waiting is None:
            continue
        reason = str(waiting.get("reason") or "")
        detail = _container_message(container.name, waiting, reason)
        if reason in _STARTING_REASONS and starting is None:
            starting = container
        if reason in _IMAGE_INVALID_REASONS:
            kind = (
                FailureReason.AGENT_IMAGE_PULL_FAILED if container.is_agent else FailureReason.IMAGE_INVALID
            )
            return _failed(kind, detail, container=container.name, stranded=True)
        if reason in _IMAGE_PULL_REASONS:
            kind = (
                FailureReason.AGENT_IMAGE_PULL_FAILED
                if container.is_agent
                else FailureReason.IMAGE_PULL_FAILED
            )
            throttled = any(marker in detail for marker in _THROTTLED_PULL_MARKERS)
            grace = None if throttled else settings.image_pull_grace
            return _grace(
                view,
                now,
                context,
                kind=kind,
                detail=detail,
                container=container.name,
                waiting_reason=reason,
                grace=grace,
                pod_since=_scheduled_at(view),
            )
        if reason in _CONFIG_REASONS:
            transient = any(marker in detail for marker in _TRANSIENT_CREATE_MARKERS)
            grace = settings.transient_create_grace if transient else settings.config_error_grace
            return _grace(
                view,
                now,
                context,
                kind=FailureReason.CONFIG_ERROR,
                detail=detail,
                container=container.name,
                waiting_reason=reason,
                grace=grace,
                pod_since=_scheduled_at(view),
            )
    # Volume and sandbox trouble shows only as ContainerCreating plus Events: bound it, unless an
    # init container is still doing legitimate work.
    if starting is not None and not any(c.running for c in view.init):
        waiting = starting.waiting or {}
        reason = str(waiting.get("reason") or "")
        detail = _container_message(
            starting.name,
            waiting,
            f"still {reason}: see the pod's Events (FailedMount, FailedCreatePodSandBox)",
        )
        return _grace(
            view,
            now,
            context,
            kind=FailureReason.START_TIMEOUT,
            detail=detail,
            container=starting.name,
            waiting_reason=reason,
            grace=settings.start_grace,
            pod_since=_scheduled_at(view),
        )
    cond = view.condition("PodScheduled")
    if cond is not None and cond.get("status") == "False" and cond.get("reason") == "Unschedulable":
        # The reason already says Unschedulable; the scheduler's message says why.
        detail = f"not scheduled: {cond.get('message', '')}".rstrip(": ")
        return _grace(
            view,
            now,
            context,
            kind=FailureReason.UNSCHEDULABLE,
            detail=detail,
            container=None,
            waiting_reason="Unschedulable",
            grace=settings.unschedulable_grace,
            pod_since=_timestamp(cond.get("lastTransitionTime")),
        )
    return None


def _grace(
    view: _PodView,
    now: datetime,
    context: PodContext,
    *,
    kind: FailureReason,
    detail: str,
    container: str | None,
    waiting_reason: str,
    grace: float | None,
    pod_since: datetime | None,
) -> PodObservation:
    """Fail ``kind`` once ``grace`` seconds passed since the trouble was first seen, else wait."""
    scheduled = view.condition("PodScheduled")
    phase = (
        PodPhase.SCHEDULED
        if scheduled is not None and scheduled.get("status") == "True"
        else PodPhase.PENDING
    )
    if grace is None:
        return PodObservation(phase, message=detail, container=container, waiting_reason=waiting_reason)
    since = context.waiting_since or pod_since or _timestamp(view.metadata.get("creationTimestamp")) or now
    if context.released_at is not None and context.released_at > since:
        since = context.released_at
    deadline = since + timedelta(seconds=grace)
    if now >= deadline:
        return _failed(kind, detail, container=container, stranded=True)
    return PodObservation(
        phase,
        message=detail,
        container=container,
        deadline=deadline,
        waiting_reason=waiting_reason,
        fails_as=kind,
    )


def _with_deadline(observation: PodObservation, timer: PodObservation | None) -> PodObservation:
    if timer is None or timer.deadline is None:
        return observation
    return replace(observation, deadline=timer.deadline)


def _failed(
    reason: FailureReason,
    message: str,
    *,
    exit_code: int | None = None,
    container: str | None = None,
    started: bool = False,
    stranded: bool = False,
) -> PodObservation:
    return PodObservation(
        PodPhase.FAILED, reason, message, exit_code, container, started=started, stranded=stranded
    )


def _exit_code(term: Mapping[str, Any] | None) -> int:
    """A terminated state's exit code; a missing or garbled one counts as a failure (-1)."""
    value = term.get("exitCode") if term is not None else None
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


def _is_oom(container: _Container) -> bool:
    term = container.terminated
    return term is not None and term.get("reason") == "OOMKilled"


def _started(main: _Container | None) -> bool:
    if main is None:
        return False
    term = main.terminated
    return main.running or (term is not None and bool(term.get("startedAt")))


def _deleting(view: _PodView) -> bool:
    return bool(view.metadata.get("deletionTimestamp"))


def _scheduled_at(view: _PodView) -> datetime | None:
    cond = view.condition("PodScheduled")
    if cond is not None and cond.get("status") == "True":
        return _timestamp(cond.get("lastTransitionTime"))
    return None


def _container_message(name: str, state: Mapping[str, Any], fallback: str) -> str:
    reason = str(state.get("reason") or "")
    message = str(state.get("message") or "").strip()
    parts = [p for p in (reason if reason != fallback else "", fallback, message) if p]
    return f"{name}: " + ": ".join(dict.fromkeys(parts))


def _pod_message(view: _PodView, fallback: str) -> str:
    return str(view.status.get("message") or "").strip() or fallback


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> Sequence[Mapping[str, Any]]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]

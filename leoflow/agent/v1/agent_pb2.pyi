from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskIdentity(_message.Message):
    __slots__ = ("pod_namespace", "pod_name", "pod_uid", "container", "dag", "run", "task", "attempt", "token", "agent_version")
    POD_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    POD_NAME_FIELD_NUMBER: _ClassVar[int]
    POD_UID_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    DAG_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    pod_namespace: str
    pod_name: str
    pod_uid: str
    container: str
    dag: str
    run: str
    task: str
    attempt: int
    token: str
    agent_version: str
    def __init__(self, pod_namespace: _Optional[str] = ..., pod_name: _Optional[str] = ..., pod_uid: _Optional[str] = ..., container: _Optional[str] = ..., dag: _Optional[str] = ..., run: _Optional[str] = ..., task: _Optional[str] = ..., attempt: _Optional[int] = ..., token: _Optional[str] = ..., agent_version: _Optional[str] = ...) -> None: ...

class WaitStartRequest(_message.Message):
    __slots__ = ("identity",)
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    identity: TaskIdentity
    def __init__(self, identity: _Optional[_Union[TaskIdentity, _Mapping]] = ...) -> None: ...

class WaitStartResponse(_message.Message):
    __slots__ = ("decision", "message")
    class Decision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        DECISION_UNSPECIFIED: _ClassVar[WaitStartResponse.Decision]
        DECISION_START: _ClassVar[WaitStartResponse.Decision]
        DECISION_CANCEL: _ClassVar[WaitStartResponse.Decision]
    DECISION_UNSPECIFIED: WaitStartResponse.Decision
    DECISION_START: WaitStartResponse.Decision
    DECISION_CANCEL: WaitStartResponse.Decision
    DECISION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    decision: WaitStartResponse.Decision
    message: str
    def __init__(self, decision: _Optional[_Union[WaitStartResponse.Decision, str]] = ..., message: _Optional[str] = ...) -> None: ...

class StartedRequest(_message.Message):
    __slots__ = ("identity", "command", "start_time_unix_ms")
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    START_TIME_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    identity: TaskIdentity
    command: _containers.RepeatedScalarFieldContainer[str]
    start_time_unix_ms: int
    def __init__(self, identity: _Optional[_Union[TaskIdentity, _Mapping]] = ..., command: _Optional[_Iterable[str]] = ..., start_time_unix_ms: _Optional[int] = ...) -> None: ...

class StartedResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("identity", "elapsed_ms")
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    identity: TaskIdentity
    elapsed_ms: int
    def __init__(self, identity: _Optional[_Union[TaskIdentity, _Mapping]] = ..., elapsed_ms: _Optional[int] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TerminatingRequest(_message.Message):
    __slots__ = ("identity", "signal")
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    identity: TaskIdentity
    signal: int
    def __init__(self, identity: _Optional[_Union[TaskIdentity, _Mapping]] = ..., signal: _Optional[int] = ...) -> None: ...

class TerminatingResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class OomEvidence(_message.Message):
    __slots__ = ("source", "oom_kill_before", "oom_kill_after", "oom_killed", "limit_hits")
    class Source(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        SOURCE_UNSPECIFIED: _ClassVar[OomEvidence.Source]
        SOURCE_NONE: _ClassVar[OomEvidence.Source]
        SOURCE_CGROUP_V2: _ClassVar[OomEvidence.Source]
        SOURCE_CGROUP_V1: _ClassVar[OomEvidence.Source]
    SOURCE_UNSPECIFIED: OomEvidence.Source
    SOURCE_NONE: OomEvidence.Source
    SOURCE_CGROUP_V2: OomEvidence.Source
    SOURCE_CGROUP_V1: OomEvidence.Source
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    OOM_KILL_BEFORE_FIELD_NUMBER: _ClassVar[int]
    OOM_KILL_AFTER_FIELD_NUMBER: _ClassVar[int]
    OOM_KILLED_FIELD_NUMBER: _ClassVar[int]
    LIMIT_HITS_FIELD_NUMBER: _ClassVar[int]
    source: OomEvidence.Source
    oom_kill_before: int
    oom_kill_after: int
    oom_killed: bool
    limit_hits: int
    def __init__(self, source: _Optional[_Union[OomEvidence.Source, str]] = ..., oom_kill_before: _Optional[int] = ..., oom_kill_after: _Optional[int] = ..., oom_killed: _Optional[bool] = ..., limit_hits: _Optional[int] = ...) -> None: ...

class FinishedRequest(_message.Message):
    __slots__ = ("identity", "exit_code", "signal", "duration_ms", "peak_rss_bytes", "oom", "outputs", "outputs_error", "agent_error", "end_time_unix_ms")
    class OutputsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bytes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    PEAK_RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    OOM_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_ERROR_FIELD_NUMBER: _ClassVar[int]
    AGENT_ERROR_FIELD_NUMBER: _ClassVar[int]
    END_TIME_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    identity: TaskIdentity
    exit_code: int
    signal: int
    duration_ms: int
    peak_rss_bytes: int
    oom: OomEvidence
    outputs: _containers.ScalarMap[str, bytes]
    outputs_error: str
    agent_error: str
    end_time_unix_ms: int
    def __init__(self, identity: _Optional[_Union[TaskIdentity, _Mapping]] = ..., exit_code: _Optional[int] = ..., signal: _Optional[int] = ..., duration_ms: _Optional[int] = ..., peak_rss_bytes: _Optional[int] = ..., oom: _Optional[_Union[OomEvidence, _Mapping]] = ..., outputs: _Optional[_Mapping[str, bytes]] = ..., outputs_error: _Optional[str] = ..., agent_error: _Optional[str] = ..., end_time_unix_ms: _Optional[int] = ...) -> None: ...

class FinishedResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

"""What a DAG author writes: the pydantic model of ``leoflow.yaml``.

The model is strict (no unknown fields, no silent type coercion of strings to booleans) because
every field a user misspells would otherwise be ignored without a word. Durations and quantities
are checked here; cross-field rules (cycles, references, templates) live in the compiler, which
needs the whole file. The compiled form the controller reads is in ``leoflow.spec.resources``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from leoflow.spec.fields import (
    MAX_ARGV_ITEMS,
    MAX_ENV_PER_TASK,
    MAX_FANOUT_ITEMS,
    MAX_HTTP_HEADERS,
    MAX_OUTPUTS_PER_TASK,
    MAX_PARAMS,
    MAX_REQUEST_TIMEOUT_SECONDS,
    MAX_RETRIES,
    MAX_TASKS,
    MAX_UPSTREAMS,
    DagName,
    DurationSeconds,
    GpuCount,
    HeaderName,
    HeaderValue,
    HttpStatus,
    Identifier,
    Image,
    Namespace,
    ObjectName,
    PokeInterval,
    Quantity,
    SensorTimeout,
    SensorUrl,
    TaskName,
    TaskTimeout,
    TemplatedObjectName,
    TemplateText,
    Text,
    untemplated,
)
from leoflow.spec.podmetadata import AnnotationKey, AnnotationValue, LabelKey, LabelValue

TriggerRule = Literal["all_success", "all_done", "all_failed", "one_success", "one_failed", "none_failed"]
ConcurrencyPolicy = Literal["Allow", "Forbid", "Replace"]
ParamType = Literal["string", "integer", "number", "boolean"]
Scalar = str | int | float | bool


def _literal_item(value: Scalar) -> Scalar:
    return untemplated(value) if isinstance(value, str) else value


LiteralItem = Annotated[Scalar, AfterValidator(_literal_item)]
"""A literal fan-out item is passed to ``{{ item }}`` as written, not rendered itself."""


class FileModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Schedule(FileModel):
    cron: Text
    timezone: Text = "UTC"
    catchup: bool = False
    concurrencyPolicy: ConcurrencyPolicy = "Allow"
    maxActiveRuns: int = Field(default=1, ge=1, le=1000)


class Param(FileModel):
    type: ParamType = "string"
    default: Scalar | None = None
    description: Text | None = None


class Resources(FileModel):
    """Requests; memory doubles as the limit (a pod above its request is OOM-killed, not throttled)."""

    cpu: Quantity | None = None
    memory: Quantity | None = None
    ephemeralStorage: Quantity | None = None
    gpu: GpuCount | None = None
    limits: ResourceLimits | None = None


class ResourceLimits(FileModel):
    cpu: Quantity | None = None
    memory: Quantity | None = None
    ephemeralStorage: Quantity | None = None


class SecretRef(FileModel):
    secret: ObjectName
    key: Text
    optional: bool = False


class ConfigMapRef(FileModel):
    configMap: ObjectName
    key: Text
    optional: bool = False


EnvValue = TemplateText | SecretRef | ConfigMapRef


class Toleration(FileModel):
    key: Text | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: Text | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    tolerationSeconds: int | None = None


class PodSettings(FileModel):
    """Fields a task inherits from ``defaults`` unless it sets them itself."""

    retries: int | None = Field(default=None, ge=0, le=MAX_RETRIES)
    retryDelay: DurationSeconds | None = None
    retryBackoff: float | None = Field(default=None, ge=1.0, le=10.0)
    maxRetryDelay: DurationSeconds | None = None
    timeout: TaskTimeout | None = None
    resources: Resources | None = None
    image: Image | None = None
    env: dict[str, EnvValue] | None = Field(default=None, max_length=MAX_ENV_PER_TASK)
    nodeSelector: dict[Text, Text] | None = None
    tolerations: list[Toleration] | None = None
    affinity: dict[str, Any] | None = None
    """A Kubernetes ``Affinity``, passed to the pod as written; the checks hold it to the schema."""
    serviceAccountName: ObjectName | None = None
    podLabels: dict[LabelKey, LabelValue] | None = None
    """Merged key by key over the defaults' labels."""
    podAnnotations: dict[AnnotationKey, AnnotationValue] | None = None
    """Merged key by key over the defaults' annotations; sized as a whole by the checks."""
    prestart: bool | Literal["auto"] | None = None
    """Create the task's pod while its upstreams still run; its agent holds the command until they
    finish, so the task starts within milliseconds of the last one ending. The pod holds its
    resource requests while it waits. Unset means ``auto``: every task that can, except those
    requesting GPUs or waiting on a sensor (the waiting pod would hold a second GPU for an
    upstream's whole run, or its requests for as long as the sensor waits)."""


class Defaults(PodSettings):
    pass


class FanOut(FileModel):
    """Map a task over ``items``: a literal list, or ``"{{ tasks.T.outputs.O }}"`` naming a list output."""

    items: list[LiteralItem] | TemplateText = Field(max_length=MAX_FANOUT_ITEMS)
    maxParallel: int | None = Field(default=None, ge=1, le=10_000)


class TimeSensor(FileModel):
    delay: DurationSeconds | None = None
    at: TemplateText | None = None


class HeaderFromSecret(FileModel):
    """An HTTP header value read from a Secret in the run's namespace when the sensor starts."""

    secret: TemplatedObjectName
    key: TemplateText
    prefix: HeaderValue = ""
    """Put in front of the Secret's value, e.g. ``"Bearer "``."""


RequestTimeout = Annotated[DurationSeconds, Field(ge=1, le=MAX_REQUEST_TIMEOUT_SECONDS)]


class HttpSensor(FileModel):
    url: SensorUrl
    method: Literal["GET", "HEAD", "POST"] = "GET"
    expectStatus: list[HttpStatus] = Field(default_factory=lambda: [200], min_length=1)
    jsonPath: TemplateText | None = None
    jsonValue: TemplateText | None = None
    headers: dict[HeaderName, HeaderValue] = Field(default_factory=dict, max_length=MAX_HTTP_HEADERS)
    headersFrom: dict[HeaderName, HeaderFromSecret] = Field(default_factory=dict, max_length=MAX_HTTP_HEADERS)
    requestTimeout: RequestTimeout | None = None

    @model_validator(mode="after")
    def _each_header_once(self) -> HttpSensor:
        seen: dict[str, str] = {}
        for where, names in (("headers", self.headers), ("headersFrom", self.headersFrom)):
            for name in names:
                first = seen.setdefault(name.lower(), f"{where}.{name}")
                if first != f"{where}.{name}":
                    raise ValueError(f"header '{name}' is set twice ({first} and {where}.{name})")
        return self


class KubernetesSensor(FileModel):
    apiVersion: TemplateText
    kind: TemplateText
    name: TemplatedObjectName
    namespace: TemplateText | None = None
    condition: TemplateText | None = None
    jsonPath: TemplateText | None = None
    jsonValue: TemplateText | None = None


class DagRunSensor(FileModel):
    dag: DagName
    namespace: Namespace | None = None
    """Where the other DAG's runs live; default: this run's namespace."""
    task: TaskName | None = None
    state: Literal["Succeeded", "Failed", "Cancelled"] = "Succeeded"
    logicalDate: TemplateText = "{{ logical_date }}"


class CommandSensor(FileModel):
    command: list[TemplateText] = Field(min_length=1, max_length=MAX_ARGV_ITEMS)
    args: list[TemplateText] | None = Field(default=None, max_length=MAX_ARGV_ITEMS)


class Sensor(FileModel):
    """Exactly one of the kinds; the sensors engine gives them meaning, the compiler checks the shape."""

    time: TimeSensor | None = None
    http: HttpSensor | None = None
    kubernetes: KubernetesSensor | None = None
    dagRun: DagRunSensor | None = None
    command: CommandSensor | None = None
    pokeInterval: PokeInterval = 30
    maxPokeInterval: PokeInterval = 600
    pokeBackoff: float | None = Field(default=None, ge=1.0, le=10.0)
    """After each "not yet" the wait grows by this factor, up to maxPokeInterval (default: none)."""
    timeout: SensorTimeout = 86_400
    softFail: bool = False

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> Sensor:
        kinds = [k for k in SENSOR_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"a sensor needs exactly one of {', '.join(SENSOR_KINDS)}; found {len(kinds)}")
        return self


SENSOR_KINDS = ("time", "http", "kubernetes", "dagRun", "command")


class Task(PodSettings):
    command: list[TemplateText] | None = Field(default=None, min_length=1, max_length=MAX_ARGV_ITEMS)
    args: list[TemplateText] | None = Field(default=None, max_length=MAX_ARGV_ITEMS)
    after: list[TaskName] = Field(default_factory=list, max_length=MAX_UPSTREAMS)
    trigger: TriggerRule = "all_success"
    outputs: list[Identifier] = Field(default_factory=list, max_length=MAX_OUTPUTS_PER_TASK)
    fanOut: FanOut | None = None
    sensor: Sensor | None = None
    description: Text | None = None

    @model_validator(mode="after")
    def _command_or_sensor(self) -> Task:
        if self.sensor is None and self.command is None:
            raise ValueError("a task needs a 'command' (or a 'sensor' block)")
        if self.sensor is not None and (self.command is not None or self.args is not None):
            raise ValueError("a sensor task runs no pod: remove 'command'/'args' or the 'sensor' block")
        return self


class DagFile(FileModel):
    """The whole ``leoflow.yaml``."""

    dag: DagName
    image: Image
    description: Text | None = None
    schedule: Schedule | None = None
    params: dict[Identifier, Param] = Field(default_factory=dict, max_length=MAX_PARAMS)
    defaults: Defaults = Field(default_factory=Defaults)
    tasks: dict[TaskName, Task] = Field(min_length=1, max_length=MAX_TASKS)


Resources.model_rebuild()

"""Value types shared by the leoflow.yaml model and the compiled resources.

Names, durations and resource quantities are validated in exactly one place so that the file,
the compiled DAG resource and the CRD schema agree on what is legal. Every limit a DAG author can
hit is a constant here and is documented in docs/leoflow-yaml.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

# A run name is `<dag>-<up to 22 chars>` and must fit a label value (63), so the DAG name gets 40.
MAX_DAG_NAME = 40
# Task names are label values (leoflow.io/task) and readable parts of pod names.
MAX_TASK_NAME = 48
MAX_IDENTIFIER = 63
MAX_TASKS = 10_000
MAX_PARAMS = 100
MAX_OUTPUTS_PER_TASK = 32
MAX_ENV_PER_TASK = 128
MAX_ARGV_ITEMS = 256
MAX_STRING = 16_384
MAX_FANOUT_ITEMS = 1_000
MAX_UPSTREAMS = 1_000
MAX_RETRIES = 100
MAX_DURATION_SECONDS = 30 * 24 * 3600
# etcd refuses objects over 1.5 MiB; the rest is room for metadata and managedFields.
MAX_RESOURCE_BYTES = 1_400_000
MAX_FILE_BYTES = 4 * 1_048_576
MAX_NESTING = 32
MAX_HTTP_HEADERS = 32
MAX_REQUEST_TIMEOUT_SECONDS = 600
MAX_YAML_NODES = 1_000_000

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_DURATION_PART = re.compile(r"(\d+)(d|h|m|s)")
_DURATION = re.compile(r"^(\d+(d|h|m|s))+$")
_UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
# RFC 9110 field names are tokens; values must not be able to start another header line.
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HEADER_VALUE_FORBIDDEN = re.compile(r"[\r\n\x00]")
QUANTITY = re.compile(r"^(\d+(\.\d+)?|\.\d+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|e\d+)?$")
_QUANTITY_SUFFIX: dict[str, int | Decimal] = {
    "": 1,
    "m": Decimal("0.001"),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    **{f"{p}i": 1024 ** (i + 1) for i, p in enumerate("KMGTPE")},
}
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
MAX_DNS_SUBDOMAIN = 253
# The image reference grammar of github.com/distribution/reference: an optional registry (which may
# have capitals and a port), a lowercase repository path, an optional tag and an optional digest.
_HOST_LABEL = r"[A-Za-z0-9](?:[-A-Za-z0-9]*[A-Za-z0-9])?"
_REGISTRY = rf"(?:{_HOST_LABEL}(?:\.{_HOST_LABEL})*(?::\d+)?/)"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REFERENCE = re.compile(
    rf"^{_REGISTRY}?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*(?::[\w][\w.-]{{0,127}})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)
TEMPLATED_FIELDS = "command, args, env values and sensor fields"
"""Where ``{{ }}`` is rendered when a run starts (docs/leoflow-yaml.md, Templates)."""


class SpelledInt(int):
    """An integer YAML 1.1 read from another form than plain decimal: ``1:30`` (sexagesimal, 90),
    ``0x10``, ``017`` (octal), ``1_000``. ``text`` is what the file says, so a duration can refuse
    a form that almost always means something else than the number YAML makes of it."""

    text: str

    def __new__(cls, value: int, text: str) -> SpelledInt:
        number = super().__new__(cls, value)
        number.text = text
        return number


def check_dns_label(value: str, max_length: int) -> str:
    if len(value) > max_length:
        raise ValueError(f"'{value}' is {len(value)} characters long; the maximum is {max_length}")
    if not DNS_LABEL.match(value):
        raise ValueError(
            f"'{value}' is not a DNS-1123 label: use lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return value


def _dag_name(value: str) -> str:
    return check_dns_label(value, MAX_DAG_NAME)


def _task_name(value: str) -> str:
    return check_dns_label(value, MAX_TASK_NAME)


def _namespace(value: str) -> str:
    return check_dns_label(value, 63)


def _header_name(value: str) -> str:
    if not HEADER_NAME.match(value):
        raise ValueError(
            f"'{value}' is not an HTTP header name: use letters, digits and '-' (e.g. X-Api-Key)"
        )
    return value


def _header_value(value: str) -> str:
    if _HEADER_VALUE_FORBIDDEN.search(value):
        raise ValueError("an HTTP header value cannot contain a line break or a NUL character")
    return _bounded_string(value)


def _identifier(value: str) -> str:
    if len(value) > MAX_IDENTIFIER or not IDENTIFIER.match(value):
        raise ValueError(f"'{value}' is not an identifier (letters, digits, '_'; at most {MAX_IDENTIFIER})")
    return value


def parse_duration(value: object) -> object:
    """``30s``, ``10m``, ``1h30m``, ``2d`` (or a bare number of seconds) to whole seconds."""
    if isinstance(value, bool):
        return value
    if isinstance(value, SpelledInt):
        raise ValueError(
            f"{value.text} is not a duration (YAML 1.1 reads it as the number {int(value)}): "
            "write a duration string such as 90s or 1h30m, or a plain number of seconds"
        )
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            seconds = int(text)
        elif _DURATION.match(text):
            seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
        else:
            raise ValueError(f"'{value}' is not a duration: write e.g. 30s, 10m, 1h30m or 2d")
    else:
        return value
    if not 0 <= seconds <= MAX_DURATION_SECONDS:
        raise ValueError(f"duration {value!r} is outside 0s..30d")
    return seconds


def parse_quantity(value: object) -> object:
    """A Kubernetes resource quantity (``500m``, ``512Mi``, ``2``), normalised to a string."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        value = repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, str) and not QUANTITY.match(value):
        raise ValueError(f"'{value}' is not a resource quantity: write e.g. 500m, 2, 512Mi or 1Gi")
    return value


def quantity_value(text: str) -> Decimal | None:
    """The number a quantity stands for (``500m`` is 0.5, ``1Ki`` 1024), or None if it is none."""
    match = QUANTITY.match(text)
    if match is None:
        return None
    number, suffix = Decimal(match.group(1)), match.group(3) or ""
    if suffix.startswith("e"):
        return number * Decimal(10) ** int(suffix[1:])
    return number * Decimal(_QUANTITY_SUFFIX[suffix])


def _bounded_string(value: str) -> str:
    if len(value) > MAX_STRING:
        raise ValueError(f"string is {len(value)} characters long; the maximum is {MAX_STRING}")
    return value


def untemplated(value: str, hint: str = "") -> str:
    """``value`` when it holds no ``{{``: only the fields in ``TEMPLATED_FIELDS`` are rendered, so
    a template anywhere else would reach the pod (or the scheduler) as literal text."""
    if "{{" in value:
        raise ValueError(f"templates are not supported here, only in {TEMPLATED_FIELDS}{hint or _PARAM_HINT}")
    return value


_PARAM_HINT = ': declare a param and use it there, e.g. env: {MODE: "{{ params.mode }}"}'
_IMAGE_TEMPLATE_HINT = (
    ": the image is fixed when the DAG is compiled, so write the tag out (CI can fill it in before "
    '`leoflow compile`), or pass the value as a param, e.g. env: {VERSION: "{{ params.version }}"}'
)


def _text(value: str) -> str:
    return untemplated(_bounded_string(value))


def _image(value: str) -> str:
    untemplated(_bounded_string(value), _IMAGE_TEMPLATE_HINT)
    if not IMAGE_REFERENCE.match(value):
        raise ValueError(
            f"'{value}' is not an image reference: write REGISTRY/REPOSITORY:TAG, e.g. "
            "registry.example.com/team/app:1.4.2 (the repository lowercase, the tag letters, digits, "
            "'_', '.' and '-', no spaces)"
        )
    return value


def _object_name(value: str) -> str:
    if len(value) > MAX_DNS_SUBDOMAIN or not DNS_SUBDOMAIN.match(value):
        raise ValueError(
            f"'{value}' is not a Kubernetes object name (a DNS-1123 subdomain): lowercase letters, "
            f"digits, '-' and '.', starting and ending with a letter or digit, at most {MAX_DNS_SUBDOMAIN}"
        )
    return value


def _templated_object_name(value: str) -> str:
    # A name with a template is checked by the controller once it is rendered.
    return value if "{{" in value else _object_name(value)


def _http_url(value: str) -> str:
    """The sensor engine's own check (``check_url``), unless a template supplies the scheme or host."""
    scheme, sep, rest = value.partition("://")
    if "{{" in (scheme if sep else value):
        return value
    if not sep or scheme.lower() not in ("http", "https") or not rest.split("/", 1)[0]:
        raise ValueError(
            f"'{value}' is not an absolute http:// or https:// URL, e.g. https://api.example.com/ready"
        )
    return value


def _whole_gpus(value: str) -> str:
    number = quantity_value(value)
    if number is not None and number != number.to_integral_value():
        raise ValueError(f"'{value}' GPUs: a GPU cannot be shared between pods, so ask for a whole number")
    return value


def _http_status(code: int) -> int:
    if not 100 <= code <= 599:
        raise ValueError(f"{code} is not an HTTP status code (100 to 599)")
    return code


def _positive(why: str) -> Callable[[int], int]:
    def check(seconds: int) -> int:
        if seconds < 1:
            raise ValueError(f"must be at least 1s: {why}")
        return seconds

    return check


DagName = Annotated[str, AfterValidator(_dag_name)]
TaskName = Annotated[str, AfterValidator(_task_name)]
Identifier = Annotated[str, AfterValidator(_identifier)]
DurationSeconds = Annotated[int, BeforeValidator(parse_duration)]
TaskTimeout = Annotated[
    DurationSeconds,
    AfterValidator(_positive("a timeout of 0 ends every attempt at once (leave 'timeout' out for none)")),
]
PokeInterval = Annotated[DurationSeconds, AfterValidator(_positive("0 would poke in a busy loop"))]
SensorTimeout = Annotated[
    DurationSeconds, AfterValidator(_positive("a sensor with timeout 0 times out before its first poke"))
]
Quantity = Annotated[str, BeforeValidator(parse_quantity)]
GpuCount = Annotated[Quantity, AfterValidator(_whole_gpus)]
Text = Annotated[str, AfterValidator(_text)]
"""A string the compiler passes on as written: a ``{{`` in it is refused."""
TemplateText = Annotated[str, AfterValidator(_bounded_string)]
"""A string rendered when a run starts: ``{{ params.x }}`` and the rest are resolved there."""
Image = Annotated[str, AfterValidator(_image)]
SensorUrl = Annotated[str, AfterValidator(_bounded_string), AfterValidator(_http_url)]
"""An HTTP sensor's URL; templates allowed."""
HttpStatus = Annotated[int, AfterValidator(_http_status)]
ObjectName = Annotated[str, AfterValidator(_text), AfterValidator(_object_name)]
"""The name of a Kubernetes object in the run's namespace (a Secret, a service account)."""
TemplatedObjectName = Annotated[str, AfterValidator(_bounded_string), AfterValidator(_templated_object_name)]
"""An object name a sensor reads: checked as written unless a template makes it at run time."""
Namespace = Annotated[str, AfterValidator(_namespace)]
HeaderName = Annotated[str, AfterValidator(_header_name)]
HeaderValue = Annotated[str, AfterValidator(_header_value)]

"""Value types shared by the leoflow.yaml model and the compiled resources.

Names, durations and resource quantities are validated in exactly one place so that the file,
the compiled DAG resource and the CRD schema agree on what is legal. Every limit a DAG author can
hit is a constant here and is documented in docs/leoflow-yaml.md.
"""

from __future__ import annotations

import re
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


def _bounded_string(value: str) -> str:
    if len(value) > MAX_STRING:
        raise ValueError(f"string is {len(value)} characters long; the maximum is {MAX_STRING}")
    return value


DagName = Annotated[str, AfterValidator(_dag_name)]
TaskName = Annotated[str, AfterValidator(_task_name)]
Identifier = Annotated[str, AfterValidator(_identifier)]
DurationSeconds = Annotated[int, BeforeValidator(parse_duration)]
Quantity = Annotated[str, BeforeValidator(parse_quantity)]
Text = Annotated[str, AfterValidator(_bounded_string)]
Namespace = Annotated[str, AfterValidator(_namespace)]
HeaderName = Annotated[str, AfterValidator(_header_name)]
HeaderValue = Annotated[str, AfterValidator(_header_value)]

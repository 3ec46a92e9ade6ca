"""Checks of flag values that several commands share, so one kind of value gets one rule and one
wording wherever it is typed. Each check returns the value it accepted or raises a usage error
that names the flag (``name``, which may also carry the environment variable it falls back to).
"""

from __future__ import annotations

import math
import re

from leoflow.cli import EXIT_USAGE, CommandError

MAX_PORT = 65535

# Kubernetes validates namespace names as RFC 1123 labels and Service names as RFC 1035 labels
# (which must also start with a letter); both are at most 63 characters.
_DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


def namespace(name: str, value: str) -> str:
    if not _DNS_1123_LABEL.match(value):
        raise CommandError(
            f"{name} {value!r} is not a valid namespace name (at most 63 lowercase letters, digits "
            "and '-', starting and ending with a letter or digit)",
            EXIT_USAGE,
        )
    return value


def service_name(name: str, value: str) -> str:
    if not _DNS_1035_LABEL.match(value):
        raise CommandError(
            f"{name} {value!r} is not a valid Service name (at most 63 lowercase letters, digits "
            "and '-', starting with a letter and ending with a letter or digit)",
            EXIT_USAGE,
        )
    return value


def port(name: str, value: str, *, lowest: int = 1) -> int:
    """``lowest=0`` where the OS may pick the port because the command reports the one it bound."""
    try:
        number = int(value)
    except ValueError:
        raise CommandError(f"{name} must be a port number, got {value!r}", EXIT_USAGE) from None
    if not lowest <= number <= MAX_PORT:
        raise CommandError(f"{name} must be a port between {lowest} and {MAX_PORT}, got {number}", EXIT_USAGE)
    return number


def host_port(name: str, value: str, *, lowest_port: int = 1) -> tuple[str, int]:
    """``HOST:PORT``, with an IPv6 host in brackets (``[::1]:9443``); returns the bare host."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host.strip("[]") or not (port_text.isascii() and port_text.isdigit()):
        raise CommandError(f"{name} must be HOST:PORT, got {value!r}", EXIT_USAGE)
    number = int(port_text)
    if not lowest_port <= number <= MAX_PORT:
        raise CommandError(
            f"{name} {value!r}: the port must be between {lowest_port} and {MAX_PORT}", EXIT_USAGE
        )
    return host.strip("[]"), number


def positive_seconds(name: str, value: float) -> float:
    # NaN compares false with everything and infinity never elapses: both would slip past `> 0`.
    if not (math.isfinite(value) and value > 0):
        raise CommandError(f"{name} must be a positive number of seconds, got {value:g}", EXIT_USAGE)
    return value

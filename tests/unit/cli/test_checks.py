"""The shared flag checks: what they accept is what the servers and Kubernetes accept."""

from __future__ import annotations

import pytest

from leoflow.cli import CommandError, checks


def test_host_port_takes_an_ipv6_host_in_brackets_and_returns_it_bare() -> None:
    assert checks.host_port("--x", "[::1]:9443") == ("::1", 9443)
    assert checks.host_port("--x", "leoflow-controller.ns.svc:9443") == ("leoflow-controller.ns.svc", 9443)


def test_port_zero_is_only_accepted_where_the_os_may_pick_the_port() -> None:
    assert checks.host_port("--x", "0.0.0.0:0", lowest_port=0) == ("0.0.0.0", 0)
    with pytest.raises(CommandError, match="the port must be between 1 and 65535"):
        checks.host_port("--x", "0.0.0.0:0")
    assert checks.port("--x", "65535") == 65535
    with pytest.raises(CommandError, match="must be a port between 1 and 65535, got 0"):
        checks.port("--x", "0")


@pytest.mark.parametrize("value", ["a", "a-1", "1a", "a" * 63])
def test_namespace_accepts_rfc_1123_labels(value: str) -> None:
    assert checks.namespace("--namespace", value) == value


@pytest.mark.parametrize("value", ["1a", "a-", "A", "a.b", "a" * 64])
def test_service_name_refuses_what_is_not_an_rfc_1035_label(value: str) -> None:
    with pytest.raises(CommandError, match="is not a valid Service name"):
        checks.service_name("--service", value)

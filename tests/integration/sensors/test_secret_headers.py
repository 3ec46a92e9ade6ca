"""Secret values for HTTP sensor headers, read from the real API server."""

from __future__ import annotations

from typing import Any

import pytest

from leoflow.controller.sensors import SecretReader, SecretUnavailable
from leoflow.dev.testing import ClusterHandle

pytestmark = pytest.mark.cluster


async def test_secret_values_are_read_and_cached_for_the_ttl(
    cluster: ClusterHandle, namespace: str, kube: Any
) -> None:
    now = [0.0]
    reader = SecretReader(kube, ttl=60, clock=lambda: now[0])
    cluster.kubectl("create", "secret", "generic", "api", "-n", namespace, "--from-literal=token=first")
    assert await reader(namespace, "api", "token") == "first"
    patch = '{"stringData": {"token": "second"}}'
    cluster.kubectl("patch", "secret", "api", "-n", namespace, "-p", patch)
    assert await reader(namespace, "api", "token") == "first", "cached"
    now[0] = 61
    assert await reader(namespace, "api", "token") == "second", "read again after the TTL"


async def test_a_missing_secret_or_key_is_permanent_and_named(
    cluster: ClusterHandle, namespace: str, kube: Any
) -> None:
    reader = SecretReader(kube)
    cluster.kubectl("create", "secret", "generic", "api", "-n", namespace, "--from-literal=token=x")
    with pytest.raises(
        SecretUnavailable, match=f"Secret {namespace}/api has no key 'password'"
    ) as missing_key:
        await reader(namespace, "api", "password")
    assert missing_key.value.permanent
    with pytest.raises(SecretUnavailable, match=f"Secret {namespace}/nope does not exist") as missing:
        await reader(namespace, "nope", "token")
    assert missing.value.permanent

"""The agent's init container declares CPU and memory only where the pod's own containers do, so
injecting a pod never changes its QoS class (and a BestEffort pod reserves nothing for the copy)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from leoflow.agent_inject import Injection, inject

from .pods import SETTINGS, container, pod

COMPUTE = ("cpu", "memory")


def qos_class(p: dict[str, Any]) -> str:
    """Kubernetes' rule (pkg/apis/core/helper/qos), for pods whose requests the API server has not
    yet defaulted from their limits."""
    containers = [*p["spec"]["containers"], *p["spec"].get("initContainers", [])]
    bounds = [
        (c.get("resources", {}).get("requests", {}), c.get("resources", {}).get("limits", {}))
        for c in containers
    ]
    if not any(r in requests or r in limits for requests, limits in bounds for r in COMPUTE):
        return "BestEffort"
    guaranteed = all(
        r in limits and requests.get(r, limits[r]) == limits[r]
        for requests, limits in bounds
        for r in COMPUTE
    )
    return "Guaranteed" if guaranteed else "Burstable"


def init_container(p: dict[str, Any]) -> dict[str, Any]:
    result = inject(p, SETTINGS)
    assert isinstance(result, Injection), result
    first: dict[str, Any] = result.pod["spec"]["initContainers"][0]
    assert first["name"] == "leoflow-agent-init"
    return first


def test_a_best_effort_pod_gets_an_init_container_without_resources() -> None:
    assert "resources" not in init_container(pod(container(command=["true"])))


def test_a_guaranteed_pod_gets_equal_cpu_and_memory_requests_and_limits() -> None:
    amounts = {"cpu": "1", "memory": "1Gi"}
    guaranteed = pod(container(command=["true"], resources={"requests": amounts, "limits": amounts}))
    assert init_container(guaranteed)["resources"] == {
        "requests": {"cpu": "100m", "memory": "32Mi"},
        "limits": {"cpu": "100m", "memory": "32Mi"},
    }


def test_only_the_resources_some_container_declares_are_declared_even_by_a_sidecar() -> None:
    sidecar = container("proxy", restartPolicy="Always", resources={"limits": {"memory": "64Mi"}})
    p = pod(container(command=["true"]), initContainers=[sidecar])
    assert init_container(p)["resources"] == {"requests": {"memory": "32Mi"}, "limits": {"memory": "32Mi"}}


amounts = st.dictionaries(st.sampled_from(COMPUTE), st.sampled_from(["100m", "1", "64Mi", "1Gi"]), max_size=2)
resources = st.fixed_dictionaries({}, optional={"requests": amounts, "limits": amounts})


@settings(max_examples=300, deadline=None)
@given(st.lists(resources, min_size=1, max_size=3), st.lists(resources, max_size=2))
def test_injection_never_changes_the_pods_qos_class(
    container_resources: list[dict[str, Any]], init_resources: list[dict[str, Any]]
) -> None:
    inits = [container(f"i{i}", command=["true"], resources=r) for i, r in enumerate(init_resources)]
    p = pod(
        *(container(f"c{i}", command=["true"], resources=r) for i, r in enumerate(container_resources)),
        initContainers=inits,
    )
    result = inject(p, SETTINGS)
    assert isinstance(result, Injection), result
    assert qos_class(result.pod) == qos_class(p)

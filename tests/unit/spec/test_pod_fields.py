"""Task settings the API server or the planner would refuse mid-run are compile errors instead:
a zero timeout, a limit below its request, a fractional GPU, a service account or image name
Kubernetes cannot take."""

from __future__ import annotations

import textwrap

import pytest

from leoflow.spec.compiler import compile_text
from tests.unit.spec.dagfiles import HEAD, only_problem, problems


@pytest.mark.parametrize("zero", ["0", "0s"])
def test_task_timeout_of_zero_is_refused_as_it_would_end_every_attempt(zero: str) -> None:
    p = only_problem(HEAD + f"tasks:\n  a: {{command: [x], timeout: {zero}}}\n")
    assert p.path == "tasks.a.timeout"
    assert p.message == (
        "must be at least 1s: a timeout of 0 ends every attempt at once (leave 'timeout' out for none)"
    )


def test_limit_below_request_is_refused_where_the_task_sets_either() -> None:
    text = HEAD + textwrap.dedent(
        """\
        defaults: {resources: {cpu: 500m, memory: 1Gi, limits: {cpu: 1, memory: 512Mi}}}
        tasks:
          raises-request: {command: [x], resources: {cpu: 2}}
          lowers-limit: {command: [x], resources: {limits: {cpu: 0.25}}}
          own-pair: {command: [x], resources: {cpu: 2, limits: {cpu: 1}}}
          fine: {command: [x], resources: {cpu: 2, limits: {cpu: 4}, memory: 256Mi}}
        """
    )
    refuse = "Kubernetes refuses such a pod; raise the limit or lower the request"
    assert [(p.path, p.message) for p in problems(text)] == [
        (
            "defaults.resources.limits.memory",
            f"the memory limit 512Mi is below the memory request 1Gi: {refuse}",
        ),
        (
            "tasks.raises-request.resources.cpu",
            f"the cpu request 2 is above the cpu limit 1 (from defaults): {refuse}",
        ),
        (
            "tasks.lowers-limit.resources.limits.cpu",
            f"the cpu limit 0.25 is below the cpu request 500m (from defaults): {refuse}",
        ),
        ("tasks.own-pair.resources.limits.cpu", f"the cpu limit 1 is below the cpu request 2: {refuse}"),
    ]


def test_fractional_gpu_is_refused() -> None:
    p = only_problem(HEAD + 'tasks:\n  a: {command: [x], resources: {gpu: "0.5"}}\n')
    assert p.path == "tasks.a.resources.gpu"
    assert "ask for a whole number" in p.message


def test_service_account_name_must_be_a_kubernetes_object_name() -> None:
    p = only_problem(HEAD + 'tasks:\n  a: {command: [x], serviceAccountName: "My SA"}\n')
    assert p.path == "tasks.a.serviceAccountName"
    assert p.message.startswith("'My SA' is not a Kubernetes object name (a DNS-1123 subdomain)")


@pytest.mark.parametrize("image", ["Registry/UPPER:tag with space", "etl:1 2", "UPPER:1", "a//b", "x:y:z"])
def test_image_that_is_not_an_image_reference_is_refused(image: str) -> None:
    p = only_problem(HEAD + f'tasks:\n  a: {{command: [x], image: "{image}"}}\n')
    assert p.path == "tasks.a.image"
    assert p.message.startswith(f"'{image}' is not an image reference"), p.message


@pytest.mark.parametrize(
    "image",
    [
        "busybox",
        "registry.example.com/etl:1.4.2",
        "localhost:5000/team/app_x:v1.0-rc.1",
        "Registry.Example.com/team/app@sha256:" + "a" * 64,
    ],
)
def test_image_references_docker_accepts_compile(image: str) -> None:
    spec = compile_text(HEAD + f'tasks:\n  a: {{command: [x], image: "{image}"}}\n').spec
    assert spec.profiles[spec.tasks[0].profile].image == image

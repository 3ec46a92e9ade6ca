"""Images that already hold the agent: no init container, no emptyDir for the binary, the command
wrapped with the image's own path; asked for by annotation or by the installation's index."""

from __future__ import annotations

import pytest

from leoflow.agent_inject import InjectionSettings
from leoflow.agent_inject.agentpath import for_image

from .pods import AGENT, SETTINGS, container, pod
from .test_mutation import denied, injected

IN_IMAGE = "/usr/local/bin/leoflow-agent"
INDEXED = InjectionSettings(
    agent_image=SETTINGS.agent_image,
    controller_addr=SETTINGS.controller_addr,
    agent_in_image={"registry.local/dags/": IN_IMAGE, "registry.local/dags/etl:": "/opt/agent/leoflow-agent"},
)


def annotated(*containers: dict, path: object = IN_IMAGE, **extra: object) -> dict:
    return pod(*containers, metadata={"annotations": {"leoflow.io/agent-path": path}}, **extra)


def volume_names(p: dict) -> list[str]:
    return [v["name"] for v in p["spec"].get("volumes", [])]


def test_annotated_pod_gets_no_init_container_and_no_binary_volume() -> None:
    result = injected(annotated(container(command=["/bin/app"], args=["serve"])))
    spec = result.pod["spec"]
    assert "initContainers" not in spec
    assert volume_names(result.pod) == ["leoflow-identity", "leoflow-outputs"]
    (main,) = spec["containers"]
    assert main["command"] == [IN_IMAGE, "run", "--", "/bin/app", "serve"]
    assert [m["name"] for m in main["volumeMounts"]] == ["leoflow-identity", "leoflow-outputs"]
    assert not any(op["path"].startswith("/spec/initContainers") for op in result.patch)


def test_the_only_empty_dir_left_is_the_outputs_directory() -> None:
    result = injected(annotated(container(command=["x"])))
    empty_dirs = [v["name"] for v in result.pod["spec"]["volumes"] if "emptyDir" in v]
    assert empty_dirs == ["leoflow-outputs"]


def test_annotated_pod_keeps_the_agent_env_token_and_version() -> None:
    result = injected(annotated(container(command=["x"])))
    env = {e["name"] for e in result.pod["spec"]["containers"][0]["env"]}
    assert env == {"LEOFLOW_CONTROLLER_ADDR", "LEOFLOW_CONTAINER"}
    volumes = {v["name"]: v for v in result.pod["spec"]["volumes"]}
    sources = volumes["leoflow-identity"]["projected"]["sources"]
    assert sources[0]["serviceAccountToken"]["audience"] == "leoflow"
    assert "downwardAPI" in sources[1]
    annotations = result.pod["metadata"]["annotations"]
    assert annotations["leoflow.io/agent-version"] == SETTINGS.agent_version
    assert annotations["leoflow.io/agent-path"] == IN_IMAGE


def test_user_init_containers_stay_and_none_is_added() -> None:
    setup = {"name": "setup", "image": "busybox", "command": ["true"]}
    result = injected(annotated(container(command=["x"]), initContainers=[setup]))
    assert result.pod["spec"]["initContainers"] == [setup]


def test_annotated_pod_mutated_again_changes_nothing() -> None:
    once = injected(annotated(container(command=["x"]), container("side", command=["y"])))
    twice = injected(once.pod)
    assert twice.patch == []
    del once.pod["metadata"]["annotations"]["leoflow.io/agent-version"]
    again = injected(once.pod)
    assert [op["path"] for op in again.patch] == ["/metadata/annotations/leoflow.io~1agent-version"]


def test_the_annotation_applies_to_selected_containers_only() -> None:
    p = annotated(container("a", command=["x"]), container("b", command=["y"]))
    p["metadata"]["annotations"]["leoflow.io/containers"] = "a"
    a, b = injected(p).pod["spec"]["containers"]
    assert a["command"][:3] == [IN_IMAGE, "run", "--"]
    assert b == container("b", command=["y"])


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("usr/local/bin/leoflow-agent", "is not absolute"),
        ("/usr/local/bin/../bin/leoflow-agent", "is not clean (write '/usr/local/bin/leoflow-agent')"),
        ("/usr/local//bin/leoflow-agent", "is not clean"),
        ("//usr/leoflow-agent", "is not clean (write '/usr/leoflow-agent')"),
        ("/usr/local/bin/", "is not clean"),
        ("/usr/local/bin/leoflow agent", "contains whitespace"),
        ("/usr/bin/leoflow-agent\n", "contains whitespace"),
        ("", "is empty"),
        ("/", "names the root directory"),
        ("/leoflow/outputs/leoflow-agent", "is under /leoflow/outputs, where the agent's own volume"),
        ("/leoflow/bin/leoflow-agent", "is under /leoflow/bin"),
        (7, "is not a string"),
    ],
)
def test_a_bad_agent_path_annotation_is_denied_saying_what_to_write(path: object, reason: str) -> None:
    message = denied(annotated(container(command=["x"]), path=path))
    assert message.startswith(f"annotation leoflow.io/agent-path: {path!r} {reason}")
    assert "e.g. leoflow.io/agent-path: /usr/local/bin/leoflow-agent" in message


def test_the_index_puts_the_agent_in_image_by_the_longest_prefix() -> None:
    p = pod(
        container("plain", image="registry.local/dags/report:3", command=["r"]),
        container("etl", image="registry.local/dags/etl:7", command=["e"]),
    )
    plain, etl = injected(p, INDEXED).pod["spec"]["containers"]
    assert plain["command"][:3] == [IN_IMAGE, "run", "--"]
    assert etl["command"][:3] == ["/opt/agent/leoflow-agent", "run", "--"]
    assert "initContainers" not in injected(p, INDEXED).pod["spec"]


def test_a_pod_mixing_indexed_and_other_images_gets_the_copy_for_the_others_only() -> None:
    p = pod(
        container("indexed", image="registry.local/dags/report:3", command=["r"]),
        container("other", image="busybox:1.37", command=["o"]),
    )
    result = injected(p, INDEXED)
    indexed, other = result.pod["spec"]["containers"]
    assert indexed["command"][:1] == [IN_IMAGE]
    assert "leoflow-agent" not in [m["name"] for m in indexed["volumeMounts"]]
    assert other["command"][:1] == [AGENT]
    assert "leoflow-agent" in [m["name"] for m in other["volumeMounts"]]
    assert [c["name"] for c in result.pod["spec"]["initContainers"]] == ["leoflow-agent-init"]
    assert injected(result.pod, INDEXED).patch == []


def test_the_annotation_wins_over_the_index() -> None:
    p = annotated(container(image="registry.local/dags/etl:7", command=["e"]), path="/agent/leoflow-agent")
    (main,) = injected(p, INDEXED).pod["spec"]["containers"]
    assert main["command"][:1] == ["/agent/leoflow-agent"]


def test_without_annotation_or_index_entry_the_agent_is_copied_as_before() -> None:
    result = injected(pod(container(image="registry.local/other:1", command=["x"])), INDEXED)
    assert result.pod["spec"]["initContainers"][0]["name"] == "leoflow-agent-init"
    assert result.pod["spec"]["containers"][0]["command"][:1] == [AGENT]


def test_index_lookup_prefers_the_longest_prefix_and_misses_cleanly() -> None:
    index = {"a/": "/x", "a/b:": "/y"}
    assert for_image(index, "a/b:1") == "/y"
    assert for_image(index, "a/c:1") == "/x"
    assert for_image(index, "b/a:1") is None


@pytest.mark.parametrize(
    ("index", "fragment"),
    [
        ({"": IN_IMAGE}, "an empty image prefix"),
        ({"r/": "bin/leoflow-agent"}, "agent_in_image entry r/=bin/leoflow-agent: the path is not absolute"),
        ({"r/": "/leoflow/outputs/a"}, "is under /leoflow/outputs"),
    ],
)
def test_settings_reject_an_index_entry_that_cannot_work(index: dict[str, str], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(")):
        InjectionSettings(agent_image="a", controller_addr="c:1", agent_in_image=index)


def test_unlabelled_annotated_pod_is_still_left_alone() -> None:
    p = annotated(container(command=["x"]), labels={})
    result = injected(p)
    assert result.patch == []
    assert result.pod == p

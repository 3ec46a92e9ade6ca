"""Property tests: whatever shape an opted-in pod has, the patch reproduces the mutation, and a
second mutation changes nothing."""

from __future__ import annotations

import copy
import posixpath
from typing import Any

import jsonpatch
from hypothesis import given, settings
from hypothesis import strategies as st

from leoflow.agent_inject import Denial, Injection, inject
from leoflow.agent_inject.fragments import Fragments

from .pods import AGENT, SETTINGS

# Env values the injected pod itself implies (what an earlier version of the mutation set).
OWN_VALUES = {
    "LEOFLOW_CONTROLLER_ADDR": SETTINGS.controller_addr,
    "LEOFLOW_TOKEN_FILE": SETTINGS.token_file,
    "LEOFLOW_OUTPUTS_DIR": SETTINGS.outputs_dir,
}
DERIVED = {"LEOFLOW_TOKEN_FILE", "LEOFLOW_OUTPUTS_DIR", "LEOFLOW_RUN"}

# Keys and values that stress JSON Pointer escaping and ordinary label syntax alike.
keys = st.text(alphabet="ab/~.-_01", min_size=1, max_size=12)
words = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)
argv = st.lists(words, min_size=1, max_size=4)


@st.composite
def containers(draw: st.DrawFn, name: str) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "image": draw(st.sampled_from(["busybox", "app:1", "nginx:1.27"]))}
    shape = draw(st.sampled_from(["command", "command+args", "args", "neither"]))
    if "command" in shape:
        c["command"] = draw(argv)
    if shape in ("command+args", "args"):
        c["args"] = draw(argv)
    if draw(st.booleans()):
        # Ours (replaced), what the agent takes from the pod (removed unless it is the pod's own
        # value), and the user's own.
        c["env"] = [
            {"name": n, "value": draw(st.sampled_from(["v", OWN_VALUES.get(n, "v")]))}
            for n in draw(st.lists(st.sampled_from(["A", "B", *OWN_VALUES, "LEOFLOW_RUN"]), unique=True))
        ]
    if draw(st.booleans()):
        c["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    return c


@st.composite
def pods(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(
        st.lists(st.sampled_from(["main", "side", "a~b", "x/y"]), min_size=1, max_size=3, unique=True)
    )
    metadata: dict[str, Any] = {"labels": {"leoflow.io/inject": "true"}}
    annotations = draw(st.dictionaries(keys, words, max_size=3))
    if draw(st.booleans()):
        annotations["leoflow.io/entrypoint"] = draw(st.sampled_from(['["/entry"]', '{"main": ["/m", "-v"]}']))
    if annotations or draw(st.booleans()):
        metadata["annotations"] = annotations
    metadata["labels"].update(draw(st.dictionaries(keys, words, max_size=2)))
    metadata["labels"]["leoflow.io/inject"] = "true"
    spec: dict[str, Any] = {"containers": [draw(containers(n)) for n in names]}
    inits = []
    if draw(st.booleans()):
        inits.append({"name": "proxy", "image": "envoy", "restartPolicy": "Always"})
    if draw(st.booleans()):
        inits.append({"name": "setup", "image": "busybox", "command": ["true"]})
    if inits or draw(st.booleans()):
        spec["initContainers"] = inits
    if draw(st.booleans()):
        spec["volumes"] = [{"name": "data", "emptyDir": {}}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


@settings(max_examples=300, deadline=None)
@given(pods())
def test_patch_applied_to_the_pod_gives_the_mutated_pod_and_the_pod_is_left_as_it_came(
    pod: dict[str, Any],
) -> None:
    received = copy.deepcopy(pod)
    result = inject(pod, SETTINGS)
    assert pod == received, "the mutation wrote into the pod it was given"
    if isinstance(result, Denial):
        # Only a container without a command and without an entrypoint for it may be refused.
        assert "has no command" in result.message
        return
    assert jsonpatch.apply_patch(pod, result.patch) == result.pod


@settings(max_examples=300, deadline=None)
@given(pods())
def test_mutating_twice_equals_mutating_once_with_or_without_the_version_annotation(
    pod: dict[str, Any],
) -> None:
    once = inject(pod, SETTINGS)
    if isinstance(once, Denial):
        return
    twice = inject(once.pod, SETTINGS)
    assert isinstance(twice, Injection)
    assert twice.patch == []
    assert twice.pod == once.pod
    # Each step is idempotent on its own, too: only the annotation comes back.
    stripped = {**once.pod, "metadata": {**once.pod["metadata"]}}
    stripped["metadata"]["annotations"] = {
        k: v for k, v in once.pod["metadata"]["annotations"].items() if k != "leoflow.io/agent-version"
    }
    again = inject(stripped, SETTINGS)
    assert isinstance(again, Injection)
    assert again.pod == once.pod
    assert not any("env" in w for w in again.warnings)


@settings(max_examples=300, deadline=None)
@given(pods())
def test_mutations_never_write_into_the_fragments_every_mutated_pod_shares(pod: dict[str, Any]) -> None:
    once = inject(pod, SETTINGS)
    if isinstance(once, Denial):
        return
    stripped = copy.copy(once.pod)
    stripped["metadata"] = {**once.pod["metadata"], "annotations": {}}
    for again in (once.pod, stripped):
        inject(again, SETTINGS)
    jsonpatch.apply_patch(pod, once.patch)
    assert SETTINGS.fragments == Fragments.of(SETTINGS)


@settings(max_examples=300, deadline=None)
@given(pods())
def test_the_agent_hears_only_the_pods_own_identity(pod: dict[str, Any]) -> None:
    result = inject(pod, SETTINGS)
    if isinstance(result, Denial):
        return
    for c in result.pod["spec"]["containers"]:
        env = {e["name"]: e for e in c["env"]}
        assert len(env) == len(c["env"])
        assert env["LEOFLOW_CONTROLLER_ADDR"] == {
            "name": "LEOFLOW_CONTROLLER_ADDR",
            "value": SETTINGS.controller_addr,
        }
        assert env["LEOFLOW_CONTAINER"] == {"name": "LEOFLOW_CONTAINER", "value": c["name"]}
        for name in DERIVED & set(env):
            assert env[name]["value"] == OWN_VALUES[name]


@settings(max_examples=300, deadline=None)
@given(pods())
def test_every_wrapped_command_is_agent_then_the_original_argv(pod: dict[str, Any]) -> None:
    result = inject(pod, SETTINGS)
    if isinstance(result, Denial):
        return
    for before, after in zip(pod["spec"]["containers"], result.pod["spec"]["containers"], strict=True):
        assert after["command"][:3] == [AGENT, "run", "--"]
        assert "args" not in after
        if before.get("command"):
            assert after["command"][3:] == before["command"] + before.get("args", [])
    inits = result.pod["spec"]["initContainers"]
    assert inits[0]["name"] == "leoflow-agent-init"
    assert inits[1:] == pod["spec"].get("initContainers", [])


@settings(max_examples=200, deadline=None)
@given(pods(), st.sampled_from([{}, {"leoflow.io/inject": "false"}, {"other": "true"}]))
def test_pods_without_the_opt_in_label_are_unchanged(pod: dict[str, Any], labels: dict[str, str]) -> None:
    pod["metadata"]["labels"] = labels
    result = inject(pod, SETTINGS)
    assert isinstance(result, Injection)
    assert result.patch == []
    assert result.pod == pod


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=20,
)
container_fields = st.sampled_from(["command", "args", "env", "volumeMounts", "image", "name"])


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_arbitrary_json_under_spec_never_raises(spec: Any) -> None:
    pod = {"metadata": {"labels": {"leoflow.io/inject": "true"}}, "spec": spec}
    assert isinstance(inject(pod, SETTINGS), Injection | Denial)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(container_fields, json_values), st.dictionaries(keys, json_values, max_size=3))
def test_arbitrary_container_fields_and_annotations_never_raise(
    fields: dict[str, Any], annotations: Any
) -> None:
    container = {"name": "m", "command": ["x"], **fields}
    pod = {
        "metadata": {"labels": {"leoflow.io/inject": "true"}, "annotations": annotations},
        "spec": {"containers": [container]},
    }
    assert isinstance(inject(pod, SETTINGS), Injection | Denial)


# Paths an image might hold the agent at: clean ones, and every way the annotation can be wrong.
clean_paths = (
    st.lists(st.text(alphabet="abz-_.01", min_size=1, max_size=6), min_size=1, max_size=3)
    .map(lambda parts: "/" + "/".join(parts))
    .filter(lambda p: "/./" not in p + "/" and "/../" not in p + "/")
)
any_paths = clean_paths | st.text(alphabet="/ab. \t\n~", max_size=10)


@settings(max_examples=300, deadline=None)
@given(pods(), clean_paths)
def test_an_agent_path_annotation_wraps_with_it_and_adds_no_copy(pod: dict[str, Any], path: str) -> None:
    pod["metadata"].setdefault("annotations", {})["leoflow.io/agent-path"] = path
    result = inject(pod, SETTINGS)
    if isinstance(result, Denial):
        assert "has no command" in result.message
        return
    assert jsonpatch.apply_patch(pod, result.patch) == result.pod
    spec = result.pod["spec"]
    assert spec.get("initContainers") == pod["spec"].get("initContainers")
    assert "leoflow-agent" not in [v["name"] for v in spec["volumes"]]
    for before, after in zip(pod["spec"]["containers"], spec["containers"], strict=True):
        assert after["command"][:3] == [path, "run", "--"]
        if before.get("command"):
            assert after["command"][3:] == before["command"] + before.get("args", [])
        assert "leoflow-agent" not in [m["name"] for m in after["volumeMounts"]]
    twice = inject(result.pod, SETTINGS)
    assert isinstance(twice, Injection)
    assert twice.patch == []


@settings(max_examples=300, deadline=None)
@given(pods(), any_paths)
def test_any_agent_path_annotation_is_used_only_when_clean_and_absolute(
    pod: dict[str, Any], path: str
) -> None:
    pod["spec"]["containers"] = [{"name": "main", "image": "app:1", "command": ["x"]}]
    pod["metadata"].setdefault("annotations", {})["leoflow.io/agent-path"] = path
    result = inject(pod, SETTINGS)
    usable = (
        path.startswith("/")
        and not path.startswith("//")
        and posixpath.normpath(path) == path
        and path != "/"
        and not any(c.isspace() for c in path)
    )
    if usable:
        assert isinstance(result, Injection)
        assert result.pod["spec"]["containers"][0]["command"][0] == path
    else:
        assert isinstance(result, Denial)
        assert result.message.startswith(f"annotation leoflow.io/agent-path: {path!r} ")
        assert "write the absolute path of the leoflow-agent binary inside the image" in result.message

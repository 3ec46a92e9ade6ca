from __future__ import annotations

import json

import jsonpatch
import pytest

from leoflow.agent_inject import Denial, ImageEntrypoint, Injection, InjectionSettings, inject

from .pods import AGENT, SETTINGS, container, pod


def injected(p: dict, settings: InjectionSettings = SETTINGS) -> Injection:
    result = inject(p, settings)
    assert isinstance(result, Injection), result
    assert jsonpatch.apply_patch(p_without_managed_fields(p), result.patch) == result.pod
    return result


def p_without_managed_fields(p: dict) -> dict:
    copy = json.loads(json.dumps(p))
    copy.get("metadata", {}).pop("managedFields", None)
    return copy


def denied(p: dict, settings: InjectionSettings = SETTINGS) -> str:
    result = inject(p, settings)
    assert isinstance(result, Denial), result
    return result.message


def only_container(result: Injection) -> dict:
    (c,) = result.pod["spec"]["containers"]
    return c


def test_pod_without_the_label_is_never_touched() -> None:
    for labels in ({}, {"leoflow.io/inject": "false"}, {"leoflow.io/inject": "True"}):
        p = pod(container(command=["sleep", "1"]), labels=labels)
        result = injected(p)
        assert result.patch == []
        assert result.pod == p


def test_command_only_is_wrapped() -> None:
    c = only_container(injected(pod(container(command=["/bin/app", "serve"]))))
    assert c["command"] == [AGENT, "run", "--", "/bin/app", "serve"]
    assert "args" not in c


def test_command_and_args_move_into_the_wrapped_command() -> None:
    c = only_container(injected(pod(container(command=["sh", "-c"], args=["echo hi; exit 3"]))))
    assert c["command"] == [AGENT, "run", "--", "sh", "-c", "echo hi; exit 3"]
    assert "args" not in c


def test_args_only_with_annotation_list_follows_kubernetes_semantics() -> None:
    p = pod(
        container(args=["--port", "80"]),
        metadata={"annotations": {"leoflow.io/entrypoint": '["/docker-entrypoint.sh", "nginx"]'}},
    )
    c = only_container(injected(p))
    assert c["command"] == [AGENT, "run", "--", "/docker-entrypoint.sh", "nginx", "--port", "80"]


def test_annotation_object_form_chooses_per_container() -> None:
    p = pod(
        container("a"),
        container("b", command=["/b"]),
        metadata={"annotations": {"leoflow.io/entrypoint": '{"a": ["/a", "x"], "c": ["/c"]}'}},
    )
    a, b = injected(p).pod["spec"]["containers"]
    assert a["command"] == [AGENT, "run", "--", "/a", "x"]
    assert b["command"] == [AGENT, "run", "--", "/b"]


def test_neither_command_nor_args_is_denied_with_what_to_add() -> None:
    message = denied(pod(container("web", image="nginx:1.27")))
    assert 'container "web" (image "nginx:1.27") has no command' in message
    assert "command:" in message
    assert """leoflow.io/entrypoint: '{"web": ["<entrypoint>", ...]}'""" in message


def test_image_index_gives_entrypoint_plus_cmd_or_entrypoint_plus_args() -> None:
    settings = InjectionSettings(
        agent_image="a",
        controller_addr="c:1",
        image_entrypoints={
            "nginx:1.27": ImageEntrypoint(("/docker-entrypoint.sh",), ("nginx", "-g", "daemon off;"))
        },
    )
    bare = injected(pod(container(image="nginx:1.27")), settings)
    assert only_container(bare)["command"][3:] == ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]
    assert any("image index" in w for w in bare.warnings)
    with_args = injected(pod(container(image="nginx:1.27", args=["nginx", "-T"])), settings)
    assert only_container(with_args)["command"][3:] == ["/docker-entrypoint.sh", "nginx", "-T"]


def test_malformed_entrypoint_annotation_is_denied_naming_the_forms() -> None:
    for raw in ("not json", "[]", "[1]", '{"main": "sh"}', '"sh"'):
        p = pod(container(args=["x"]), metadata={"annotations": {"leoflow.io/entrypoint": raw}})
        assert "leoflow.io/entrypoint" in denied(p)


def test_containers_annotation_selects_which_are_wrapped() -> None:
    p = pod(
        container("a", command=["/a"]),
        container("b", command=["/b"]),
        container("sidecar"),
        metadata={"annotations": {"leoflow.io/containers": "a, b"}},
    )
    a, b, sidecar = injected(p).pod["spec"]["containers"]
    assert a["command"][0] == AGENT and b["command"][0] == AGENT
    assert sidecar == container("sidecar")


def test_containers_annotation_naming_unknown_container_is_denied() -> None:
    p = pod(container("a", command=["/a"]), metadata={"annotations": {"leoflow.io/containers": "a,zz"}})
    assert "names zz, but the pod's containers are a" in denied(p)


def test_init_container_goes_first_and_native_sidecars_are_left_alone() -> None:
    sidecar = {"name": "proxy", "image": "envoy", "restartPolicy": "Always", "args": ["--x"]}
    user_init = {"name": "migrate", "image": "app", "command": ["/migrate"]}
    p = pod(container(command=["/app"]), initContainers=[sidecar, user_init])
    inits = injected(p).pod["spec"]["initContainers"]
    assert [i["name"] for i in inits] == ["leoflow-agent-init", "proxy", "migrate"]
    assert inits[1] == sidecar and inits[2] == user_init
    assert inits[0]["image"] == SETTINGS.agent_image
    assert inits[0]["command"] == ["/leoflow-agent", "install", SETTINGS.bin_dir]


def test_agent_init_container_reports_its_stderr_when_it_fails() -> None:
    inits = injected(pod(container(command=["/app"]))).pod["spec"]["initContainers"]
    assert inits[0]["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_missing_arrays_and_maps_are_created_by_the_patch() -> None:
    p = {
        "metadata": {"labels": {"leoflow.io/inject": "true"}},
        "spec": {"containers": [{"name": "m", "command": ["x"]}]},
    }
    result = injected(p)
    paths = {op["path"] for op in result.patch if op["op"] == "add"}
    assert {"/metadata/annotations", "/spec/initContainers", "/spec/volumes"} <= paths


def test_annotation_keys_with_slash_and_tilde_are_escaped() -> None:
    p = pod(container(command=["x"]), metadata={"annotations": {"a/b~c": "1"}})
    result = injected(p)
    assert {
        "op": "add",
        "path": "/metadata/annotations/leoflow.io~1agent-version",
        "value": "0.1.0",
    } in result.patch
    assert result.pod["metadata"]["annotations"]["a/b~c"] == "1"


def test_env_carries_the_agent_contract() -> None:
    env = {e["name"]: e for e in only_container(injected(pod(container(command=["x"]))))["env"]}
    assert env["LEOFLOW_CONTROLLER_ADDR"]["value"] == "10.0.0.1:9443"
    assert env["LEOFLOW_TOKEN_FILE"]["value"] == "/var/run/secrets/leoflow/token"
    assert env["LEOFLOW_CA_FILE"]["value"] == "/var/run/secrets/leoflow/ca.crt"
    assert env["LEOFLOW_OUTPUTS_DIR"]["value"] == SETTINGS.outputs_dir
    assert env["LEOFLOW_POD_UID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.uid"
    assert env["LEOFLOW_CONTAINER"]["value"] == "main"
    assert env["LEOFLOW_TASK"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['leoflow.io/task']"


def test_without_a_ca_configmap_the_agent_uses_system_roots() -> None:
    settings = InjectionSettings(agent_image="a", controller_addr="c:1", ca_configmap=None)
    result = injected(pod(container(command=["x"])), settings)
    assert "LEOFLOW_CA_FILE" not in {e["name"] for e in only_container(result)["env"]}
    volumes = {v["name"]: v for v in result.pod["spec"]["volumes"]}
    assert [list(s) for s in volumes["leoflow-identity"]["projected"]["sources"]] == [["serviceAccountToken"]]


def test_token_is_projected_with_the_leoflow_audience() -> None:
    volumes = {v["name"]: v for v in injected(pod(container(command=["x"]))).pod["spec"]["volumes"]}
    token = volumes["leoflow-identity"]["projected"]["sources"][0]["serviceAccountToken"]
    assert token == {"audience": "leoflow", "expirationSeconds": 3600, "path": "token"}
    assert volumes["leoflow-agent"] == {"name": "leoflow-agent", "emptyDir": {}}


def test_user_env_with_an_agent_name_is_replaced_with_a_warning() -> None:
    c = container(command=["x"], env=[{"name": "LEOFLOW_CONTROLLER_ADDR", "value": "elsewhere"}])
    result = injected(pod(c))
    env = only_container(result)["env"]
    assert [e["value"] for e in env if e["name"] == "LEOFLOW_CONTROLLER_ADDR"] == ["10.0.0.1:9443"]
    assert any("LEOFLOW_CONTROLLER_ADDR replaced" in w for w in result.warnings)


def test_mount_path_taken_by_user_volume_is_denied() -> None:
    c = container(command=["x"], volumeMounts=[{"name": "mine", "mountPath": SETTINGS.bin_dir}])
    assert 'already mounts volume "mine" at /leoflow/bin' in denied(pod(c))


def test_mutating_a_mutated_pod_changes_nothing() -> None:
    once = injected(pod(container(command=["x"], args=["y"]), initContainers=[{"name": "i", "image": "i"}]))
    twice = injected(once.pod)
    assert twice.patch == []
    assert twice.pod == once.pod


def test_every_step_is_idempotent_even_without_the_version_annotation() -> None:
    once = injected(pod(container(command=["x"])))
    del once.pod["metadata"]["annotations"]["leoflow.io/agent-version"]
    again = injected(once.pod)
    assert [op["path"] for op in again.patch] == ["/metadata/annotations/leoflow.io~1agent-version"]


def test_pod_from_another_agent_version_is_left_with_a_warning() -> None:
    p = pod(container(command=["x"]), metadata={"annotations": {"leoflow.io/agent-version": "0.0.1"}})
    result = injected(p)
    assert result.patch == []
    assert result.warnings == ("pod already carries the leoflow agent 0.0.1; left as it is",)


def test_managed_fields_are_not_diffed() -> None:
    p = pod(container(command=["x"]), metadata={"managedFields": [{"manager": "kubectl"}]})
    result = injected(p)
    assert not any(op["path"].startswith("/metadata/managedFields") for op in result.patch)


def test_identity_labels_absent_give_a_warning_and_present_give_none() -> None:
    labels = {
        "leoflow.io/inject": "true",
        "leoflow.io/dag": "d",
        "leoflow.io/run": "r",
        "leoflow.io/task": "t",
        "leoflow.io/attempt": "1",
    }
    assert injected(pod(container(command=["x"]), labels=labels)).warnings == ()
    assert "absent" in injected(pod(container(command=["x"]))).warnings[0]


@pytest.mark.parametrize(
    ("spec_patch", "fragment"),
    [
        ({"containers": "nope"}, "spec.containers must be a list"),
        ({"containers": []}, "spec.containers is empty"),
        ({"containers": [{"image": "x"}]}, "spec.containers[0] must be an object with a name"),
        ({"containers": [{"name": "m", "command": "x"}]}, 'container "m" command must be a list of strings'),
        ({"containers": [{"name": "m", "command": ["x"]}], "volumes": {}}, "spec.volumes must be a list"),
    ],
)
def test_malformed_pods_are_denied_not_crashed(spec_patch: dict, fragment: str) -> None:
    p = pod(container(command=["x"]))
    p["spec"].update(spec_patch)
    assert fragment in denied(p)


def test_settings_reject_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="token_expiry_seconds must be at least 600"):
        InjectionSettings(agent_image="a", controller_addr="c:1", token_expiry_seconds=60)
    with pytest.raises(ValueError, match="bin_dir must be a normalised absolute path"):
        InjectionSettings(agent_image="a", controller_addr="c:1", bin_dir="leoflow/bin")
    with pytest.raises(ValueError, match="agent_image"):
        InjectionSettings(agent_image=" ", controller_addr="c:1")

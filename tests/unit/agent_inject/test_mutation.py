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


def test_env_carries_only_what_the_pod_cannot_tell_the_agent() -> None:
    env = only_container(injected(pod(container(command=["x"]))))["env"]
    assert env == [
        {"name": "LEOFLOW_CONTROLLER_ADDR", "value": "10.0.0.1:9443"},
        {"name": "LEOFLOW_CONTAINER", "value": "main"},
    ]


def test_the_pods_identity_is_one_downward_api_source_beside_the_token_and_ca() -> None:
    volumes = {v["name"]: v for v in injected(pod(container(command=["x"]))).pod["spec"]["volumes"]}
    sources = volumes["leoflow-identity"]["projected"]["sources"]
    assert [list(s) for s in sources] == [["serviceAccountToken"], ["downwardAPI"], ["configMap"]]
    # The file names are a contract with the agent (agent/internal/podlayout).
    assert sources[1]["downwardAPI"]["items"] == [
        {"path": "pod-name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "pod-namespace", "fieldRef": {"fieldPath": "metadata.namespace"}},
        {"path": "pod-uid", "fieldRef": {"fieldPath": "metadata.uid"}},
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
    ]
    assert sources[2]["configMap"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]


def test_identity_volume_is_mounted_once_per_pod_whatever_the_number_of_containers() -> None:
    result = injected(pod(container("a", command=["x"]), container("b", command=["y"])))
    identity = [v for v in result.pod["spec"]["volumes"] if v["name"] == "leoflow-identity"]
    assert len(identity) == 1
    for c in result.pod["spec"]["containers"]:
        assert {"name": "leoflow-identity", "mountPath": SETTINGS.identity_dir, "readOnly": True} in c[
            "volumeMounts"
        ]
        assert [e["name"] for e in c["env"]] == ["LEOFLOW_CONTROLLER_ADDR", "LEOFLOW_CONTAINER"]


def test_directories_other_than_the_agents_defaults_reach_it_as_env() -> None:
    settings = InjectionSettings(
        agent_image="a", controller_addr="c:1", identity_dir="/etc/leoflow", outputs_dir="/out"
    )
    env = {
        e["name"]: e["value"]
        for e in only_container(injected(pod(container(command=["x"])), settings))["env"]
    }
    assert env == {
        "LEOFLOW_CONTROLLER_ADDR": "c:1",
        "LEOFLOW_IDENTITY_DIR": "/etc/leoflow",
        "LEOFLOW_OUTPUTS_DIR": "/out",
        "LEOFLOW_CONTAINER": "main",
    }


def test_without_a_ca_configmap_the_agent_uses_system_roots() -> None:
    settings = InjectionSettings(agent_image="a", controller_addr="c:1", ca_configmap=None)
    result = injected(pod(container(command=["x"])), settings)
    assert "LEOFLOW_CA_FILE" not in {e["name"] for e in only_container(result)["env"]}
    volumes = {v["name"]: v for v in result.pod["spec"]["volumes"]}
    sources = volumes["leoflow-identity"]["projected"]["sources"]
    assert [list(s) for s in sources] == [["serviceAccountToken"], ["downwardAPI"]]


def test_without_a_ca_configmap_a_containers_own_ca_file_stays() -> None:
    settings = InjectionSettings(agent_image="a", controller_addr="c:1", ca_configmap=None)
    mine = {"name": "LEOFLOW_CA_FILE", "value": "/etc/ssl/mine.pem"}
    result = injected(pod(container(command=["x"], env=[mine])), settings)
    assert mine in only_container(result)["env"]
    assert not any("env" in w for w in result.warnings)


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


def test_user_env_overriding_what_the_agent_takes_from_the_pod_is_removed_with_a_warning() -> None:
    theirs = [
        {"name": "LEOFLOW_TASK", "value": "not-this-pods-task"},
        {"name": "KEEP", "value": "1"},
        {"name": "LEOFLOW_OUTPUTS_DIR", "value": "/tmp/out"},
    ]
    result = injected(pod(container(command=["x"], env=theirs)))
    assert [e["name"] for e in only_container(result)["env"]] == [
        "KEEP",
        "LEOFLOW_CONTROLLER_ADDR",
        "LEOFLOW_CONTAINER",
    ]
    assert sorted(w for w in result.warnings if "removed" in w) == [
        'container "main": env LEOFLOW_OUTPUTS_DIR removed: the agent takes it from the pod',
        'container "main": env LEOFLOW_TASK removed: the agent takes it from the pod',
    ]
    assert jsonpatch.apply_patch(pod(container(command=["x"], env=theirs)), result.patch) == result.pod


# What the previous version of the mutation gave each wrapped container, as the API server
# passes it on (with fieldRef.apiVersion defaulted).
def _field(path: str) -> dict:
    return {"valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}


EARLIER_ENV = [
    {"name": "LEOFLOW_CONTROLLER_ADDR", "value": "10.0.0.1:9443"},
    {"name": "LEOFLOW_CA_FILE", "value": "/var/run/secrets/leoflow/ca.crt"},
    {"name": "LEOFLOW_TOKEN_FILE", "value": "/var/run/secrets/leoflow/token"},
    {"name": "LEOFLOW_OUTPUTS_DIR", "value": "/leoflow/outputs"},
    {"name": "LEOFLOW_POD_NAME", **_field("metadata.name")},
    {"name": "LEOFLOW_POD_NAMESPACE", **_field("metadata.namespace")},
    {"name": "LEOFLOW_POD_UID", **_field("metadata.uid")},
    {"name": "LEOFLOW_CONTAINER", "value": "main"},
    {"name": "LEOFLOW_DAG", **_field("metadata.labels['leoflow.io/dag']")},
    {"name": "LEOFLOW_RUN", **_field("metadata.labels['leoflow.io/run']")},
    {"name": "LEOFLOW_TASK", **_field("metadata.labels['leoflow.io/task']")},
    {"name": "LEOFLOW_ATTEMPT", **_field("metadata.labels['leoflow.io/attempt']")},
]


def test_a_pod_injected_by_the_earlier_version_is_left_as_it_is() -> None:
    earlier = pod(
        container(command=[AGENT, "run", "--", "x"], env=EARLIER_ENV),
        metadata={"annotations": {"leoflow.io/agent-version": SETTINGS.agent_version}},
    )
    result = injected(earlier)
    assert result.patch == []
    assert result.pod == earlier
    assert result.pod["spec"] is earlier["spec"], "not copied (and then diffed whole) for nothing"


def test_the_earlier_versions_env_without_its_annotation_still_names_this_pod() -> None:
    # Its identity volume has no downwardAPI source and is not replaced (volumes are added by
    # name), so the earlier env, which the agent prefers, must stay: it is the pod's own word.
    earlier = pod(
        container(command=[AGENT, "run", "--", "x"], env=EARLIER_ENV),
        volumes=[{"name": "leoflow-identity", "projected": {"sources": []}}],
    )
    result = injected(earlier)
    assert only_container(result)["env"] == EARLIER_ENV
    assert not any("env" in w for w in result.warnings)


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

"""The local image builder: archives containerd can import, with digests that agree with the bytes."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from leoflow.dev import images


def _members(archive: bytes) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                extracted = tar.extractfile(member)
                assert extracted is not None
                out[member.name] = extracted.read()
    return out


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _spec(tag: str = "leoflow.dev/test:1") -> images.ImageSpec:
    return images.ImageSpec(
        tag=tag,
        files={
            "bin/tool": images.file_entry(b"#!/bin/sh\necho hi\n", 0o755),
            "etc/conf/app.json": images.file_entry(b"{}"),
            "bin/alias": images.symlink_entry("/bin/tool"),
        },
        entrypoint=("/bin/tool",),
        cmd=("--flag",),
    )


def test_manifest_config_and_layer_digests_match_their_bytes() -> None:
    archive, config_digest, layer_digest = images.archive_bytes(_spec())
    members = _members(archive)
    (manifest,) = json.loads(members["manifest.json"])
    assert manifest["RepoTags"] == ["leoflow.dev/test:1"]
    config_bytes = members[manifest["Config"]]
    assert _sha(config_bytes) == config_digest
    assert manifest["Config"] == config_digest.removeprefix("sha256:") + ".json"
    (layer_name,) = manifest["Layers"]
    assert _sha(members[layer_name]) == layer_digest
    config = json.loads(config_bytes)
    assert config["rootfs"] == {"type": "layers", "diff_ids": [layer_digest]}
    assert config["config"]["Entrypoint"] == ["/bin/tool"]
    assert config["config"]["Cmd"] == ["--flag"]
    assert config["os"] == "linux"


def test_layer_holds_files_with_modes_parent_dirs_and_symlinks() -> None:
    layer = images.layer_tar(_spec().files)
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert list(members) == sorted(members)
        assert members["bin"].isdir()
        assert members["etc/conf"].isdir()
        tool = members["bin/tool"]
        assert tool.isfile() and tool.mode == 0o755 and tool.uid == 0 and tool.mtime == 0
        extracted = tar.extractfile(tool)
        assert extracted is not None and extracted.read() == b"#!/bin/sh\necho hi\n"
        assert members["bin/alias"].issym() and members["bin/alias"].linkname == "/bin/tool"


def test_same_inputs_give_the_same_digests_and_different_inputs_do_not() -> None:
    first = images.archive_bytes(_spec())
    assert images.archive_bytes(_spec()) == first
    changed = images.ImageSpec(
        tag="leoflow.dev/test:1", files={"bin/tool": images.file_entry(b"other", 0o755)}
    )
    assert images.archive_bytes(changed)[1] != first[1]


def test_build_image_caches_by_content_hash(tmp_path: Path) -> None:
    built = images.build_image(_spec(), cache=tmp_path)
    assert built.path.parent == tmp_path
    assert built.config_digest.removeprefix("sha256:")[:16] in built.path.name
    mtime = built.path.stat().st_mtime_ns
    again = images.build_image(_spec(), cache=tmp_path)
    assert again == built and again.path.stat().st_mtime_ns == mtime
    assert list(tmp_path.iterdir()) == [built.path]


def test_directory_input_keeps_tree_modes_and_links(tmp_path: Path) -> None:
    root = tmp_path / "ctx"
    (root / "app" / "lib").mkdir(parents=True)
    (root / "app" / "run.sh").write_text("echo run\n")
    (root / "app" / "run.sh").chmod(0o750)
    (root / "app" / "lib" / "data.txt").write_text("data")
    (root / "app" / "current").symlink_to("run.sh")
    files = images.files_from_directory(root)
    assert set(files) == {"app", "app/lib", "app/run.sh", "app/lib/data.txt", "app/current"}
    assert files["app/run.sh"].mode == 0o750
    assert files["app/current"].kind == "symlink" and files["app/current"].target == "run.sh"
    with tarfile.open(fileobj=io.BytesIO(images.layer_tar(files))) as tar:
        data = tar.extractfile("app/lib/data.txt")
        assert data is not None and data.read() == b"data"


def test_agent_image_is_the_binary_alone(tmp_path: Path) -> None:
    binary = tmp_path / "leoflow-agent"
    binary.write_bytes(b"\x7fELF fake static binary")
    spec = images.agent_spec(binary)
    with tarfile.open(fileobj=io.BytesIO(images.layer_tar(spec.files))) as tar:
        (member,) = tar.getmembers()
        assert member.name == "leoflow-agent" and member.mode == 0o755
    assert tuple(spec.entrypoint) == ("/leoflow-agent",)


@pytest.mark.parametrize("tag", ["busybox", "leoflow.dev/x", "Leoflow.dev/x:1", "leoflow.dev/x:", "a b:1"])
def test_tags_without_explicit_valid_tag_are_refused(tag: str) -> None:
    with pytest.raises(images.ImageError, match="not valid"):
        images.validate_tag(tag)


def test_paths_escaping_the_image_are_refused() -> None:
    with pytest.raises(images.ImageError, match=r"\.\."):
        images.layer_tar({"../etc/passwd": images.file_entry(b"x")})


@pytest.mark.skipif(
    not images.BUSYBOX.is_file(), reason="busybox-static not installed (hack/apt-packages.sh)"
)
def test_base_image_has_busybox_and_applet_links() -> None:
    files = images.base_spec().files
    assert files["bin/busybox"].kind == "file"
    assert files["bin/sh"].kind == "symlink" and files["bin/sh"].target == "/bin/busybox"
    assert files["tmp"].mode == 0o1777


@pytest.mark.skipif(
    not images.BUSYBOX.is_file(), reason="busybox-static not installed (hack/apt-packages.sh)"
)
def test_base_with_agent_image_holds_the_base_and_the_agent_where_the_docs_copy_it(tmp_path: Path) -> None:
    binary = tmp_path / "leoflow-agent"
    binary.write_bytes(b"\x7fELF fake static binary")
    spec = images.base_with_agent_spec(binary)
    agent = spec.files["/usr/local/bin/leoflow-agent"]
    assert agent.content() == binary.read_bytes() and agent.mode == 0o755
    assert set(images.base_spec().files) < set(spec.files)
    assert spec.tag == images.BASE_WITH_AGENT_IMAGE

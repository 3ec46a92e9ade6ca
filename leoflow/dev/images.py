"""Container images for the dev cluster, built locally in pure Python: no Docker, no registry.

The real node cannot pull anything (no traffic leaves the machine), so every image it runs is
built here as a docker-archive tarball (``manifest.json`` + config + one layer, the format of
``docker save``) and imported into containerd's ``k8s.io`` namespace with ``ctr``. Layers are
written deterministically (sorted entries, zero mtimes, root ownership), so the same inputs give
the same digests and a built tarball is cached under ``$LEOFLOW_CACHE/images`` by content hash.

Images: ``leoflow.dev/base:1`` (busybox-static and its applet links), ``leoflow.dev/pause:1`` (the
pod sandbox: a busybox shell that sleeps and reaps until SIGTERM), the agent image (the static
``leoflow-agent`` binary alone at ``/leoflow-agent``), and the base image with the agent inside at
``/usr/local/bin/leoflow-agent`` (what a user's ``COPY --from=<agent image>`` makes, for pods that
need no init container to copy the agent).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

BASE_IMAGE = "leoflow.dev/base:1"
PAUSE_IMAGE = "leoflow.dev/pause:1"
AGENT_IMAGE = "leoflow.dev/agent:dev"
BASE_WITH_AGENT_IMAGE = "leoflow.dev/base-agent:dev"
AGENT_IN_IMAGE_PATH = "/usr/local/bin/leoflow-agent"
BUSYBOX = Path("/bin/busybox")
CONTAINERD_NAMESPACE = "k8s.io"

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_TAG_RE = re.compile(
    r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*:[\w][\w.-]{0,127}$"
)
# The sandbox process: PID 1 of the pod that only waits. ``wait`` reaps any zombie re-parented to
# it, and the trap makes SIGTERM end it (PID 1 ignores signals it has no handler for).
_PAUSE_SCRIPT = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait; done"


class ImageError(RuntimeError):
    """An image could not be built or imported; the message says which input or command failed."""


@dataclass(frozen=True)
class Entry:
    """One filesystem entry of a layer: a regular file (``data``), a directory, or a symlink."""

    kind: str  # "file", "dir" or "symlink"
    mode: int = 0o644
    data: bytes = b""
    source: Path | None = None
    target: str = ""

    def content(self) -> bytes:
        if self.source is not None:
            return self.source.read_bytes()
        return self.data


def file_entry(data: bytes, mode: int = 0o644) -> Entry:
    return Entry(kind="file", mode=mode, data=data)


def source_entry(source: Path, mode: int | None = None) -> Entry:
    """A file copied from the host (read at build time), keeping its mode unless ``mode`` is given."""
    if not source.is_file():
        raise ImageError(f"{source}: not a regular file")
    return Entry(
        kind="file", mode=stat.S_IMODE(source.stat().st_mode) if mode is None else mode, source=source
    )


def dir_entry(mode: int = 0o755) -> Entry:
    return Entry(kind="dir", mode=mode)


def symlink_entry(target: str) -> Entry:
    return Entry(kind="symlink", mode=0o777, target=target)


@dataclass(frozen=True)
class ImageSpec:
    """What to build: the image name, its single layer (path in image -> entry) and its config."""

    tag: str
    files: Mapping[str, Entry]
    entrypoint: Sequence[str] = ()
    cmd: Sequence[str] = ()
    env: Sequence[str] = (PATH_ENV,)
    workdir: str = "/"
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BuiltImage:
    """A built docker-archive tarball and the digests that identify it."""

    tag: str
    path: Path
    config_digest: str  # sha256:<hex> of the config JSON: the image id containerd shows
    layer_digest: str  # sha256:<hex> of the uncompressed layer tar (the config's diff_id)


def cache_dir() -> Path:
    root = os.environ.get("LEOFLOW_CACHE") or str(Path.home() / ".cache" / "leoflow")
    return Path(root) / "images"


def validate_tag(tag: str) -> None:
    if not _TAG_RE.match(tag):
        raise ImageError(
            f"image tag {tag!r} is not valid: use a lowercase name with a registry-like prefix and "
            "an explicit tag, e.g. leoflow.dev/my-task:1"
        )


def _normalize(path: str) -> str:
    parts = [p for p in path.strip("/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ImageError(f"image path {path!r} must be a path inside the image (no '..')")
    return "/".join(parts)


def layer_tar(files: Mapping[str, Entry]) -> bytes:
    """The layer as an uncompressed, reproducible tar: parents first, sorted, zero mtimes, uid 0."""
    entries: dict[str, Entry] = {}
    for raw, entry in files.items():
        name = _normalize(raw)
        parts = name.split("/")
        for depth in range(1, len(parts)):
            entries.setdefault("/".join(parts[:depth]), dir_entry())
        entries[name] = entry
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(entries):
            entry = entries[name]
            info = tarfile.TarInfo(name)
            info.mode = entry.mode
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if entry.kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif entry.kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = entry.target
                tar.addfile(info)
            elif entry.kind == "file":
                data = entry.content()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                raise ImageError(f"{name}: unknown entry kind {entry.kind!r}")
    return buf.getvalue()


def image_config(spec: ImageSpec, layer_digest: str) -> bytes:
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "Env": list(spec.env),
            "Entrypoint": list(spec.entrypoint) or None,
            "Cmd": list(spec.cmd) or None,
            "WorkingDir": spec.workdir,
            "Labels": dict(spec.labels) or None,
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "leoflow dev image build"}],
    }
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def archive_bytes(spec: ImageSpec) -> tuple[bytes, str, str]:
    """The docker-archive tarball of ``spec`` with its config and layer digests."""
    validate_tag(spec.tag)
    layer = layer_tar(spec.files)
    layer_digest = _sha256(layer)
    config = image_config(spec, layer_digest)
    config_digest = _sha256(config)
    config_name = config_digest.removeprefix("sha256:") + ".json"
    layer_name = layer_digest.removeprefix("sha256:") + "/layer.tar"
    manifest = [{"Config": config_name, "RepoTags": [spec.tag], "Layers": [layer_name]}]
    members = {
        "manifest.json": json.dumps(manifest, separators=(",", ":")).encode(),
        config_name: config,
        layer_name: layer,
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(members):
            if "/" in name:
                info = tarfile.TarInfo(name.split("/", 1)[0])
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
                tar.addfile(info)
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(members[name]), 0o644, 0
            tar.addfile(info, io.BytesIO(members[name]))
    return buf.getvalue(), config_digest, layer_digest


def build_image(spec: ImageSpec, cache: Path | None = None) -> BuiltImage:
    """Builds ``spec`` into ``<cache>/<name>-<config hash>.tar``, reusing an identical earlier build."""
    data, config_digest, layer_digest = archive_bytes(spec)
    directory = cache or cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", spec.tag.lower()).strip("-")
    path = directory / f"{slug}-{config_digest.removeprefix('sha256:')[:16]}.tar"
    if not path.exists():
        # A private temporary name, then an atomic rename: concurrent builders never see half a file.
        with tempfile.NamedTemporaryFile(dir=directory, prefix=f".{slug}-", delete=False) as tmp:
            tmp.write(data)
        Path(tmp.name).replace(path)
        log.info("image built", extra={"tag": spec.tag, "path": str(path), "id": config_digest})
    return BuiltImage(tag=spec.tag, path=path, config_digest=config_digest, layer_digest=layer_digest)


def files_from_directory(root: Path) -> dict[str, Entry]:
    """Every file, directory and symlink under ``root`` as layer entries, keeping modes."""
    if not root.is_dir():
        raise ImageError(f"{root}: not a directory")
    files: dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for name in [*dirnames, *filenames]:
            path = base / name
            rel = path.relative_to(root).as_posix()
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                files[rel] = symlink_entry(os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                files[rel] = dir_entry(stat.S_IMODE(st.st_mode))
            elif stat.S_ISREG(st.st_mode):
                files[rel] = Entry(kind="file", mode=stat.S_IMODE(st.st_mode), source=path)
            else:
                raise ImageError(f"{path}: only regular files, directories and symlinks go into an image")
    return files


def busybox_files(busybox: Path = BUSYBOX) -> dict[str, Entry]:
    """busybox-static at /bin/busybox, a link per applet, and the few files a shell expects."""
    if not busybox.is_file():
        raise ImageError(
            f"{busybox} not found: install the Debian package busybox-static (hack/apt-packages.sh)"
        )
    listed = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True, check=False)
    if listed.returncode != 0:
        raise ImageError(f"{busybox} --list-full failed: {listed.stderr.strip()}")
    files: dict[str, Entry] = {"bin/busybox": source_entry(busybox, 0o755)}
    for applet in listed.stdout.split():
        if applet != "bin/busybox":
            files[applet] = symlink_entry("/bin/busybox")
    files["etc/passwd"] = file_entry(
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
    )
    files["etc/group"] = file_entry(b"root:x:0:\nnogroup:x:65534:\n")
    files["tmp"] = dir_entry(0o1777)
    files["root"] = dir_entry(0o700)
    for mountpoint in ("proc", "sys", "dev", "etc/hostname", "etc/hosts", "etc/resolv.conf"):
        files[mountpoint] = dir_entry() if "/" not in mountpoint else file_entry(b"")
    return files


def base_spec(busybox: Path = BUSYBOX) -> ImageSpec:
    return ImageSpec(tag=BASE_IMAGE, files=busybox_files(busybox), cmd=("sh",))


def pause_spec(busybox: Path = BUSYBOX) -> ImageSpec:
    files = {"bin/busybox": source_entry(busybox, 0o755)}
    for applet in ("sh", "sleep"):
        files[f"bin/{applet}"] = symlink_entry("/bin/busybox")
    return ImageSpec(tag=PAUSE_IMAGE, files=files, entrypoint=("/bin/sh", "-c", _PAUSE_SCRIPT))


def agent_spec(agent_binary: Path, tag: str = AGENT_IMAGE) -> ImageSpec:
    """FROM scratch: the static agent binary alone at /leoflow-agent."""
    return ImageSpec(
        tag=tag,
        files={"leoflow-agent": source_entry(agent_binary, 0o755)},
        entrypoint=("/leoflow-agent",),
        env=(),
    )


def base_with_agent_spec(agent_binary: Path, busybox: Path = BUSYBOX) -> ImageSpec:
    """The base image plus the agent at AGENT_IN_IMAGE_PATH: ``FROM base`` then
    ``COPY --from=<agent image> /leoflow-agent /usr/local/bin/leoflow-agent``, in one layer."""
    files = {**busybox_files(busybox), AGENT_IN_IMAGE_PATH: source_entry(agent_binary, 0o755)}
    return ImageSpec(tag=BASE_WITH_AGENT_IMAGE, files=files, cmd=("sh",))


def import_image(image: BuiltImage, address: Path, ctr: str = "ctr") -> None:
    """Imports the tarball into containerd's ``k8s.io`` namespace (where the kubelet looks)."""
    result = subprocess.run(
        [
            ctr,
            "--address",
            str(address),
            "--namespace",
            CONTAINERD_NAMESPACE,
            "images",
            "import",
            str(image.path),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        raise ImageError(f"ctr images import {image.path} failed: {(result.stderr or result.stdout).strip()}")
    log.info("image imported", extra={"tag": image.tag, "id": image.config_digest})

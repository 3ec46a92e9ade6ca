"""The controller/webhook image for the dev cluster, built without Docker.

``images/controller/Dockerfile`` is the image a registry would serve; this builds its equivalent
for the real node, which pulls nothing: a Debian root filesystem made by ``debootstrap`` (minbase
plus ``python3`` and ``ca-certificates``, the same Python minor version as the venv here, so the
compiled wheels fit), the ``leoflow`` package and its dependencies installed into
``/opt/leoflow/site-packages`` by this venv's pip, packed by :mod:`leoflow.dev.images` and, with
``--import``, loaded into the real node's containerd.

Each stage is cached under ``$LEOFLOW_CACHE/images`` by the inputs it depends on: the Debian root
by suite, mirror and packages (the slow, network-bound step), the finished image by that plus a
digest of the package sources and ``pyproject.toml``. A warm rebuild after a source change only
reinstalls the Python packages.

Run as root (debootstrap needs it): ``python -m leoflow.install.controller_image [--import]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from leoflow.dev import images
from leoflow.dev.containerd import NodePaths

log = logging.getLogger(__name__)

CONTROLLER_IMAGE = "leoflow.dev/leoflow:dev"
SITE_PACKAGES = "/opt/leoflow/site-packages"
NONROOT_UID = 65532
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_PACKAGES = ("python3", "ca-certificates")
# What a container never needs from a Debian root: docs, manuals, translations, apt's state.
TRIM = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "var/cache/apt",
    "var/lib/apt/lists",
    "var/log",
)
_SOURCE_SUFFIXES = (".py", ".pyi", ".yaml", ".json", ".typed")


class ImageBuildError(RuntimeError):
    """A build step failed; the message names the step and its output."""


@dataclass(frozen=True)
class RootfsInputs:
    suite: str = DEBIAN_SUITE
    mirror: str = DEBIAN_MIRROR
    packages: tuple[str, ...] = DEBIAN_PACKAGES

    def key(self) -> str:
        text = json.dumps([self.suite, self.mirror, sorted(self.packages)])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def source_digest(repo: Path) -> str:
    """sha256 of the files that end up in the ``leoflow`` wheel, and of ``pyproject.toml``."""
    digest = hashlib.sha256()
    paths = [repo / "pyproject.toml"]
    paths += sorted(
        p
        for p in (repo / "leoflow").rglob("*")
        if p.is_file() and p.suffix in _SOURCE_SUFFIXES and "__pycache__" not in p.parts
    )
    for path in paths:
        digest.update(path.relative_to(repo).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _run(step: str, argv: Sequence[str], timeout: float) -> None:
    log.info("build step", extra={"step": step, "command": " ".join(argv[:4])})
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise ImageBuildError(f"{step}: {argv[0]} not found") from None
    except subprocess.TimeoutExpired:
        raise ImageBuildError(f"{step}: no result after {timeout:.0f}s") from None
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise ImageBuildError(f"{step} failed (exit {result.returncode}):\n{tail}")


def debian_rootfs(inputs: RootfsInputs, cache: Path) -> Path:
    """The debootstrapped root for ``inputs``, built once and kept in ``cache``."""
    target = cache / f"rootfs-debian-{inputs.suite}-{inputs.key()}"
    if target.is_dir():
        return target
    if shutil.which("debootstrap") is None:
        raise ImageBuildError("debootstrap not found: apt-get install debootstrap")
    if os.geteuid() != 0:
        raise ImageBuildError("debootstrap needs root to build the Debian root filesystem")
    # A partial root of our own: another build of the same inputs may be running at the same time.
    partial = Path(tempfile.mkdtemp(prefix=f"{target.name}.", suffix=".partial", dir=cache))
    try:
        _run(
            "debootstrap",
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(inputs.packages)}",
                inputs.suite,
                str(partial),
                inputs.mirror,
            ],
            timeout=1800,
        )
        try:
            partial.rename(target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


def _ignore_devices(directory: str, names: list[str]) -> set[str]:
    # The runtime mounts /dev, /proc and /sys; device nodes cannot go into a layer anyway.
    return set(names) if Path(directory).name in ("dev", "proc", "sys") else set()


def _trim(root: Path, paths: Iterable[str]) -> None:
    for relative in paths:
        path = root / relative
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
            path.mkdir()


def _add_nonroot_user(root: Path) -> None:
    """An account for the uid the Deployments run as, so tools that look it up find a name."""
    passwd, group = root / "etc" / "passwd", root / "etc" / "group"
    if f":{NONROOT_UID}:" not in passwd.read_text():
        with passwd.open("a") as out:
            out.write(f"leoflow:x:{NONROOT_UID}:{NONROOT_UID}:leoflow:/nonexistent:/usr/sbin/nologin\n")
        with group.open("a") as out:
            out.write(f"leoflow:x:{NONROOT_UID}:\n")


def assemble_root(rootfs: Path, repo: Path, work: Path, pip: Path) -> Path:
    """A copy of ``rootfs`` with Leoflow and its dependencies installed, trimmed, in ``work``.

    pip builds from a copy of the sources, so nothing is written into the checkout.
    """
    root = work / "root"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(rootfs, root, symlinks=True, ignore=_ignore_devices)
    _trim(root, TRIM)
    _add_nonroot_user(root)
    source = work / "source"
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(repo / name, source / name)
    shutil.copytree(repo / "leoflow", source / "leoflow", ignore=shutil.ignore_patterns("__pycache__"))
    _run(
        "pip install",
        [
            str(pip),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-warn-script-location",
            "--target",
            str(root / SITE_PACKAGES.lstrip("/")),
            str(source),
        ],
        timeout=1200,
    )
    return root


def controller_spec(root: Path, tag: str = CONTROLLER_IMAGE) -> images.ImageSpec:
    return images.ImageSpec(
        tag=tag,
        files=images.files_from_directory(root),
        entrypoint=("/usr/bin/python3", "-m", "leoflow"),
        env=(
            images.PATH_ENV,
            f"PYTHONPATH={SITE_PACKAGES}",
            "PYTHONDONTWRITEBYTECODE=1",
            "PYTHONUNBUFFERED=1",
        ),
        labels={"org.opencontainers.image.title": "leoflow", "io.leoflow.build": "dev"},
    )


def build_controller_image(
    repo: Path,
    *,
    cache: Path | None = None,
    inputs: RootfsInputs | None = None,
    tag: str = CONTROLLER_IMAGE,
    pip: Path | None = None,
) -> images.BuiltImage:
    """Builds (or finds in the cache) the controller image for the sources in ``repo``."""
    cache = cache or images.cache_dir()
    inputs = inputs or RootfsInputs()
    cache.mkdir(parents=True, exist_ok=True)
    key = f"{inputs.key()}-{source_digest(repo)}"
    record = cache / f"controller-{key}.json"
    if record.is_file():
        known = json.loads(record.read_text())
        path = Path(known["path"])
        if path.is_file() and known["tag"] == tag:
            return images.BuiltImage(tag, path, known["config_digest"], known["layer_digest"])
    rootfs = debian_rootfs(inputs, cache)
    work = Path(tempfile.mkdtemp(prefix=f"controller-work-{key}.", dir=cache))
    try:
        root = assemble_root(rootfs, repo, work, pip or Path(sys.executable).with_name("pip"))
        built = images.build_image(controller_spec(root, tag), cache)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    written = {
        "tag": built.tag,
        "path": str(built.path),
        "config_digest": built.config_digest,
        "layer_digest": built.layer_digest,
    }
    partial_record = record.with_name(f"{record.name}.{os.getpid()}.partial")
    partial_record.write_text(json.dumps(written))
    partial_record.replace(record)
    return built


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m leoflow.install.controller_image",
        description="Build the controller/webhook image for the dev cluster (no Docker needed).",
    )
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[2])
    parser.add_argument("--tag", default=CONTROLLER_IMAGE)
    parser.add_argument(
        "--import",
        dest="import_home",
        type=Path,
        metavar="CLUSTER_HOME",
        help="import into the real node of this dev cluster home",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.monotonic()
    try:
        built = build_controller_image(args.repo, tag=args.tag)
        if args.import_home is not None:
            images.import_image(built, NodePaths(args.import_home).socket)
    except (ImageBuildError, images.ImageError) as err:
        sys.stderr.write(f"controller image: {err}\n")
        return 1
    size = built.path.stat().st_size / 2**20
    sys.stdout.write(
        f"{built.tag}  {built.config_digest}  {built.path}  {size:.0f} MiB  "
        f"{time.monotonic() - started:.0f}s\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

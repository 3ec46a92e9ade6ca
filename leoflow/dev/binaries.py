"""Where the dev cluster's binaries come from: built once from the Go module proxy, cached per version.

The Kubernetes version is pinned in exactly one place, ``tools/k8s/go.mod`` (the wrapper module
that makes ``k8s.io/kubernetes`` buildable); KWOK is pinned here. Binaries live under
``$LEOFLOW_CACHE/bin/<component>-<version>/`` outside the repo, so a fresh clone on a warm machine
builds nothing. ``KUBEBUILDER_ASSETS`` (envtest's convention) names a directory of prebuilt
binaries to use instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

KWOK_VERSION = "v0.7.0"
KUBERNETES_BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kubectl",
)
REPO_ROOT = Path(__file__).resolve().parents[2]
K8S_WRAPPER = REPO_ROOT / "tools" / "k8s"


class BinaryError(RuntimeError):
    """A binary is missing and cannot be built; the message says what to do."""


@dataclass(frozen=True)
class Binaries:
    kubernetes_dir: Path
    kwok: Path

    def __getitem__(self, name: str) -> Path:
        return self.kubernetes_dir / name


def cache_root() -> Path:
    return Path(os.environ.get("LEOFLOW_CACHE", Path.home() / ".cache" / "leoflow"))


def kubernetes_version() -> str:
    """The version ``tools/k8s/go.mod`` requires of k8s.io/kubernetes."""
    try:
        text = (K8S_WRAPPER / "go.mod").read_text()
    except FileNotFoundError as err:
        raise BinaryError(
            f"{K8S_WRAPPER / 'go.mod'} not found: run from a Leoflow checkout, or set "
            "KUBEBUILDER_ASSETS to a directory with prebuilt binaries"
        ) from err
    match = re.search(r"^\s*k8s\.io/kubernetes (v\d+\.\d+\.\d+)\b", text, re.MULTILINE)
    if match is None:
        raise BinaryError(f"{K8S_WRAPPER / 'go.mod'} does not require k8s.io/kubernetes")
    return match.group(1)


@contextlib.contextmanager
def _build_lock(name: str) -> Iterator[None]:
    """One build per cache at a time, across processes (two test sessions, CI and a shell)."""
    lock_path = cache_root() / "bin" / f".{name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _require_go() -> str:
    go = shutil.which("go")
    if go is None:
        raise BinaryError("Go is needed to build the cluster binaries and was not found on PATH")
    return go


def _run_build(argv: list[str], what: str, env: dict[str, str] | None = None) -> None:
    log.warning("building %s (once per version; a cold build takes several minutes)", what)
    result = subprocess.run(
        argv, env={**os.environ, **(env or {})}, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise BinaryError(f"building {what} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")


def _kubernetes_dir() -> Path:
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        directory = Path(assets)
        missing = [b for b in KUBERNETES_BINARIES if not (directory / b).exists()]
        if missing:
            raise BinaryError(f"KUBEBUILDER_ASSETS={directory} lacks {', '.join(missing)}")
        return directory
    directory = cache_root() / "bin" / f"k8s-{kubernetes_version()}"
    if all((directory / b).exists() for b in KUBERNETES_BINARIES):
        return directory
    _require_go()
    with _build_lock(directory.name):
        if not all((directory / b).exists() for b in KUBERNETES_BINARIES):
            _run_build([str(K8S_WRAPPER / "build.sh"), str(directory)], f"Kubernetes {directory.name}")
    return directory


def _kwok() -> Path:
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and (Path(assets) / "kwok").exists():
        return Path(assets) / "kwok"
    directory = cache_root() / "bin" / f"kwok-{KWOK_VERSION}"
    binary = directory / "kwok"
    if binary.exists():
        return binary
    go = _require_go()
    with _build_lock(directory.name):
        if not binary.exists():
            partial = directory.with_name(directory.name + ".partial")
            partial.mkdir(parents=True, exist_ok=True)
            _run_build(
                [go, "install", "-trimpath", "-ldflags=-s -w", f"sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}"],
                f"KWOK {KWOK_VERSION}",
                env={"GOBIN": str(partial), "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"},
            )
            shutil.rmtree(directory, ignore_errors=True)
            partial.rename(directory)
    return binary


def ensure_binaries() -> Binaries:
    """Every binary the dev cluster runs, building what the cache lacks."""
    return Binaries(kubernetes_dir=_kubernetes_dir(), kwok=_kwok())

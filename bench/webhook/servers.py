"""The webhook servers a benchmark run starts: ``leoflow webhook serve`` and the floors.

All of them serve the same certificate (one ``leoflow certs generate``) on 127.0.0.1 as child
processes, so the API server's calls to each cost the same TLS and loopback work and only the
server differs: Leoflow's (aiohttp, HTTP/1.1, the real mutation), the aiohttp floors (the same
stack answering at once, without a patch or with Leoflow's patch computed beforehand, see
``floor_aiohttp``) and the Go floor (net/http, which the API server reaches over HTTP/2; built
here from ``floor_go`` with the local Go toolchain, skipped without one).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from leoflow.agent_inject import InjectionSettings
from leoflow.cli.demo import Tls
from leoflow.dev.processes import free_port

HERE = Path(__file__).resolve().parent
# What ``leoflow webhook serve`` is started with, so a floor can answer with the very same patch.
INJECTION = InjectionSettings(agent_image="registry.local/leoflow-agent:1", controller_addr="10.0.0.1:9443")


@dataclass(frozen=True)
class Server:
    name: str
    port: int
    pid: int

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/mutate-pods"


def generate_tls(directory: Path) -> Tls:
    generate = ["certs", "generate", "--out", str(directory), "--service", "leoflow-webhook"]
    subprocess.run(
        [sys.executable, "-m", "leoflow", *generate, "--namespace", "leoflow"],
        check=True,
        capture_output=True,
    )
    return Tls(directory)


def pin(cpu: int, pid: int = 0) -> None:
    if hasattr(os, "sched_setaffinity") and cpu in os.sched_getaffinity(0):
        os.sched_setaffinity(pid, {cpu})


@contextmanager
def running(name: str, argv: list[str], port: int, cpu: int | None = None) -> Iterator[Server]:
    """Runs ``argv`` (which must listen on ``port``), pinned to ``cpu`` if given, until the block ends."""
    process = subprocess.Popen(argv)
    try:
        if cpu is not None:
            pin(cpu, process.pid)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit(f"{name} did not start listening on {port}") from None
                time.sleep(0.1)
        yield Server(name, port, process.pid)
    finally:
        process.terminate()
        process.wait(10)


def leoflow(tls: Tls, cpu: int | None = None, name: str = "leoflow") -> AbstractContextManager[Server]:
    port = free_port()
    serve = [
        *("webhook", "serve", "--cert-file", str(tls.cert), "--key-file", str(tls.key)),
        *("--port", str(port), "--agent-image", INJECTION.agent_image),
        *("--controller-addr", INJECTION.controller_addr),
    ]
    return running(name, [sys.executable, "-m", "leoflow", *serve], port, cpu)


def aiohttp_floor(tls: Tls, name: str, patch_file: Path | None = None) -> AbstractContextManager[Server]:
    port = free_port()
    argv = [sys.executable, str(HERE / "floor_aiohttp.py"), "--name", name, "--port", str(port)]
    argv += ["--cert-file", str(tls.cert), "--key-file", str(tls.key)]
    if patch_file is not None:
        argv += ["--patch-file", str(patch_file)]
    return running(name, argv, port)


def build_go_floor(out: Path) -> Path | str:
    """The Go floor's binary, or why it could not be built."""
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        return "no Go toolchain on PATH"
    binary = out / "webhookfloor"
    env = {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}
    built = subprocess.run(
        [go, "build", "-o", str(binary), "."],
        check=False,
        cwd=HERE / "floor_go",
        env=env,
        capture_output=True,
        text=True,
    )
    if built.returncode != 0:
        return f"go build failed: {built.stderr.strip()[-500:]}"
    return binary


def go_floor(tls: Tls, binary: Path) -> AbstractContextManager[Server]:
    port = free_port()
    argv = [str(binary), "-cert-file", str(tls.cert), "-key-file", str(tls.key), "-port", str(port)]
    return running("go-http2-noop", argv, port)

"""Daemon processes of the dev cluster: started detached, tracked by pid files, stopped for sure.

Each component runs in its own session (process group) with its output in ``logs/<name>.log``, so
``dev down`` can stop a whole component tree even after the ``leoflow`` process that started it
has exited, and a failing test can show the log tails.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


class ProcessError(RuntimeError):
    """A component failed to start or become ready; the message carries its log tail."""


@dataclass(frozen=True)
class Layout:
    """Where a cluster home keeps pid files and logs."""

    home: Path

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"


def start(layout: Layout, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> int:
    """Starts ``argv`` detached in its own session, appending to its log; returns the pid."""
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    layout.log_dir.mkdir(parents=True, exist_ok=True)
    with layout.log_file(name).open("ab") as out:
        out.write(f"\n==== {time.strftime('%Y-%m-%dT%H:%M:%S')} start: {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    layout.pid_file(name).write_text(str(proc.pid))
    log.info("started", extra={"component": name, "pid": proc.pid})
    return proc.pid


def pid_of(layout: Layout, name: str) -> int | None:
    """The pid recorded for ``name`` if that process is still alive (and not a zombie)."""
    try:
        pid = int(layout.pid_file(name).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        # A zombie answers kill(0) but is gone for our purposes; reap it if it is our child.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            return False
    return True


def stop(layout: Layout, name: str, grace: float = 5.0) -> None:
    """SIGTERM the component's process group, SIGKILL after ``grace`` seconds, forget its pid."""
    pid = pid_of(layout, name)
    if pid is not None:
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            log.warning("killing after grace", extra={"component": name, "pid": pid})
            _signal_group(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        log.info("stopped", extra={"component": name, "pid": pid})
    layout.pid_file(name).unlink(missing_ok=True)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def log_tail(layout: Layout, name: str, lines: int = 40) -> str:
    try:
        text = layout.log_file(name).read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def wait_http(
    layout: Layout,
    name: str,
    url: str,
    *,
    context: ssl.SSLContext | None = None,
    timeout: float = 60.0,
    ok: Callable[[bytes], bool] = lambda _body: True,
) -> None:
    """Polls ``url`` until it answers 200 and ``ok(body)``; fails early if the process died."""
    deadline = time.monotonic() + timeout
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if pid_of(layout, name) is None:
            raise ProcessError(f"{name} exited during start-up:\n{log_tail(layout, name)}")
        try:
            with urllib.request.urlopen(url, context=context, timeout=2) as response:
                body = response.read()
                if response.status == 200 and ok(body):
                    return
                last_error = f"HTTP {response.status}: {body[:200]!r}"
        except urllib.error.HTTPError as err:
            last_error = f"HTTP {err.code}: {err.read()[:200]!r}"
        except (OSError, ssl.SSLError) as err:
            last_error = str(err)
        time.sleep(0.1)
    raise ProcessError(
        f"{name} not ready at {url} after {timeout:.0f}s ({last_error}):\n{log_tail(layout, name)}"
    )

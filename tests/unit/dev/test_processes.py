"""Daemons are tracked by pid file and stopped with their whole process group."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from leoflow.dev.processes import Layout, ProcessError, free_port, pid_of, port_in_use, start, stop, wait_http


def test_stop_kills_the_whole_process_group_even_if_the_leader_ignores_sigterm(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    child_pid_file = tmp_path / "child.pid"
    script = f"trap '' TERM; sleep 300 & echo $! > {child_pid_file}; wait"
    pid = start(layout, "stubborn", ["sh", "-c", script])
    deadline = time.monotonic() + 5
    while not child_pid_file.exists() or not child_pid_file.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    child = int(child_pid_file.read_text())
    stop(layout, "stubborn", grace=0.5)
    assert pid_of(layout, "stubborn") is None
    for gone in (pid, child):
        stat = Path(f"/proc/{gone}/stat")
        assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_wait_http_reports_the_log_tail_when_the_process_dies(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    start(layout, "crasher", ["sh", "-c", "echo 'fatal: bad flag --nope'; exit 3"])
    with pytest.raises(ProcessError, match="fatal: bad flag --nope"):
        wait_http(layout, "crasher", f"http://127.0.0.1:{free_port()}/healthz", timeout=10)


def test_port_in_use_sees_a_listening_socket() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert port_in_use(sock.getsockname()[1])
    assert not port_in_use(free_port())

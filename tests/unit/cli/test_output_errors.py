"""Output that cannot be written (a full disk, ``> /dev/full``) is one error line and exit 1; a
reader that went away (``| head``) ends the command quietly with 141, as SIGPIPE would."""

from __future__ import annotations

import errno
import io
import subprocess
import sys
from pathlib import Path

import pytest

from leoflow.cli import EXIT_BROKEN_PIPE, EXIT_FAILED, main

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "etl" / "leoflow.yaml"

COMMANDS = [
    ["compile", str(EXAMPLE)],
    ["compile", str(EXAMPLE), "-o", "json"],
    ["validate", str(EXAMPLE)],
    ["graph", str(EXAMPLE)],
    ["install", "--print"],
]


class FailingStdout:
    """A stdout whose every write fails as ``error`` does, with no file descriptor (as under pytest)."""

    def __init__(self, error: OSError) -> None:
        self.error = error

    def write(self, _text: str) -> int:
        raise self.error

    def flush(self) -> None:
        raise self.error

    def fileno(self) -> int:
        raise io.UnsupportedOperation("fileno")


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_a_full_disk_is_one_error_line_not_a_traceback(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdout", FailingStdout(OSError(errno.ENOSPC, "No space left on device")))
    assert main(argv) == EXIT_FAILED
    assert capsys.readouterr().err == "leoflow: error: cannot write the output: No space left on device\n"


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_a_reader_that_went_away_ends_the_command_quietly(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdout", FailingStdout(BrokenPipeError(errno.EPIPE, "Broken pipe")))
    assert main(argv) == EXIT_BROKEN_PIPE
    assert capsys.readouterr().err == ""


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_compile_to_dev_full_exits_1_with_nothing_but_the_error() -> None:
    # A real process: the interpreter's own last flush of stdout must not fail a second time.
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "leoflow", "compile", str(EXAMPLE)],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    assert done.returncode == EXIT_FAILED
    assert done.stderr == "leoflow: error: cannot write the output: No space left on device\n"

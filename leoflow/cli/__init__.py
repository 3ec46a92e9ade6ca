"""The ``leoflow`` command: one argparse tree, one module per command group.

Each module in ``COMMAND_MODULES`` exposes ``register(subparsers)``, adding its parsers with
``set_defaults(handler=...)``; a handler takes the parsed namespace and returns the exit code.
Exit codes follow kubectl conventions: 0 success, 1 the thing failed (a run that failed, a
cluster that did not come up), 2 usage and validation errors; 141 (as if killed by SIGPIPE) when
the reader of stdout went away, as in ``leoflow compile leoflow.yaml | head``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence

from leoflow import __version__, logfmt

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE

COMMAND_MODULES: tuple[str, ...] = (
    "leoflow.cli.dev",
    "leoflow.cli.webhook",
    "leoflow.cli.certs",
    "leoflow.cli.spec",
    "leoflow.cli.install",
    "leoflow.cli.runs",
    "leoflow.cli.demo",
    "leoflow.cli.controller",
    "leoflow.cli.trigger",
)

Handler = Callable[[argparse.Namespace], int]


class CommandError(Exception):
    """A failure the user should read as one clear line, not a traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def buffered_output(handler: Handler) -> Handler:
    """``handler`` with its stdout collected and written at the end, where a failed write (a full
    disk, ``> /dev/full``) becomes one error line instead of a traceback.

    For commands whose whole output exists before it is written (a manifest, a report), so
    nothing is held back that a reader would want to see sooner.
    """

    def run(args: argparse.Namespace) -> int:
        collected = io.StringIO()
        with contextlib.redirect_stdout(collected):
            code = handler(args)
        try:
            sys.stdout.write(collected.getvalue())
            sys.stdout.flush()
        except BrokenPipeError:
            raise
        except OSError as err:
            _discard_stdout()
            raise CommandError(f"cannot write the output: {err.strerror or err}") from None
        return code

    return run


def _discard_stdout() -> None:
    """Points file descriptor 1 at /dev/null: what is still buffered cannot be delivered, and the
    interpreter's last flush at exit must not fail a second time with a traceback of its own."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leoflow", description="Kubernetes-native DAG orchestrator")
    parser.add_argument("--version", action="version", version=f"leoflow {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail to stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    logfmt.configure(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        return handler(args)
    except CommandError as err:
        print(f"leoflow: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("leoflow: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader has what it wanted; saying so on stderr would only clutter a pipeline.
        _discard_stdout()
        return EXIT_BROKEN_PIPE

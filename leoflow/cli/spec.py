"""``leoflow compile | validate | graph FILE``: leoflow.yaml from the command line.

FILE is leoflow.yaml or, as for ``leoflow apply``, a directory holding one. Problems go to stderr,
one ``file:line:column: path: message`` per line, all of them, exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from leoflow import kubeyaml
from leoflow.cli import EXIT_OK, EXIT_USAGE, CommandError, buffered_output, checks
from leoflow.spec.compiler import CompiledDag, compile_path
from leoflow.spec.graph import render
from leoflow.spec.problems import CompileError

FILE_HELP = "leoflow.yaml, or a directory holding one"


def register(subparsers: Any) -> None:
    compile_parser = subparsers.add_parser("compile", help="compile leoflow.yaml into a DAG resource")
    compile_parser.add_argument("file", type=Path, help=FILE_HELP)
    compile_parser.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml")
    compile_parser.add_argument("-n", "--namespace", default=None, help="set metadata.namespace")
    compile_parser.set_defaults(handler=buffered_output(_compile))

    validate_parser = subparsers.add_parser("validate", help="check leoflow.yaml and report every problem")
    validate_parser.add_argument("file", type=Path, help=FILE_HELP)
    validate_parser.set_defaults(handler=buffered_output(_validate))

    graph_parser = subparsers.add_parser("graph", help="draw the task graph of leoflow.yaml")
    graph_parser.add_argument("file", type=Path, help=FILE_HELP)
    graph_parser.add_argument("--format", choices=("text", "dot", "mermaid"), default="text")
    graph_parser.set_defaults(handler=buffered_output(_graph))


def dag_file(path: Path) -> Path:
    """The leoflow.yaml that ``path`` names: the file itself, or the one in a directory."""
    if str(path) == "-":
        # No command reads a DAG from stdin: problems are reported by file and line.
        raise CommandError(
            "leoflow.yaml is read from a file, not stdin: pass its path or the directory holding it",
            EXIT_USAGE,
        )
    return path / "leoflow.yaml" if path.is_dir() else path


def _load(given: Path) -> CompiledDag | None:
    path = dag_file(given)
    try:
        return compile_path(path)
    except CompileError as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        count = len(err.problems)
        print(f"leoflow: {count} problem{'s' if count != 1 else ''} in {path}", file=sys.stderr)
        return None


def _compile(args: argparse.Namespace) -> int:
    if args.namespace is not None:
        checks.namespace("--namespace", args.namespace)
    dag = _load(args.file)
    if dag is None:
        return EXIT_USAGE
    resource = dag.resource(args.namespace)
    if args.output == "json":
        sys.stdout.write(json.dumps(resource, indent=2) + "\n")
    else:
        sys.stdout.write(kubeyaml.dump(resource))
    return EXIT_OK


def _validate(args: argparse.Namespace) -> int:
    dag = _load(args.file)
    if dag is None:
        return EXIT_USAGE
    tasks, digest = len(dag.spec.tasks), dag.spec.definitionHash
    print(f"{dag_file(args.file)}: DAG '{dag.name}' is valid: {tasks} tasks, definition {digest}")
    return EXIT_OK


def _graph(args: argparse.Namespace) -> int:
    dag = _load(args.file)
    if dag is None:
        return EXIT_USAGE
    sys.stdout.write(render(dag.name, dag.spec, args.format))
    return EXIT_OK

"""``leoflow trigger DAG [--param k=v]``: start a run of a DAG now (creates a DAGRun).

The DAG must exist and every ``--param`` must be one it declares, so a typo is a clear error
here rather than a failed run later. Prints the new run's name.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from leoflow.cli import EXIT_OK, EXIT_USAGE, CommandError
from leoflow.cli.kubeclient import add_connection_args, connect
from leoflow.controller.kube.transport import DAGRUNS, DAGS
from leoflow.spec.resources import DagRunSpec, dagrun_resource


def register(subparsers: Any) -> None:
    trigger = subparsers.add_parser(
        "trigger",
        help="start a run of a DAG now",
        description="Creates a DAGRun for DAG and prints its name.",
    )
    add = trigger.add_argument
    add("dag", metavar="DAG", help="the DAG to run")
    add("--param", "-p", action="append", default=[], metavar="KEY=VALUE", help="a param value (repeatable)")
    add("--name", default=None, help="the run's name (default: generated from the DAG's name)")
    add_connection_args(trigger)
    trigger.set_defaults(handler=run_trigger)


def parse_params(values: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise CommandError(f"--param must be KEY=VALUE, got {value!r}", EXIT_USAGE)
        if key in params:
            raise CommandError(f"--param {key} is given twice", EXIT_USAGE)
        params[key] = text
    return params


def run_trigger(args: argparse.Namespace) -> int:
    params = parse_params(args.param)
    print(asyncio.run(_trigger(args, params)))
    return EXIT_OK


async def _trigger(args: argparse.Namespace, params: dict[str, str]) -> str:
    async with connect(args) as kube:
        dag = await kube.get(DAGS, args.dag, "DAG")
        declared = {str(p.get("name")) for p in (dag.get("spec") or {}).get("params") or []}
        unknown = sorted(set(params) - declared)
        if unknown:
            known = ", ".join(sorted(declared)) or "none"
            raise CommandError(
                f"DAG '{args.dag}' has no param {', '.join(unknown)} (its params: {known})", EXIT_USAGE
            )
        body = dagrun_resource(args.name or "", DagRunSpec(dagName=args.dag, params=params), kube.namespace)
        if args.name is None:
            del body["metadata"]["name"]
            body["metadata"]["generateName"] = f"{args.dag}-"
        created = await kube.request("POST", DAGRUNS.path(kube.namespace), body=body, verb="create")
        return str(created["metadata"]["name"])

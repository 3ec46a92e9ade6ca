"""``leoflow apply | get | describe | watch | logs | cancel | retry``: DAGs and runs on a cluster.

Every command takes kubectl's ``-n/--namespace``, ``--kubeconfig`` and ``--context``
(``leoflow.cli.kubeclient``). Exit codes: 0 success, 1 the thing failed (a run that Failed or was
Cancelled under ``watch``, an unknown run, an unreachable cluster), 2 usage and validation errors
(a leoflow.yaml with problems, a kubeconfig that is not one).

Cancel and retry are requests the controller acts on; they travel as annotations on the DAGRun
(``leoflow.controller.runview``), so ``kubectl annotate`` makes the same requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp

from leoflow import kubeyaml
from leoflow.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CommandError, buffered_output
from leoflow.cli import render as show
from leoflow.cli.kubeclient import Kube, add_connection_args, connect, type_missing
from leoflow.cli.live import LiveRun
from leoflow.cli.spec import dag_file
from leoflow.controller.kube.errors import ApiError
from leoflow.controller.kube.transport import CONFIGMAPS, DAGRUNS, DAGS, PODS, KubeObject
from leoflow.controller.podnames import ATTEMPT_LABEL, ITEM_LABEL, MAIN_CONTAINER, RUN_LABEL, TASK_LABEL
from leoflow.controller.runview import CANCEL_ANNOTATION, RETRY_ANNOTATION
from leoflow.spec.compiler import CompiledDag, compile_path
from leoflow.spec.problems import CompileError
from leoflow.spec.resources import (
    API_VERSION,
    TERMINAL_RUN_PHASES,
    DagRunStatus,
    DagSpec,
    RunPhase,
)
from leoflow.spec.snapshots import SnapshotError, definition_configmap_name, load_snapshot

FIELD_MANAGER = "leoflow"
POLL_SECONDS = 0.5


def register(subparsers: Any) -> None:
    apply = subparsers.add_parser("apply", help="compile leoflow.yaml and server-side apply the DAG")
    apply.add_argument("file", type=Path, help="leoflow.yaml, or a directory holding one")
    add_connection_args(apply)
    apply.set_defaults(handler=_sync(_apply))

    get = subparsers.add_parser("get", help="list DAGs or runs (like kubectl get)")
    get.add_argument("kind", choices=("dags", "dag", "runs", "run"), help="what to list")
    get.add_argument("name", nargs="?", help="one object by name")
    get.add_argument("--dag", default=None, help="runs: only runs of this DAG")
    get.add_argument("-A", "--all-namespaces", action="store_true", help="list across all namespaces")
    get.add_argument("-o", "--output", choices=("table", "wide", "json", "yaml"), default="table")
    add_connection_args(get)
    get.set_defaults(handler=buffered_output(_sync(_get)))

    describe = subparsers.add_parser(
        "describe", help="a run in detail: tasks, attempts, reasons, pods, the DAG"
    )
    describe.add_argument("kind", choices=("run",))
    describe.add_argument("name", help="the DAGRun's name")
    describe.add_argument("-o", "--output", choices=("text", "json", "yaml"), default="text")
    add_connection_args(describe)
    describe.set_defaults(handler=buffered_output(_sync(_describe)))

    watch = subparsers.add_parser(
        "watch", help="follow a run until it ends; exit 0 if it Succeeded, 1 otherwise"
    )
    watch.add_argument("kind", choices=("run",))
    watch.add_argument("name", help="the DAGRun's name")
    watch.add_argument(
        "--timeout", type=float, default=None, metavar="SECONDS", help="give up (exit 1) after this long"
    )
    watch.add_argument("--plain", action="store_true", help="print one line per change even on a terminal")
    add_connection_args(watch)
    watch.set_defaults(handler=_sync(_watch))

    logs = subparsers.add_parser("logs", help="print the logs of a task attempt's pod")
    logs.add_argument("run", help="the DAGRun's name")
    logs.add_argument("task", help="the task's name")
    logs.add_argument("--attempt", type=_positive, default=None, help="attempt number (default: the latest)")
    logs.add_argument("--item", type=_natural, default=None, help="fan-out item index")
    logs.add_argument("-f", "--follow", action="store_true", help="stream until the container ends")
    add_connection_args(logs)
    logs.set_defaults(handler=_sync(_logs))

    cancel = subparsers.add_parser("cancel", help="ask the controller to cancel a run")
    cancel.add_argument("name", help="the DAGRun's name")
    add_connection_args(cancel)
    cancel.set_defaults(handler=_sync(_cancel))

    retry = subparsers.add_parser("retry", help="re-run a finished run (a new run), or only its failed tasks")
    retry.add_argument("name", help="the DAGRun's name")
    retry.add_argument(
        "--failed",
        action="store_true",
        help="retry in place: re-run failed, upstream-failed and cancelled tasks, keep successes and outputs",
    )
    add_connection_args(retry)
    retry.set_defaults(handler=_sync(_retry))


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {value!r}")
    return int(value)


def _natural(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number, got {value!r}")
    return int(value)


def _sync(
    command: Callable[[argparse.Namespace], Coroutine[Any, Any, int]],
) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        return asyncio.run(command(args))

    return handler


def _emit(obj: Any, fmt: str) -> None:
    if fmt == "json":
        sys.stdout.write(json.dumps(obj, indent=2) + "\n")
    else:
        sys.stdout.write(kubeyaml.dump(obj))


# apply


def load_dag_file(path: Path) -> CompiledDag:
    """Compiles ``path`` (or ``path/leoflow.yaml``); problems go to stderr and exit 2."""
    file = dag_file(path)
    if not file.exists():
        raise CommandError(f"{file} does not exist", EXIT_USAGE)
    try:
        return compile_path(file)
    except CompileError as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        count = len(err.problems)
        raise CommandError(f"{count} problem{'s' if count != 1 else ''} in {file}", EXIT_USAGE) from None


async def apply_dag(kube: Kube, dag: CompiledDag) -> KubeObject:
    """Server-side apply: a 10,000-task DAG is far above client-side apply's 256 KiB annotation."""
    resource = dag.resource(kube.namespace)
    return await kube.request(
        "PATCH",
        DAGS.path(kube.namespace, dag.name),
        query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
        body=resource,
        content_type="application/apply-patch+yaml",
        verb="apply",
    )


async def _apply(args: argparse.Namespace) -> int:
    dag = load_dag_file(args.file)
    async with connect(args) as kube:
        stored = await apply_dag(kube, dag)
    generation = (stored.get("metadata") or {}).get("generation")
    print(
        f"dag.leoflow.io/{dag.name} applied in namespace {kube.namespace}: {len(dag.spec.tasks)} tasks, "
        f"definition {dag.spec.definitionHash} (generation {generation})"
    )
    return EXIT_OK


# get


async def _get(args: argparse.Namespace) -> int:
    runs = args.kind in ("runs", "run")
    ref, what = (DAGRUNS, "run") if runs else (DAGS, "DAG")
    now = show.now_utc()
    async with connect(args) as kube:
        if args.name:
            items = [await kube.get(ref, args.name, what)]
        else:
            if runs and args.dag:
                await kube.get(DAGS, args.dag, "DAG")
            selector = f"leoflow.io/dag={args.dag}" if runs and args.dag else None
            namespace = None if args.all_namespaces else kube.namespace
            items = await kube.list(ref, namespace=namespace, selector=selector)
            items.sort(
                key=lambda o: (
                    o["metadata"].get("namespace", ""),
                    o["metadata"].get("creationTimestamp", ""),
                    o["metadata"]["name"],
                )
            )
    if args.output in ("json", "yaml"):
        _emit(items[0] if args.name else {"apiVersion": "v1", "kind": "List", "items": items}, args.output)
        return EXIT_OK
    if not items:
        where = "any namespace" if args.all_namespaces else f"namespace {kube.namespace}"
        print(f"No {'runs' if runs else 'DAGs'} found in {where}.", file=sys.stderr)
        return EXIT_OK
    rows_of = show.runs_rows if runs else show.dags_rows
    sys.stdout.write(
        show.table(rows_of(items, now, wide=args.output == "wide", all_namespaces=args.all_namespaces))
    )
    return EXIT_OK


# describe


async def run_definition(kube: Kube, run: KubeObject) -> DagSpec:
    """The definition the run pinned (its snapshot), else the DAG as it is now."""
    status = run.get("status") or {}
    dag_name = str((run.get("spec") or {}).get("dagName", ""))
    pinned = status.get("definitionHash")
    if isinstance(pinned, str) and pinned:
        snapshot = await kube.find(CONFIGMAPS, definition_configmap_name(dag_name, pinned))
        if snapshot is not None:
            try:
                return load_snapshot(snapshot)
            except SnapshotError as err:
                raise CommandError(f"run {run['metadata']['name']!r}: {err}") from None
    dag = await kube.find(DAGS, dag_name)
    if dag is None:
        raise CommandError(
            f"run {run['metadata']['name']!r} refers to DAG {dag_name!r}, "
            f"which does not exist in namespace {kube.namespace!r}"
        )
    return DagSpec.model_validate(dag.get("spec") or {})


def run_status(run: KubeObject) -> DagRunStatus:
    try:
        return DagRunStatus.model_validate(run.get("status") or {})
    except ValueError as err:
        raise CommandError(
            f"run {run['metadata']['name']!r} has a status this CLI cannot read: {err}"
        ) from None


async def _describe(args: argparse.Namespace) -> int:
    async with connect(args) as kube:
        run = await kube.get(DAGRUNS, args.name, "run")
        if args.output != "text":
            _emit(run, args.output)
            return EXIT_OK
        spec = await run_definition(kube, run)
        pods = await kube.list(PODS, namespace=kube.namespace, selector=f"{RUN_LABEL}={args.name}")
    present = {str(p["metadata"]["name"]) for p in pods}
    sys.stdout.write(describe_text(run, spec, present, kube.namespace))
    return EXIT_OK


def describe_text(
    run: KubeObject,
    spec: DagSpec,
    pods_present: set[str],
    namespace: str,
    *,
    seen: dict[str, show.Seen] | None = None,
) -> str:
    now = show.now_utc()
    meta, run_spec = run.get("metadata") or {}, run.get("spec") or {}
    status = run_status(run)
    name = str(meta.get("name", ""))
    rows = show.task_rows(spec, status, run=name, run_uid=str(meta.get("uid", "")), now=now, seen=seen)
    lines = [
        f"Name:          {name}",
        f"Namespace:     {namespace}",
        f"DAG:           {run_spec.get('dagName', '')} "
        f"(definition {status.definitionHash or spec.definitionHash})",
        f"Phase:         {status.phase.value}",
        f"Progress:      {show.progress_bar(show.done_count(status), len(spec.tasks))}",
        f"Logical date:  {run_spec.get('logicalDate') or '-'}",
        f"Started:       {status.startTime or '-'}",
        f"Finished:      {status.completionTime or '-'}",
        f"Duration:      {show.run_duration(run.get('status') or {}, now)}",
    ]
    if run_spec.get("params"):
        lines.append("Params:        " + ", ".join(f"{k}={v}" for k, v in sorted(run_spec["params"].items())))
    if status.message:
        lines.append(f"Message:       {status.message}")
    for condition in status.conditions:
        said = f"{condition.reason}: {condition.message}".strip(": ")
        lines.append(f"Condition:     {condition.type}={condition.status} {said}".rstrip())
    lines += ["", "Tasks:"]
    lines += [
        "  " + line for line in show.table(show.task_table(rows, pods_present=pods_present)).splitlines()
    ]
    problems = [row for row in rows if row.message]
    if problems:
        lines += ["", "Messages:"]
        lines += [f"  {row.name}: {row.message}" for row in problems]
    lines += ["", "Graph:", show.graph_with_states(spec, status).rstrip("\n"), ""]
    lines += [
        "Logs:",
        f"  leoflow logs {name} TASK [--attempt N] [--item I] -n {namespace}",
        f"  kubectl logs -n {namespace} POD -c {MAIN_CONTAINER}   (pods are labelled {RUN_LABEL}={name})",
        "  Pods marked (deleted) were cleaned up after they finished; their logs went with them.",
    ]
    return "\n".join(lines) + "\n"


# watch


async def _watch(args: argparse.Namespace) -> int:
    async with connect(args) as kube:
        try:
            run = await asyncio.wait_for(
                follow_run(kube, args.name, live=sys.stdout.isatty() and not args.plain, seen=SeenTimes()),
                args.timeout,
            )
        except TimeoutError:
            raise CommandError(f"run {args.name!r} did not finish within {args.timeout:g} s") from None
    status = run_status(run)
    print(f"run {args.name} {status.phase.value}" + (f": {status.message}" if status.message else ""))
    return EXIT_OK if status.phase is RunPhase.SUCCEEDED else EXIT_FAILED


def _finished(run: KubeObject) -> bool:
    return (run.get("status") or {}).get("phase") in {p.value for p in TERMINAL_RUN_PHASES}


async def _poll(kube: Kube, name: str) -> KubeObject:
    """A transient API failure while watching is waited out; a deleted run is an error."""
    while True:
        try:
            return await kube.transport.request("GET", DAGRUNS.path(kube.namespace, name))
        except ApiError as err:
            if err.not_found:
                raise CommandError(f"run {name!r} was deleted while being watched") from None
            if not err.transient:
                raise kube.explain(err) from None
        await asyncio.sleep(POLL_SECONDS * 4)


class SeenTimes:
    """Client-side start and finish times per unit, for units whose status details were dropped."""

    def __init__(self) -> None:
        self.times: dict[str, show.Seen] = {}

    def update(self, status: DagRunStatus) -> None:
        now = show.now_utc()
        units = [(str(i), c) for i, c in enumerate(status.taskStates)]
        units += [(f"{k}/{i}", c) for k, codes in status.items.items() for i, c in enumerate(codes)]
        for key, code in units:
            seen = self.times.get(key, show.Seen())
            if code in "qrw" and seen.started is None:
                seen = show.Seen(started=now)
            if code in "SFUKC" and seen.finished is None and seen.started is not None:
                seen = show.Seen(started=seen.started, finished=now)
            self.times[key] = seen


async def follow_run(kube: Kube, name: str, *, live: bool, seen: SeenTimes) -> KubeObject:
    """Polls the run until it ends, drawing it live (a terminal) or as one line per change.

    Polling one object every half second costs the API server less than a watch's bookkeeping
    and survives API server restarts without resuming logic.
    """
    run = await kube.get(DAGRUNS, name, "run")
    spec = await run_definition(kube, run)
    before: DagRunStatus | None = None
    phase = ""
    with ExitStack() as stack:
        view = stack.enter_context(LiveRun(name, spec)) if live else None
        while True:
            status = run_status(run)
            seen.update(status)
            if view is not None:
                view.spec = spec
                view.update(run, status, seen.times)
            else:
                if status.phase.value != phase:
                    phase = status.phase.value
                    print(f"{show.now_utc():%H:%M:%S} run {name}: {phase}", flush=True)
                for line in show.transitions(spec, before, status):
                    done = show.done_count(status)
                    print(f"{show.now_utc():%H:%M:%S} {line}  [{done}/{len(spec.tasks)}]", flush=True)
                before = status
            if _finished(run):
                return run
            await asyncio.sleep(POLL_SECONDS)
            run = await _poll(kube, name)
            pinned = (run.get("status") or {}).get("definitionHash")
            if pinned and pinned != spec.definitionHash:
                # Before the controller pins a version the live DAG is shown; re-read once they differ.
                spec = await run_definition(kube, run)


# logs


async def _logs(args: argparse.Namespace) -> int:
    async with connect(args) as kube:
        run = await kube.get(DAGRUNS, args.run, "run")
        spec = await run_definition(kube, run)
        if args.task not in spec.task_index():
            known = ", ".join(t.name for t in spec.tasks)
            raise CommandError(f"run {args.run!r} has no task {args.task!r} (tasks: {known})", EXIT_USAGE)
        task = spec.tasks[spec.task_index()[args.task]]
        if task.sensor is not None:
            raise CommandError(
                f"task {args.task!r} is a sensor: it runs in the controller, not in a pod", EXIT_USAGE
            )
        if task.fanOut is not None and args.item is None:
            raise CommandError(
                f"task {args.task!r} fans out: pass --item I (0-based) to pick one item's pod", EXIT_USAGE
            )
        pod = await _attempt_pod(kube, run, spec, args)
        await _stream_logs(kube, pod, follow=args.follow)
    return EXIT_OK


async def _attempt_pod(kube: Kube, run: KubeObject, spec: DagSpec, args: argparse.Namespace) -> KubeObject:
    selector = f"{RUN_LABEL}={args.run},{TASK_LABEL}={args.task}"
    if args.item is not None:
        selector += f",{ITEM_LABEL}={args.item}"
    pods = await kube.list(PODS, namespace=kube.namespace, selector=selector)
    if args.item is None:
        pods = [p for p in pods if ITEM_LABEL not in (p["metadata"].get("labels") or {})]
    index = spec.task_index()[args.task]
    key = str(index) if args.item is None else f"{index}/{args.item}"
    detail = run_status(run).tasks.get(key)
    attempt = args.attempt or (detail.attempt if detail else None)
    if attempt is None:
        attempts = [int(p["metadata"]["labels"].get(ATTEMPT_LABEL, "0")) for p in pods]
        attempt = max(attempts) if attempts else 1
    for pod in pods:
        if pod["metadata"]["labels"].get(ATTEMPT_LABEL) == str(attempt):
            return pod
    where = f"task {args.task!r}" + (f" item {args.item}" if args.item is not None else "")
    code = run_status(run).taskStates[index] if index < len(run_status(run).taskStates) else "."
    if code == ".":
        raise CommandError(f"run {args.run!r}: {where} has not started yet, so it has no pod and no logs")
    raise CommandError(
        f"run {args.run!r}: the pod of {where} attempt {attempt} is gone (finished pods are deleted by the "
        f"cleanup policy), and its logs with it; `leoflow describe run {args.run}` shows its result"
    )


async def _stream_logs(kube: Kube, pod: KubeObject, *, follow: bool) -> None:
    name = str(pod["metadata"]["name"])
    query = [("container", MAIN_CONTAINER)] + ([("follow", "true")] if follow else [])
    path = PODS.path(kube.namespace, name, "log")
    deadline = asyncio.get_running_loop().time() + 120
    while True:
        try:
            response = await kube.transport.open(
                "GET",
                path,
                query=query,
                client_timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
                verb="logs",
            )
            break
        except ApiError as err:
            waiting = err.code == 400 and "waiting to start" in err.message
            if err.not_found and not type_missing(err):
                raise CommandError(
                    f"pod {name} was deleted (cleanup policy); its logs went with it"
                ) from None
            if not waiting:
                raise kube.explain(err) from None
            if not follow or asyncio.get_running_loop().time() > deadline:
                raise CommandError(
                    f"pod {name}: the main container has not started yet ({err.message})"
                ) from None
            await asyncio.sleep(1)
    try:
        async for chunk in response.content.iter_any():
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
    finally:
        response.release()


# cancel and retry


async def _annotate(kube: Kube, name: str, annotations: dict[str, str | None]) -> KubeObject:
    return await kube.request(
        "PATCH",
        DAGRUNS.path(kube.namespace, name),
        body={"metadata": {"annotations": annotations}},
        content_type="application/merge-patch+json",
        verb="annotate",
    )


async def _cancel(args: argparse.Namespace) -> int:
    async with connect(args) as kube:
        run = await kube.get(DAGRUNS, args.name, "run")
        phase = run_status(run).phase
        if phase is RunPhase.CANCELLED:
            print(f"run {args.name} is already Cancelled")
            return EXIT_OK
        if phase in TERMINAL_RUN_PHASES:
            raise CommandError(f"run {args.name!r} already {phase.value}: there is nothing to cancel")
        await _annotate(kube, args.name, {CANCEL_ANNOTATION: "true"})
    print(f"run {args.name}: cancel requested; `leoflow watch run {args.name}` follows it")
    return EXIT_OK


async def _retry(args: argparse.Namespace) -> int:
    async with connect(args) as kube:
        run = await kube.get(DAGRUNS, args.name, "run")
        phase = run_status(run).phase
        if args.failed:
            if phase not in (RunPhase.FAILED, RunPhase.CANCELLED):
                raise CommandError(
                    f"run {args.name!r} is {phase.value}: "
                    "only a Failed or Cancelled run can be retried in place"
                )
            notes = run["metadata"].get("annotations") or {}
            current = notes.get(RETRY_ANNOTATION, "0")
            generation = int(current) + 1 if str(current).isdigit() else 1
            await _annotate(kube, args.name, {RETRY_ANNOTATION: str(generation), CANCEL_ANNOTATION: None})
            print(f"run {args.name}: retry {generation} requested (failed and cancelled tasks run again)")
            return EXIT_OK
        if phase not in TERMINAL_RUN_PHASES:
            raise CommandError(
                f"run {args.name!r} is {phase.value}: wait for it to finish, or cancel it first"
            )
        created = await kube.request("POST", DAGRUNS.path(kube.namespace), body=rerun(run), verb="create")
    print(
        f"dagrun.leoflow.io/{created['metadata']['name']} created "
        f"(a new run of {args.name}'s DAG, params and logical date)"
    )
    return EXIT_OK


def rerun(run: KubeObject) -> KubeObject:
    """A new run of the same definition, params and logical date as ``run``."""
    spec = dict(run.get("spec") or {})
    pinned = (run.get("status") or {}).get("definitionHash")
    if pinned and not spec.get("definitionHash"):
        spec["definitionHash"] = pinned
    dag = str(spec.get("dagName", ""))
    return {
        "apiVersion": API_VERSION,
        "kind": "DAGRun",
        "metadata": {"generateName": f"{dag}-", "labels": {"leoflow.io/dag": dag}},
        "spec": spec,
    }

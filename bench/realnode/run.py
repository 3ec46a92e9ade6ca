"""Real node: from an upstream task's process exit to the downstream task's process start.

Everything is real, as in ``make demo``: the dev cluster's kubelet + containerd node, the webhook
and the controller as processes on this machine, the Go agent injected into every pod of the
agent path. Each task prints a wall-clock stamp as its first and its last action (stamps.py; one
host clock for every container of the node), so a transition's gap is the downstream's first
stamp minus the unlocking upstream's last stamp, read back from the kept pods' logs.

One controller per path runs, each scoped to a namespace of its own, and the runs alternate
between them (one run at a time on the node, the order rotated each round, so load drifts reach
every path alike; ``--paths`` picks which):

* **agent**: the webhook injects the agent, which reports ``Finished`` over gRPC with TLS (real
  TokenReview) to the controller; the pod watch only confirms.
* **agent-in-image**: the same, but the tasks' image already holds the agent
  (``leoflow.dev/base-agent:dev``, the base image plus ``/usr/local/bin/leoflow-agent``) and this
  path's webhook has ``--agent-in-image`` for it, so its pods get no init container.
* **prestart** and **prestart-in-image**: the two agent paths with ``defaults: {prestart: true}``:
  each task's pod is created while its upstreams run and its agent waits in ``WaitStart`` until
  the controller releases it, so no pod start lies between two tasks.
* **pod**: the controller runs with ``--no-agent-server`` and the webhook does not select its
  namespace, so its pods run the bare command and only the pod watch completes tasks (what the
  pod-status path covers: pods without a working agent).

Both keep every pod (``--cleanup keep-all``). Shapes: chains of ``--chain`` tasks, and a fan
(one task, ``--fan-width`` tasks after it, one task after all of them: fan-out and fan-in edges).
The first ``--warmup`` round is not counted. Each edge is broken down with this process's own
pod watch (wall clock, same host): when the downstream pod was seen (about when the API server
accepted it), scheduled, and, for the unlocking upstream, when its pod was seen Succeeded (what
the pod-status path waits for). The controllers' own ``leoflow_task_transition_seconds``
histograms (``leoflow_task_release_seconds`` for the prestart paths) are scraped at the end.
Writes bench/results/realnode.json.

The cluster is its own (the shared ``make bench`` cluster has no real node): ``--home`` (default
bench/results/.realnode-cluster) is brought up with a real node and no KWOK nodes, and stopped at
the end unless it was already running or ``--keep-cluster`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AsyncExitStack, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import RESULTS, percentile, scrape, write_result
from crilog import PodStart, pod_starts
from kubernetes_asyncio.config import new_client_from_config
from prometheus_client.parser import text_string_to_metric_families
from stamps import Edge, StampError, Stamps, edges, parse_stamps, task_script

from leoflow.agent_inject.names import INIT_CONTAINER
from leoflow.cli import CommandError, demo
from leoflow.controller.kube.informer import EventType, Informer, InformerOptions
from leoflow.controller.kube.transport import DAGRUNS, PODS, KubeObject, Transport
from leoflow.controller.podnames import ATTEMPT_LABEL, MAIN_CONTAINER, RUN_LABEL, TASK_LABEL
from leoflow.dev import cluster, images
from leoflow.dev.node import NODE_TYPE_LABEL, load_image
from leoflow.dev.processes import Layout, free_port
from leoflow.spec.compiler import compile_text
from leoflow.webhook.registration import only_namespaces, webhook_configuration

PATHS = ("agent", "agent-in-image", "prestart", "prestart-in-image", "pod")
IMAGES = {
    "agent": images.BASE_IMAGE,
    "agent-in-image": images.BASE_WITH_AGENT_IMAGE,
    "prestart": images.BASE_IMAGE,
    "prestart-in-image": images.BASE_WITH_AGENT_IMAGE,
    "pod": images.BASE_IMAGE,
}
PRESTART = frozenset({"prestart", "prestart-in-image"})
IN_IMAGE = frozenset({"agent-in-image", "prestart-in-image"})
TERMINAL = ("Succeeded", "Failed", "Cancelled")


def chain(length: int) -> dict[str, list[str]]:
    return {f"t{i}": [f"t{i - 1}"] if i else [] for i in range(length)}


def fan(width: int) -> dict[str, list[str]]:
    branches = [f"b{i}" for i in range(width)]
    return {"src": [], **{b: ["src"] for b in branches}, "join": branches}


def dag_text(
    name: str,
    upstreams: dict[str, list[str]],
    image: str = images.BASE_IMAGE,
    *,
    prestart: bool = False,
    task_seconds: float = 0.0,
) -> str:
    """A leoflow.yaml whose every task prints its two stamps (``task_seconds`` apart), on the real
    node, no retries."""
    command = json.dumps(["sh", "-c", task_script(task_seconds)])
    selector = json.dumps({NODE_TYPE_LABEL: "real"})
    ahead = f", prestart: {str(prestart).lower()}"
    lines = [
        f"dag: {name}",
        f"image: {image}",
        f"defaults: {{nodeSelector: {selector}, retries: 0{ahead}}}",
        "tasks:",
    ]
    for task, ups in upstreams.items():
        after = f"after: {json.dumps(ups)}, " if ups else ""
        lines.append(f"  {task}: {{{after}command: {command}}}")
    return "\n".join(lines) + "\n"


@dataclass
class PodTimes:
    """Wall-clock times at which this process's watch first saw a pod in each state."""

    added: float | None = None
    scheduled: float | None = None
    terminated: float | None = None
    """The main container's terminated state: what the pod-status path completes a task on."""
    succeeded: float | None = None
    """The pod's phase, which the kubelet sets only once the pod is torn down."""


@dataclass
class PodWatch:
    """Records PodTimes by pod name from an informer on one namespace."""

    times: dict[str, PodTimes] = field(default_factory=dict)

    def seen(self, pod: str) -> PodTimes:
        return self.times.get(pod, PodTimes())

    def on_pod(self, kind: EventType, old: KubeObject | None, new: KubeObject | None) -> None:
        now = time.time()
        if new is None or kind is EventType.RESYNC:
            return
        seen = self.times.setdefault(str(new["metadata"]["name"]), PodTimes())
        status = new.get("status") or {}
        if seen.added is None:
            seen.added = now
        if seen.scheduled is None and (new.get("spec") or {}).get("nodeName"):
            seen.scheduled = now
        if seen.terminated is None and any(
            c.get("name") == MAIN_CONTAINER and "terminated" in (c.get("state") or {})
            for c in status.get("containerStatuses") or []
        ):
            seen.terminated = now
        if seen.succeeded is None and status.get("phase") == "Succeeded":
            seen.succeeded = now


@dataclass(frozen=True)
class RunRecord:
    """One finished run: its edges, every task's stamps, and the pod that ran each task."""

    edges: list[Edge]
    stamps: dict[str, Stamps]
    pods: dict[str, str]


@dataclass
class Lane:
    """One path: its namespace, controller, pod watch and what its runs measured."""

    path: str
    namespace: str
    metrics_port: int
    watch: PodWatch = field(default_factory=PodWatch)
    runs: list[RunRecord] = field(default_factory=list)
    failed_runs: list[str] = field(default_factory=list)


def summary(seconds: Sequence[float]) -> dict[str, float | int]:
    ms = [s * 1000 for s in seconds]
    if not ms:
        return {"count": 0}
    return {
        "p50_ms": round(percentile(ms, 50), 1),
        "p90_ms": round(percentile(ms, 90), 1),
        "p99_ms": round(percentile(ms, 99), 1),
        "max_ms": round(max(ms), 1),
        "mean_ms": round(sum(ms) / len(ms), 1),
        "count": len(ms),
    }


def edge_record(
    edge: Edge, run: RunRecord, lane: Lane, starts: dict[tuple[str, str], PodStart]
) -> dict[str, Any]:
    """The edge's gap and its parts, each the difference of two readings of the same host clock."""
    up_exit = run.stamps[edge.upstream].last
    first = run.stamps[edge.task].first
    down = lane.watch.seen(run.pods[edge.task])
    up = lane.watch.seen(run.pods[edge.upstream])
    record: dict[str, Any] = {"kind": edge.kind, "gap": edge.gap}
    if down.added is not None:
        record["exit_to_pod_seen"] = down.added - up_exit
        record["pod_seen_to_start"] = first - down.added
        if down.scheduled is not None:
            record["pod_seen_to_scheduled"] = down.scheduled - down.added
    if up.terminated is not None:
        record["exit_to_upstream_terminated_seen"] = up.terminated - up_exit
        if down.added is not None:
            record["upstream_terminated_seen_to_pod_seen"] = down.added - up.terminated
    if up.succeeded is not None:
        record["exit_to_upstream_phase_succeeded_seen"] = up.succeeded - up_exit
    start = starts.get((lane.namespace, run.pods[edge.task]))
    main = start.containers.get(MAIN_CONTAINER) if start else None
    if start is None or main is None or start.sandbox_requested is None or start.sandbox_ready is None:
        return record
    if down.added is not None:
        record["pod_seen_to_sandbox_requested"] = start.sandbox_requested - down.added
    record["sandbox_requested_to_ready"] = start.sandbox_ready - start.sandbox_requested
    if main.create_requested is not None:
        record["sandbox_ready_to_main_create"] = main.create_requested - start.sandbox_ready
        init = start.containers.get(INIT_CONTAINER)
        if init is not None and init.started is not None:
            record["init_started_to_main_create"] = main.create_requested - init.started
        if main.started is not None:
            record["main_create_to_started"] = main.started - main.create_requested
            record["main_started_to_first_stamp"] = first - main.started
    return record


async def run_once(
    transport: Transport,
    state: cluster.ClusterState,
    lane: Lane,
    *,
    dag: str,
    upstreams: dict[str, list[str]],
    name: str,
    within: float,
) -> RunRecord | None:
    """Creates one DAGRun, waits for its end and reads its pods' stamps; None if it failed."""
    body = {
        "apiVersion": "leoflow.io/v1alpha1",
        "kind": "DAGRun",
        "metadata": {"name": name},
        "spec": {"dagName": dag},
    }
    await transport.request("POST", DAGRUNS.path(lane.namespace), body=body)
    deadline = time.monotonic() + within
    phase = ""
    while phase not in TERMINAL:
        if time.monotonic() > deadline:
            lane.failed_runs.append(f"{name}: not finished within {within:g} s (phase {phase or 'none'})")
            return None
        await asyncio.sleep(0.25)
        run = await transport.request("GET", DAGRUNS.path(lane.namespace, name))
        phase = str((run.get("status") or {}).get("phase") or "")
    if phase != "Succeeded":
        lane.failed_runs.append(f"{name}: {phase}: {(run.get('status') or {}).get('message', '')}")
        return None
    listed = await transport.request(
        "GET", PODS.path(lane.namespace), query=[("labelSelector", f"{RUN_LABEL}={name}")]
    )
    pods: dict[str, str] = {}
    attempts: dict[str, int] = {}
    for pod in listed.get("items", []):
        labels = pod["metadata"]["labels"]
        task, attempt = labels[TASK_LABEL], int(labels.get(ATTEMPT_LABEL, "1"))
        if attempt >= attempts.get(task, 0):
            pods[task], attempts[task] = str(pod["metadata"]["name"]), attempt
    # On the agent path the run can succeed before the kubelet has reported the last pod's main
    # container as started; the API server serves its log only after that.
    while not all(lane.watch.seen(pod_name).succeeded for pod_name in pods.values()):
        if time.monotonic() > deadline:
            lane.failed_runs.append(f"{name}: its pods not all seen Succeeded within {within:g} s")
            return None
        await asyncio.sleep(0.25)
    stamps: dict[str, Stamps] = {}
    for task, pod_name in pods.items():
        log = await asyncio.to_thread(
            cluster.kubectl, state, "logs", "-n", lane.namespace, pod_name, "-c", MAIN_CONTAINER
        )
        stamps[task] = parse_stamps(log.stdout, f"{lane.namespace}/{pod_name}")
    return RunRecord(edges(upstreams, stamps), stamps, pods)


def transition_histogram(metrics_text: str, family_name: str = "leoflow_task_transition") -> dict[str, Any]:
    """``<family_name>_seconds`` by path: count, mean, and p50/p90/p99 as the upper bound of the
    bucket they fall in (what a histogram can tell)."""
    buckets: dict[str, list[tuple[float, float]]] = {}
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name not in (family_name, f"{family_name}_seconds"):
            continue
        for sample in family.samples:
            path = sample.labels.get("path", "")
            if sample.name.endswith("_bucket"):
                buckets.setdefault(path, []).append((float(sample.labels["le"]), sample.value))
            elif sample.name.endswith("_sum"):
                sums[path] = sample.value
    result: dict[str, Any] = {}
    for path, pairs in buckets.items():
        pairs.sort()
        total = pairs[-1][1]
        if not total:
            continue

        def bound(pct: float, pairs: list[tuple[float, float]] = pairs, total: float = total) -> float | None:
            le = next(le for le, count in pairs if count >= pct / 100 * total)
            return None if le == float("inf") else round(le * 1000, 1)

        result[path] = {
            "count": int(total),
            "mean_ms": round(1000 * sums.get(path, 0.0) / total, 1),
            "p50_le_ms": bound(50),
            "p90_le_ms": bound(90),
            "p99_le_ms": bound(99),
        }
    return result


def lane_result(lane: Lane, starts: dict[tuple[str, str], PodStart]) -> dict[str, Any]:
    records = [edge_record(edge, run, lane, starts) for run in lane.runs for edge in run.edges]
    by_kind: dict[str, list[float]] = {}
    for record in records:
        by_kind.setdefault(record["kind"], []).append(record["gap"])
    parts = (
        "exit_to_pod_seen",
        "pod_seen_to_scheduled",
        "pod_seen_to_start",
        "exit_to_upstream_terminated_seen",
        "upstream_terminated_seen_to_pod_seen",
        "exit_to_upstream_phase_succeeded_seen",
        "pod_seen_to_sandbox_requested",
        "sandbox_requested_to_ready",
        "sandbox_ready_to_main_create",
        "init_started_to_main_create",
        "main_create_to_started",
        "main_started_to_first_stamp",
    )
    return {
        "gap": summary([r["gap"] for r in records]),
        "gap_by_kind": {kind: summary(gaps) for kind, gaps in sorted(by_kind.items())},
        "breakdown": {part: summary([r[part] for r in records if part in r]) for part in parts},
        "failed_runs": lane.failed_runs,
    }


def ratio(top: dict[str, Any], bottom: dict[str, Any], stat: str) -> float | None:
    if not top.get(stat) or not bottom.get(stat):
        return None
    return round(float(top[stat]) / float(bottom[stat]), 2)


def difference(left: dict[str, Any], right: dict[str, Any], stat: str) -> float | None:
    if stat not in left or stat not in right:
        return None
    return round(float(left[stat]) - float(right[stat]), 1)


def comparisons(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each pair of paths measured: the gap's ratio, and the difference in pod start at p50 (the
    same kubelet work with and without the injection, and with the agent copied or in the image)."""
    out: dict[str, Any] = {}
    pairs = (
        ("pod", "agent"),
        ("agent-in-image", "agent"),
        ("pod", "agent-in-image"),
        ("prestart", "agent"),
        ("prestart-in-image", "agent-in-image"),
    )
    for top, bottom in pairs:
        if top not in results or bottom not in results:
            continue
        top_key, bottom_key = top.replace("-", "_"), bottom.replace("-", "_")
        out[f"{top_key}_over_{bottom_key}"] = {
            stat: ratio(results[top]["gap"], results[bottom]["gap"], stat) for stat in ("p50_ms", "p90_ms")
        }
        out[f"pod_start_{bottom_key}_minus_{top_key}_p50_ms"] = difference(
            results[bottom]["breakdown"]["pod_seen_to_start"],
            results[top]["breakdown"]["pod_seen_to_start"],
            "p50_ms",
        )
    return out


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


@contextmanager
def registered(
    state: cluster.ClusterState, path: str, url: str, tls: demo.Tls, namespace: str
) -> Iterator[None]:
    """One MutatingWebhookConfiguration per injected path, scoped to that path's namespace."""
    name = f"leoflow-realnode-{path}"
    config = webhook_configuration(
        name, url=url, ca_bundle=tls.ca.read_bytes(), namespace_selector=only_namespaces([namespace])
    )
    demo.kubectl(state, "apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps(config))
    try:
        yield
    finally:
        cluster.kubectl(
            state, "delete", "mutatingwebhookconfiguration", name, "--ignore-not-found", check=False
        )


def webhook_argv(path: str, port: int, agent_addr: str, tls: demo.Tls) -> list[str]:
    """The demo's webhook; on the agent-in-image path it knows the tasks' image holds the agent."""
    argv = demo.webhook_argv(port, agent_addr, tls)
    if path in IN_IMAGE:
        argv += ["--agent-in-image", f"{images.BASE_WITH_AGENT_IMAGE}={images.AGENT_IN_IMAGE_PATH}"]
    return argv


@contextmanager
def processes(state: cluster.ClusterState, lanes: dict[str, Lane], work: Path) -> Iterator[None]:
    """One controller per lane; for each injected lane a webhook reporting to its controller and
    selecting its namespace only."""
    address = state.node_address
    if address is None:
        raise SystemExit(f"the cluster in {state.home} has no real node")
    tls = demo.write_tls(work / "tls", ("127.0.0.1", address))
    for lane in lanes.values():
        demo.prepare_namespace(state, lane.namespace, tls)
    agent_addrs = {path: f"{address}:{free_port(address)}" for path in lanes if path != "pod"}
    with ExitStack() as stack:
        for path, lane in lanes.items():
            if path == "pod":
                argv = [
                    sys.executable, "-m", "leoflow", "controller", "run",
                    "--kubeconfig", str(state.kubeconfig), "--namespace", lane.namespace,
                    "--no-leader-elect", "--no-agent-server",
                    "--metrics-address", f"127.0.0.1:{lane.metrics_port}",
                ]  # fmt: skip
            else:
                argv = demo.controller_argv(state, lane.namespace, agent_addrs[path], lane.metrics_port, tls)
            name = f"controller-{path}"
            process = stack.enter_context(demo.child(name, [*argv, "--cleanup", "keep-all"], work))
            url = f"http://127.0.0.1:{lane.metrics_port}/readyz"
            demo.wait_ready(name, process, url, None, work / f"{name}.log")
        context = ssl.create_default_context(cafile=str(tls.ca))
        for path, agent_addr in agent_addrs.items():
            port = free_port("127.0.0.1")
            name = f"webhook-{path}"
            webhook = stack.enter_context(demo.child(name, webhook_argv(path, port, agent_addr, tls), work))
            demo.wait_ready(name, webhook, f"https://127.0.0.1:{port}/readyz", context, work / f"{name}.log")
            url = f"https://127.0.0.1:{port}/mutate-pods"
            stack.enter_context(registered(state, path, url, tls, lanes[path].namespace))
        yield


async def measure(state: cluster.ClusterState, args: argparse.Namespace) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:6]
    paths: tuple[str, ...] = tuple(args.paths)
    lanes = {path: Lane(path, f"realnode-{path}-{suffix}", free_port("127.0.0.1")) for path in paths}
    shapes = {"chain": chain(args.chain), "fan": fan(args.fan_width)}
    schedule = [("chain", i) for i in range(args.warmup + args.runs)]
    schedule += [("fan", i) for i in range(args.warmup + args.fan_runs)]
    work = Path(state.home) / "realnode-bench"
    api = await new_client_from_config(config_file=str(state.kubeconfig))
    transport = Transport(api)
    loads: list[float] = []
    started = load()
    began = time.monotonic()
    try:
        with processes(state, lanes, work):
            for path, lane in lanes.items():
                for dag, upstreams in shapes.items():
                    text = dag_text(
                        dag,
                        upstreams,
                        IMAGES[path],
                        prestart=path in PRESTART,
                        task_seconds=args.task_seconds,
                    )
                    resource = compile_text(text).resource(lane.namespace)
                    demo.kubectl(state, "apply", "--server-side", "-f", "-", input=json.dumps(resource))
            watches = []
            for lane in lanes.values():
                watch = Informer(
                    transport, PODS, namespace=lane.namespace, options=InformerOptions(resync_period=None)
                )
                watch.add_handler(lane.watch.on_pod)
                watches.append(watch)
            async with AsyncExitStack() as informers:
                for watch in watches:
                    await informers.enter_async_context(watch)
                for watch in watches:
                    await watch.wait_synced()
                for number, (dag, i) in enumerate(schedule):
                    turn = number % len(paths)
                    for path in paths[turn:] + paths[:turn]:
                        lane = lanes[path]
                        record = await run_once(
                            transport,
                            state,
                            lane,
                            dag=dag,
                            upstreams=shapes[dag],
                            name=f"{dag}-{i:03d}",
                            within=args.timeout,
                        )
                        if record is not None and i >= args.warmup:
                            lane.runs.append(record)
                    loads.append(os.getloadavg()[0])
                    print(f"{dag} {i}: load {loads[-1]:.2f}", flush=True)
                scraped = {path: scrape(lane.metrics_port) for path, lane in lanes.items()}
                metrics = {path: transition_histogram(text) for path, text in scraped.items()}
                releases = {
                    path: transition_histogram(text, "leoflow_task_release")
                    for path, text in scraped.items()
                    if path in PRESTART
                }
    finally:
        await api.close()
        for lane in lanes.values():
            cluster.kubectl(state, "delete", "namespace", lane.namespace, "--wait=false", check=False)
    containerd_log = Layout(state.home).log_file("containerd").read_text(errors="replace")
    starts = pod_starts(containerd_log)
    results = {path: lane_result(lane, starts) for path, lane in lanes.items()}
    return {
        "what": "upstream process exit (last stamp) -> downstream process start (first stamp), real node",
        "shapes": {"chain_tasks": args.chain, "fan_width": args.fan_width, "task_seconds": args.task_seconds},
        "runs_per_path": {"chain": args.runs, "fan": args.fan_runs, "warmup_rounds_not_counted": args.warmup},
        **{f"{path.replace('-', '_')}_path": result for path, result in results.items()},
        **comparisons(results),
        "controller_transition_histogram": metrics,
        "controller_release_histogram": releases,
        "machine_load": {
            "at_start_1_5_15m": started,
            "at_end_1_5_15m": load(),
            "mean_1m_over_rounds": round(sum(loads) / len(loads), 2) if loads else None,
            "max_1m_over_rounds": round(max(loads), 2) if loads else None,
        },
        "seconds": round(time.monotonic() - began, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=Path(os.environ.get("LEOFLOW_BENCH_REALNODE_HOME", RESULTS / ".realnode-cluster")),
    )
    parser.add_argument("--keep-cluster", action="store_true", help="leave the cluster running at the end")
    parser.add_argument("--runs", type=int, default=10, help="chain runs per path")
    parser.add_argument("--chain", type=int, default=6, help="tasks per chain")
    parser.add_argument("--fan-runs", type=int, default=5, help="fan runs per path")
    parser.add_argument("--fan-width", type=int, default=3, help="tasks between the fan's first and last")
    parser.add_argument("--warmup", type=int, default=1, help="rounds of each shape not counted")
    parser.add_argument(
        "--task-seconds",
        type=float,
        default=0.0,
        help="how long each task runs between its stamps (prestart gains most when it outlasts a pod start)",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one run may take")
    parser.add_argument(
        "--paths", nargs="+", choices=PATHS, default=list(PATHS), help="paths to measure (default: all)"
    )
    args = parser.parse_args()
    home = args.home.resolve()
    was_running = cluster.ClusterState.load(home) is not None
    state = cluster.up(cluster.UpOptions(home=home, kwok_nodes=0, real_node=True))
    try:
        cluster.install_crds(state)
        agent = demo.agent_binary()
        load_image(home, images.agent_spec(agent))
        load_image(home, images.base_with_agent_spec(agent))
        result = asyncio.run(measure(state, args))
    except (StampError, CommandError, cluster.ClusterError) as err:
        print(f"realnode: {err}", file=sys.stderr)
        return 1
    finally:
        if not (was_running or args.keep_cluster):
            cluster.down(home)
    path = write_result("realnode", result)
    print(f"{path}: {json.dumps(result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

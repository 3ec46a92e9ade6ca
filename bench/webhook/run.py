"""The webhook's cost: reviews per second on one core, and the latency it adds to pod creation.

1. Throughput: the real ``leoflow webhook serve`` in a subprocess pinned to one CPU; a local
   aiohttp client pinned to the other keeps ``--concurrency`` reviews in flight over HTTPS
   keep-alive connections to 127.0.0.1, for a bounded count and time. A Python client on one
   core cannot always saturate the server, so the server's own CPU time is measured too and
   ``server_reviews_per_cpu_s`` (reviews per second of server CPU) is the one-core capacity the
   goal (at least 2,000) is judged on; ``limited_by`` says which side ran out first.
2. Latency through the API server (skipped with ``--no-cluster``; see ``through_apiserver``):
   pods created one at a time, then at ``--rate`` (default 200/s), with no webhook, with
   Leoflow's (and with Leoflow's for pods that arrive already injected), and with its floors
   (aiohttp and Go/HTTP2 servers that answer at once, without a patch, with one annotation, or
   with Leoflow's patch computed beforehand), interleaved in one run; goal p99 added at most
   5 ms at 200/s. When the API server cannot absorb the rate even without a webhook, or a floor
   beats the baseline by more than 1 ms (its blocks were disturbed), the goal is reported as not
   judged (null).

Writes bench/results/webhook.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import ssl
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import servers
import through_apiserver
from benchlib import bench_cluster, summary_ms, write_result

from leoflow.agent_inject import inject
from leoflow.dev.processes import Layout, pid_of

GOAL_REVIEWS_PER_S = 2000
SERIAL_CREATES = 200


def task_pod(i: int) -> dict[str, Any]:
    """A pod as the controller creates it: identity labels, one container, a few env vars."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"etl-run-20260101-extract-{i}-1",
            "namespace": "work",
            "labels": {
                "leoflow.io/inject": "true",
                "leoflow.io/dag": "etl",
                "leoflow.io/run": "etl-20260101",
                "leoflow.io/task": "extract",
                "leoflow.io/attempt": "1",
                "app.kubernetes.io/managed-by": "leoflow",
            },
            "annotations": {"leoflow.io/attempt-key": f"etl/etl-20260101/extract/{i}"},
        },
        "spec": {
            "restartPolicy": "Never",
            "serviceAccountName": "default",
            "containers": [
                {
                    "name": "main",
                    "image": "registry.local/etl:2026.1",
                    "command": ["python", "-m", "etl.extract"],
                    "args": ["--date", "2026-01-01", "--shard", str(i)],
                    "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "REGION", "value": "eu"}],
                    "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}},
                }
            ],
        },
    }


def review_body(i: int) -> bytes:
    return json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": f"00000000-0000-0000-0000-{i:012d}",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "operation": "CREATE",
                "namespace": "work",
                "object": task_pod(i),
                "dryRun": False,
            },
        }
    ).encode()


def mutation_only(count: int) -> dict[str, Any]:
    pods = [task_pod(i) for i in range(count)]
    started = time.perf_counter()
    for p in pods:
        inject(p, servers.INJECTION)
    elapsed = time.perf_counter() - started
    return {"mutations_per_s": round(count / elapsed, 1), "mean_us": round(elapsed / count * 1e6, 1)}


async def drive(
    url: str, context: ssl.SSLContext, *, total: int, concurrency: int, max_seconds: float
) -> dict[str, Any]:
    bodies = [review_body(i) for i in range(min(total, 512))]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    next_index = 0
    deadline = time.monotonic() + max_seconds
    connector = aiohttp.TCPConnector(limit=concurrency, ssl=context)
    async with aiohttp.ClientSession(connector=connector) as session:
        # Warm up connections and the server's code paths before timing.
        await asyncio.gather(
            *(
                session.post(url, data=bodies[0], headers={"Content-Type": "application/json"})
                for _ in range(concurrency)
            )
        )

        async def worker() -> None:
            nonlocal next_index
            while next_index < total and time.monotonic() < deadline:
                body = bodies[next_index % len(bodies)]
                next_index += 1
                started = time.perf_counter()
                async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
                    await resp.read()
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "reviews": len(latencies),
        "seconds": round(elapsed, 3),
        "reviews_per_s": round(len(latencies) / elapsed, 1),
        "latency": summary_ms(latencies),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


def throughput(
    args: argparse.Namespace, tls: servers.Tls, server_cpu: int, client_cpu: int
) -> dict[str, Any]:
    everywhere = os.sched_getaffinity(0)
    with servers.leoflow(tls, server_cpu) as server:
        servers.pin(client_cpu)
        clock = through_apiserver.CpuClock({"server": server.pid})
        context = ssl.create_default_context(cafile=str(tls.ca))
        cpu_before = clock.read()["server"]
        served = asyncio.run(
            drive(
                f"{server.url}?timeout=5s",
                context,
                total=args.reviews,
                concurrency=args.concurrency,
                max_seconds=args.seconds,
            )
        )
        server_cpu_seconds = clock.read()["server"] - cpu_before
        os.sched_setaffinity(0, everywhere)
    utilisation = server_cpu_seconds / served["seconds"]
    capacity = served["reviews"] / server_cpu_seconds if server_cpu_seconds > 0 else float("inf")
    return {
        "server_cpus": 1 if server_cpu != client_cpu else "shared with the client (one CPU available)",
        "concurrency": args.concurrency,
        "review_bytes": len(review_body(0)),
        **served,
        "server_cpu_utilisation": round(utilisation, 3),
        "server_reviews_per_cpu_s": round(capacity, 1),
        "limited_by": "server" if utilisation > 0.9 else "client",
        "mutation_only": mutation_only(2000),
        "meets_goal": capacity >= GOAL_REVIEWS_PER_S,
    }


def through_api_server(args: argparse.Namespace, tls: servers.Tls, work: Path) -> dict[str, Any]:
    """Leoflow's webhook and the floors, unpinned: they share the machine with the control plane."""
    go_binary = servers.build_go_floor(work)
    patch_file = work / "static-patch.b64"
    patch_file.write_text(through_apiserver.leoflow_patch(servers.INJECTION, args.placement))
    annotation_file = work / "annotation-patch.b64"
    annotation_file.write_text(
        through_apiserver.leoflow_patch(servers.INJECTION, args.placement, annotation_only=True)
    )
    with bench_cluster() as state, contextlib.ExitStack() as stack:
        running = [
            stack.enter_context(servers.leoflow(tls)),
            stack.enter_context(servers.leoflow(tls, name=through_apiserver.PREINJECTED)),
            stack.enter_context(servers.aiohttp_floor(tls, "aiohttp-noop")),
            stack.enter_context(servers.aiohttp_floor(tls, "aiohttp-annotation-patch", annotation_file)),
            stack.enter_context(servers.aiohttp_floor(tls, "aiohttp-static-patch", patch_file)),
        ]
        if isinstance(go_binary, Path):
            running.append(stack.enter_context(servers.go_floor(tls, go_binary)))
        layout = Layout(state.home)
        pids = {name: pid for name in through_apiserver.CLUSTER_PROCESSES if (pid := pid_of(layout, name))}
        measured = asyncio.run(
            through_apiserver.measure(
                state.kubeconfig,
                running,
                tls.ca,
                pids,
                pods=args.pods,
                rate=args.rate,
                block_seconds=args.block_seconds,
                serial=SERIAL_CREATES,
                placement=args.placement,
                injection=servers.INJECTION,
            )
        )
    if isinstance(go_binary, str):
        measured["skipped"] = {"go-http2-noop": go_binary}
    return measured


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reviews", type=int, default=40_000, help="reviews to send at most")
    parser.add_argument("--seconds", type=float, default=20.0, help="stop sending after this long")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--no-cluster", action="store_true", help="skip the API server latency part")
    parser.add_argument("--no-throughput", action="store_true", help="skip the one-core throughput part")
    parser.add_argument("--rate", type=float, default=200.0, help="pod creations per second")
    parser.add_argument(
        "--pods", type=int, default=2500, help="pods created at --rate per condition (5 rounds of 500)"
    )
    parser.add_argument(
        "--block-seconds", type=float, default=2.5, help="length of one condition's block at --rate"
    )
    parser.add_argument(
        "--placement",
        choices=sorted(through_apiserver.PLACEMENTS),
        default="unscheduled",
        help="unscheduled: pods stay Pending, so the API server serves the creates alone; "
        "kwok: pods are scheduled and run on KWOK nodes, adding a bind and status writes per pod",
    )
    args = parser.parse_args()

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    server_cpu, client_cpu = cpus[0], cpus[-1]
    result: dict[str, Any] = {
        "goal_reviews_per_s": GOAL_REVIEWS_PER_S,
        # Other work on the machine skews every number here; this says how busy it was.
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
    }
    with tempfile.TemporaryDirectory() as tmp:
        tls = servers.generate_tls(Path(tmp))
        if not args.no_throughput:
            result.update(throughput(args, tls, server_cpu, client_cpu))
        if not args.no_cluster:
            result["through_api_server"] = through_api_server(args, tls, Path(tmp))
    result["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    path = write_result("webhook", result)
    print(json.dumps(result, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Scale: 10,000 live KWOK pods through the controller process.

Creates RUNS DAGRuns of a DAG with TASKS independent tasks whose pods stay Running (KWOK
``succeed-after`` far in the future), so the controller ends up holding RUNS x TASKS live pods in
its caches. Reports the controller's pod creation rate (from its own ``leoflow_pods_created_total``)
as a ratio of the bare-client baseline measured in the same ``make bench`` run
(bench/results/baseline.json; goal >= 0.9), and its resident memory once every pod exists (goal
<= 500 MB). Writes bench/results/scale.json.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import bench_cluster, read_result, scrape, write_result

from leoflow.dev import cluster
from leoflow.dev.kwok import simulated_pod_placement
from leoflow.dev.processes import free_port
from leoflow.spec.compiler import compile_text

CREATED = re.compile(r'^leoflow_pods_created_total\{result="created"\} ([0-9.e+]+)$', re.MULTILINE)


def dag_text(tasks: int) -> str:
    placement = simulated_pod_placement()
    lines = [
        "dag: scale",
        "image: leoflow.dev/base:1",
        f"defaults: {{nodeSelector: {json.dumps(placement['nodeSelector'])}, "
        f"tolerations: {json.dumps(placement['tolerations'])}}}",
        "tasks:",
    ]
    lines += [f"  t{i}: {{command: [work]}}" for i in range(tasks)]
    return "\n".join(lines) + "\n"


def created(port: int) -> float:
    match = CREATED.search(scrape(port))
    return float(match.group(1)) if match else 0.0


def memory_kb(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def measure(state: cluster.ClusterState, runs: int, tasks: int, settle: float) -> dict[str, Any]:
    def kubectl(*args: str, input: str | None = None) -> str:
        return cluster.kubectl(state, *args, input=input, timeout=600).stdout

    cluster.install_crds(state)
    namespace = f"scale-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", namespace)
    kubectl(
        "apply",
        "--server-side",
        "-f",
        "-",
        input=json.dumps(compile_text(dag_text(tasks)).resource(namespace)),
    )
    port = free_port()
    log = Path(state.home) / "scale-controller.log"
    controller = subprocess.Popen(
        [
            sys.executable, "-m", "leoflow", "controller", "run",
            "--kubeconfig", str(state.kubeconfig), "--namespace", namespace,
            "--no-leader-elect", "--no-agent-server", "--metrics-address", f"127.0.0.1:{port}",
            "--pod-annotation", "kwok.leoflow.io/succeed-after=2h",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )  # fmt: skip
    try:
        while not scrape(port):
            if controller.poll() is not None:
                raise SystemExit(f"controller exited: see {log}")
            time.sleep(0.2)
        before = memory_kb(controller.pid)
        total = runs * tasks
        manifest = "\n---\n".join(
            json.dumps(
                {
                    "apiVersion": "leoflow.io/v1alpha1",
                    "kind": "DAGRun",
                    "metadata": {"name": f"scale-{i}", "namespace": namespace},
                    "spec": {"dagName": "scale"},
                }
            )
            for i in range(runs)
        )
        began = time.perf_counter()
        kubectl("create", "-f", "-", input=manifest)
        while (count := created(port)) < total:
            if controller.poll() is not None:
                raise SystemExit(f"controller exited: see {log}")
            if time.perf_counter() - began > 900:
                raise SystemExit(f"only {count:.0f} of {total} pods after 15 minutes")
            # Each scrape renders every metric in the controller: poll gently, not to load the subject.
            time.sleep(0.5)
        elapsed = time.perf_counter() - began
        time.sleep(settle)
        after = memory_kb(controller.pid)
        rate = total / elapsed
        baseline = read_result("baseline")
        base_rate = float(baseline["create_pods_per_s"]) if baseline else None
        return {
            "runs": runs,
            "tasks_per_run": tasks,
            "live_pods": total,
            "create_pods_per_s": round(rate, 1),
            "baseline_create_pods_per_s": base_rate,
            "create_ratio_to_baseline": round(rate / base_rate, 3) if base_rate else None,
            "controller_rss_mb_idle": round(before.get("VmRSS", 0) / 1024, 1),
            "controller_rss_mb": round(after.get("VmRSS", 0) / 1024, 1),
            "controller_peak_rss_mb": round(after.get("VmHWM", 0) / 1024, 1),
            "goals": {"create_ratio_to_baseline": ">= 0.9", "controller_rss_mb": "<= 500"},
        }
    finally:
        # The controller releases the pods' result finalizers as the runs go away, so it outlives them.
        kubectl("delete", "dagruns", "--all", "-n", namespace, "--wait=false")
        deadline = time.monotonic() + 300
        while kubectl("get", "pods", "-n", namespace, "-o", "name").strip() and time.monotonic() < deadline:
            time.sleep(2)
        controller.send_signal(signal.SIGTERM)
        controller.wait(timeout=60)
        kubectl("delete", "namespace", namespace, "--wait=false")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--settle", type=float, default=10.0, help="seconds before reading memory")
    args = parser.parse_args()
    with bench_cluster() as state:
        result = measure(state, args.runs, args.tasks, args.settle)
    path = write_result("scale", result)
    print(f"{path}: {result}")


if __name__ == "__main__":
    main()

"""Compile a 10,000-task leoflow.yaml: time (goal at most 1 s) and resource size (goal at most 1 MiB).

The DAG is layered like a large generated pipeline: 100 stages of 100 tasks, each task after one to
three tasks of the stage before; every tenth task also takes a param in its args, declares an
output and reads the previous stage's output in its env.
Writes bench/results/compile.json. Needs no cluster.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import write_result

from leoflow.spec.compiler import compile_text
from leoflow.spec.resources import dump
from leoflow.spec.snapshots import snapshot_configmap

STAGES, WIDTH, ROUNDS = 100, 100, 5
GOAL_SECONDS, GOAL_BYTES = 1.0, 1_048_576


def big_dag(seed: int = 7) -> str:
    rng = random.Random(seed)
    tasks: dict[str, Any] = {}
    for stage in range(STAGES):
        for lane in range(WIDTH):
            name = f"s{stage:02d}-t{lane:02d}"
            task: dict[str, Any] = {"command": ["etl", "step", f"--part={lane}"]}
            if stage:
                upstreams = sorted(rng.sample(range(WIDTH), rng.randint(1, 3)))
                task["after"] = [f"s{stage - 1:02d}-t{u:02d}" for u in upstreams]
            if lane % 10 == 0:
                task["outputs"] = ["rows"]
                task["args"] = ["--day={{ params.day }}"]
                if stage:
                    task["after"] = sorted({*task["after"], f"s{stage - 1:02d}-t00"})
                    task["env"] = {"ROWS": f"{{{{ tasks.s{stage - 1:02d}-t00.outputs.rows }}}}"}
            tasks[name] = task
    document = {
        "dag": "big",
        "image": "registry.example.com/big:1.0.0",
        "params": {"day": {"type": "string", "default": "{{ logical_date }}"}},
        "defaults": {
            "retries": 2,
            "retryDelay": "30s",
            "timeout": "1h",
            "resources": {"cpu": "250m", "memory": "256Mi"},
        },
        "tasks": tasks,
    }
    return yaml.safe_dump(document, sort_keys=False, width=200)


def main() -> int:
    text = big_dag()
    timings, cpu = [], []
    dag = None
    for _ in range(ROUNDS):
        started, started_cpu = time.perf_counter(), time.process_time()
        dag = compile_text(text, "big.yaml")
        timings.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    assert dag is not None
    resource = dag.resource()
    size = len(json.dumps(resource, separators=(",", ":")))
    snapshot = len(json.dumps(snapshot_configmap(dag.name, dag.spec)))
    median = statistics.median(timings)
    result = {
        "tasks": len(dag.spec.tasks),
        "edges": sum(len(t.upstreams) for t in dag.spec.tasks),
        "source_bytes": len(text.encode()),
        "compile_seconds": {"median": round(median, 4), "min": round(min(timings), 4), "rounds": ROUNDS},
        # CPU time is what the compile costs; wall time also shows how busy the machine was.
        "compile_cpu_seconds": {"median": round(statistics.median(cpu), 4), "min": round(min(cpu), 4)},
        "resource_bytes": size,
        "resource_bytes_per_task": round(size / len(dag.spec.tasks), 1),
        "spec_bytes": len(json.dumps(dump(dag.spec), separators=(",", ":"))),
        "snapshot_configmap_bytes": snapshot,
        "goals": {
            "compile_at_most_1s": median <= GOAL_SECONDS,
            "resource_at_most_1MiB": size <= GOAL_BYTES,
        },
    }
    path = write_result("compile", result)
    print(json.dumps(result, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

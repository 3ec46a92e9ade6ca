"""What every benchmark shares: a dev cluster for the run, percentiles, the JSON result file, and
what the benchmarks that start a controller process need (a free port, its metrics page).

Benchmarks are not tests: they report numbers, and later throughput figures are read as ratios to
the bare-client baseline measured in the same ``make bench`` run (these machines are noisy).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from leoflow.dev import cluster

RESULTS = Path(__file__).resolve().parent / "results"


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[rank]


def summary_ms(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "p50_ms": round(percentile(ms, 50), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "mean_ms": round(statistics.fmean(ms), 3) if ms else float("nan"),
        "count": len(ms),
    }


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        **result,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def read_result(name: str) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((RESULTS / f"{name}.json").read_text())
    except FileNotFoundError:
        return None
    return data


@contextmanager
def bench_cluster() -> Iterator[cluster.ClusterState]:
    """The cluster named by LEOFLOW_BENCH_HOME (left running), or a throwaway one."""
    shared = os.environ.get("LEOFLOW_BENCH_HOME")
    home = Path(shared) if shared else RESULTS / ".cluster"
    state = cluster.up(cluster.UpOptions(home=home, kwok_nodes=3, real_node=False))
    try:
        yield state
    finally:
        if not shared:
            cluster.down(home)


def scrape(port: int, timeout: float = 5.0) -> str:
    """The Prometheus text at 127.0.0.1:``port``, or "" while nothing answers there."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as response:
            text: str = response.read().decode()
            return text
    except OSError:
        return ""

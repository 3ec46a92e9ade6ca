"""Baseline: how fast the bare API server creates pods and KWOK completes them, with a plain client.

Every later throughput figure (controller pod creation, scale) is compared with this number from
the same ``make bench`` run. Writes bench/results/baseline.json.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import bench_cluster, summary_ms, write_result
from kubernetes_asyncio import client
from kubernetes_asyncio.config import new_client_from_config

from leoflow.dev import kwok


def pod(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "annotations": {"kwok.leoflow.io/succeed-after": "100ms"}},
        "spec": {
            **kwok.simulated_pod_placement(),
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "leoflow.dev/base:1"}],
        },
    }


async def measure(kubeconfig: Path, pods: int, concurrency: int) -> dict[str, Any]:
    api = await new_client_from_config(config_file=str(kubeconfig))
    core = client.CoreV1Api(api)
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    await core.create_namespace({"metadata": {"name": namespace}})
    while not (await core.list_namespaced_service_account(namespace)).items:
        await asyncio.sleep(0.1)
    latencies: list[float] = []
    limit = asyncio.Semaphore(concurrency)

    async def create(i: int) -> None:
        async with limit:
            started = time.perf_counter()
            await core.create_namespaced_pod(namespace, pod(f"p-{i}"))
            latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(create(i) for i in range(pods)))
    created_s = time.perf_counter() - began
    while True:
        items = (await core.list_namespaced_pod(namespace)).items
        if sum(p.status.phase == "Succeeded" for p in items) == pods:
            break
        await asyncio.sleep(0.2)
    completed_s = time.perf_counter() - began
    await core.delete_namespace(namespace)
    await api.close()
    return {
        "pods": pods,
        "concurrency": concurrency,
        "create_pods_per_s": round(pods / created_s, 1),
        "complete_pods_per_s": round(pods / completed_s, 1),
        "create_latency": summary_ms(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    with bench_cluster() as state:
        result = asyncio.run(measure(state.kubeconfig, args.pods, args.concurrency))
    path = write_result("baseline", result)
    print(f"{path}: {result}")


if __name__ == "__main__":
    main()

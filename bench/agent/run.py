"""Benchmark of leoflow-agent: binary size, time added to a task, time of ``install``.

The overhead is the median wall time of ``leoflow-agent run -- true`` minus that of ``true``,
both spawned the same way and interleaved in the same run, with reports on against a local
grpc.aio controller (Started + Finished acknowledged) and, for comparison, with reports off.
Writes bench/results/agent.json.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import summary_ms, write_result

from leoflow.agent.v1 import agent_pb2, agent_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
ROUNDS = 200
INSTALLS = 30
SIZE_BUDGET = 10 * 1024 * 1024


class AcknowledgingController(agent_pb2_grpc.AgentServiceServicer):
    """Acknowledges every report at once, as a healthy controller would."""

    async def Started(self, request: agent_pb2.StartedRequest, context: object) -> agent_pb2.StartedResponse:
        return agent_pb2.StartedResponse()

    async def Finished(
        self, request: agent_pb2.FinishedRequest, context: object
    ) -> agent_pb2.FinishedResponse:
        return agent_pb2.FinishedResponse()


async def timed(*argv: str) -> float:
    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL)
    code = await proc.wait()
    elapsed = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {code}")
    return elapsed


async def overhead(binary: Path, work: Path) -> dict[str, object]:
    server = grpc.aio.server()
    agent_pb2_grpc.add_AgentServiceServicer_to_server(AcknowledgingController(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    true = shutil.which("true") or "/bin/true"
    term = ["--termination-log", str(work / "termination-log")]
    reported = [str(binary), "run", "--insecure", "--controller-addr", f"127.0.0.1:{port}", *term, "--", true]
    unreported = [str(binary), "run", *term, "--", true]
    bare: list[float] = []
    with_reports: list[float] = []
    without_reports: list[float] = []
    startup: list[float] = []
    try:
        for _ in range(10):  # warm the page cache and the server
            await timed(*reported)
        for _ in range(ROUNDS):
            bare.append(await timed(true))
            with_reports.append(await timed(*reported))
            without_reports.append(await timed(*unreported))
            startup.append(await timed(str(binary), "version"))
    finally:
        await server.stop(grace=None)
    med = statistics.median
    return {
        "rounds": ROUNDS,
        "true": summary_ms(bare),
        "agent_with_reports": summary_ms(with_reports),
        "agent_without_reports": summary_ms(without_reports),
        "agent_version_only": summary_ms(startup),
        "overhead_with_reports_median_ms": round((med(with_reports) - med(bare)) * 1000, 3),
        "overhead_without_reports_median_ms": round((med(without_reports) - med(bare)) * 1000, 3),
        "go_runtime_startup_median_ms": round((med(startup) - med(bare)) * 1000, 3),
        "overhead_goal_ms": 5.0,
        "load_average_1m": os.getloadavg()[0],
    }


def install_times(binary: Path, work: Path) -> dict[str, float]:
    times = []
    for i in range(INSTALLS):
        start = time.perf_counter()
        subprocess.run([str(binary), "install", str(work / f"install-{i}")], check=True)
        times.append(time.perf_counter() - start)
    return summary_ms(times)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="leoflow-agent-bench-") as tmp:
        work = Path(tmp)
        binary = work / "leoflow-agent"
        subprocess.run([str(REPO / "hack/build-agent.sh"), str(binary), "bench"], check=True)
        size = binary.stat().st_size
        result: dict[str, object] = {
            "binary_bytes": size,
            "binary_budget_bytes": SIZE_BUDGET,
            "within_budget": size <= SIZE_BUDGET,
            **asyncio.run(overhead(binary, work)),
            "install": install_times(binary, work),
        }
    path = write_result("agent", result)
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

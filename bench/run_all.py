"""``make bench``: one cluster, the baseline first, then every other bench/<name>/run.py.

All benchmarks in one run share the cluster (LEOFLOW_BENCH_HOME) so their ratios to the baseline
compare like with like. The exception is bench/realnode, which needs a kubelet + containerd node
that this KWOK-only cluster lacks: it brings up a cluster of its own (with a real node and no KWOK
nodes) and stops it when done.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import RESULTS

from leoflow.dev import cluster

BENCH = Path(__file__).resolve().parent


def main() -> int:
    home = RESULTS / ".cluster"
    cluster.up(cluster.UpOptions(home=home, kwok_nodes=3, real_node=False))
    env = {**os.environ, "LEOFLOW_BENCH_HOME": str(home)}
    scripts = [BENCH / "baseline" / "run.py"]
    scripts += sorted(p for p in BENCH.glob("*/run.py") if p.parent.name != "baseline")
    failed = []
    try:
        for script in scripts:
            print(f"== {script.parent.name}", flush=True)
            if subprocess.run([sys.executable, str(script)], env=env, check=False).returncode != 0:
                failed.append(script.parent.name)
    finally:
        cluster.down(home)
    if failed:
        print(f"benchmarks that failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

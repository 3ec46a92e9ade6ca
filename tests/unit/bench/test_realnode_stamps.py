"""bench/realnode's clock: the stamps each task prints, read back from a container log, and the
gap of each upstream -> downstream transition computed from them."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench" / "realnode"))

from stamps import TASK_SCRIPT, StampError, Stamps, edges, parse_stamps

from leoflow.dev.images import BUSYBOX


@pytest.mark.skipif(not BUSYBOX.is_file(), reason="busybox-static not installed (hack/apt-packages.sh)")
def test_the_task_script_run_by_busybox_prints_stamps_the_parser_reads() -> None:
    # The image's shell is busybox with nothing else on PATH, as in the pod.
    before = time.time()
    done = subprocess.run(
        [str(BUSYBOX), "sh", "-c", TASK_SCRIPT],
        capture_output=True,
        text=True,
        env={"PATH": "/nonexistent"},
        check=True,
    )
    after = time.time()
    stamps = parse_stamps(done.stdout, "host")
    assert before - 0.001 <= stamps.first <= stamps.last <= after + 0.001


def test_stamps_are_found_among_the_agents_own_lines() -> None:
    log = (
        "leoflow-agent: controller unreachable, retrying\n"
        "leoflow-bench-stamp first 1795515783.978011\n"
        "work output\n"
        "leoflow-bench-stamp last 1795515784.000250\r\n"
    )
    assert parse_stamps(log, "ns/pod") == Stamps(first=1795515783.978011, last=1795515784.000250)


@pytest.mark.parametrize(
    "log",
    [
        "",
        "leoflow-bench-stamp first 1.000000\n",
        "leoflow-bench-stamp first 1.000000\n" * 2 + "leoflow-bench-stamp last 2.000000\n",
        "leoflow-bench-stamp first 2.000000\nleoflow-bench-stamp last 1.000000\n",
    ],
)
def test_a_log_without_exactly_one_ordered_pair_is_refused_naming_the_pod(log: str) -> None:
    with pytest.raises(StampError, match="ns/pod-a"):
        parse_stamps(log, "ns/pod-a")


def test_each_kind_of_edge_is_measured_from_the_upstream_that_unlocked_it() -> None:
    upstreams = {"src": [], "b0": ["src"], "b1": ["src"], "join": ["b0", "b1"], "tail": ["join"]}
    stamps = {
        "src": Stamps(0.0, 1.0),
        "b0": Stamps(2.5, 4.0),
        "b1": Stamps(2.0, 3.0),
        "join": Stamps(5.25, 6.0),
        "tail": Stamps(7.0, 8.0),
    }
    found = {(e.upstream, e.task, e.kind): e.gap for e in edges(upstreams, stamps)}
    assert found == {
        ("src", "b0", "fan-out"): 1.5,
        ("src", "b1", "fan-out"): 1.0,
        ("b0", "join", "fan-in"): 1.25,
        ("join", "tail", "chain"): 1.0,
    }

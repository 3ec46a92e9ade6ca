"""bench/webhook reads what the API server allocated from its /metrics with a regular expression
(the page is about 3 MB, too much to parse between blocks): it must find the counter, and only it."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench" / "webhook"))

from through_apiserver import ALLOCATED

METRICS = b"""# HELP go_memstats_alloc_bytes Number of bytes allocated in heap and currently in use.
# TYPE go_memstats_alloc_bytes gauge
go_memstats_alloc_bytes 1.23949056e+08
# HELP go_memstats_alloc_bytes_total Total number of bytes allocated in heap until now.
# TYPE go_memstats_alloc_bytes_total counter
go_memstats_alloc_bytes_total 4.1567872304e+10
go_memstats_alloc_bytes_total_sum 7
"""


def test_the_allocation_counter_is_read_and_not_the_in_use_gauge_beside_it() -> None:
    found = ALLOCATED.search(METRICS)
    assert found is not None
    assert float(found[1]) == 4.1567872304e10


def test_a_page_without_the_counter_gives_no_match() -> None:
    assert ALLOCATED.search(b"go_memstats_alloc_bytes 1\nprocess_cpu_seconds_total 3\n") is None

"""The clock the real-node benchmark reads: what each task prints, and the gaps computed from it.

Every task's command prints a wall-clock stamp as its first and as its last action. All containers
of the one real node share the host's clock, so the downstream's first stamp minus its upstream's
last stamp is the time from one process's end to the next one's start, with nothing in between
estimated. The base image is busybox, whose ``date`` has no ``%N``; ``adjtimex`` (read-only, no
privilege needed) prints the kernel's time in microseconds, so that is the stamp.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MARK = "leoflow-bench-stamp"
# One fork of adjtimex and one of awk: a few milliseconds, taken before the first stamp is read
# and after the last, so a gap is overstated by at most that.
_STAMP = (
    "adjtimex | awk '/tv_sec/{s=$2} /tv_usec/{u=$2} "
    f'END{{printf "{MARK} %s %s.%06d\\n", tag, s, u}}\' tag='
)
TASK_SCRIPT = f"{_STAMP}first; {_STAMP}last"


def task_script(seconds: float = 0.0) -> str:
    """The stamps ``seconds`` apart: a task that runs that long."""
    return f"{_STAMP}first; sleep {seconds:g}; {_STAMP}last" if seconds > 0 else TASK_SCRIPT


_LINE = re.compile(rf"^{MARK} (first|last) (\d+\.\d{{6}})$")


class StampError(ValueError):
    """A task's log does not hold exactly one first and one last stamp."""


@dataclass(frozen=True)
class Stamps:
    """A task process's first and last action, in Unix seconds."""

    first: float
    last: float


@dataclass(frozen=True)
class Edge:
    """One upstream -> downstream transition: ``gap`` from the upstream's last stamp to the
    downstream's first. For a task with several upstreams the one that ended last unlocked it."""

    upstream: str
    task: str
    kind: str  # "chain", "fan-out" (the upstream unlocks several tasks) or "fan-in"
    gap: float


def parse_stamps(log: str, where: str) -> Stamps:
    """The stamps in a container log; other lines (the agent's own warnings) are ignored."""
    found: dict[str, list[float]] = {"first": [], "last": []}
    for line in log.splitlines():
        if match := _LINE.match(line.strip()):
            found[match.group(1)].append(float(match.group(2)))
    for tag, values in found.items():
        if len(values) != 1:
            raise StampError(f"{where}: {len(values)} {tag!r} stamps in its log (want 1); log:\n{log[-500:]}")
    stamps = Stamps(first=found["first"][0], last=found["last"][0])
    if stamps.last < stamps.first:
        raise StampError(f"{where}: last stamp {stamps.last} before first {stamps.first}")
    return stamps


def edges(upstreams: Mapping[str, Sequence[str]], stamps: Mapping[str, Stamps]) -> list[Edge]:
    """The transitions of one run, from each task's upstreams and every task's stamps."""
    downstreams = Counter(up for ups in upstreams.values() for up in ups)
    result = []
    for task, ups in sorted(upstreams.items()):
        if not ups:
            continue
        unlocking = max(ups, key=lambda up: stamps[up].last)
        kind = "fan-in" if len(ups) > 1 else "fan-out" if downstreams[unlocking] > 1 else "chain"
        result.append(Edge(unlocking, task, kind, stamps[task].first - stamps[unlocking].last))
    return result

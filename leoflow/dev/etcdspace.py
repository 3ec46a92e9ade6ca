"""Keeping a long-lived dev cluster's etcd under its space quota.

etcd refuses every write once its database file reaches the quota (``mvcc: database space
exceeded``, the NOSPACE alarm), and the file never shrinks by itself: old revisions stay until
they are compacted, and compacted pages stay in the file until it is defragmented. The API server
compacts only on a timer that restarts with it, so a dev cluster restarted often (benchmarks reuse
one across runs, each leaving thousands of pods behind) never compacts, and after enough runs
every create fails. Production etcd operators compact, defragment and disarm the alarm; ``up``
does the same each time it starts or confirms a cluster, through etcd's JSON gateway (no
``etcdctl`` needed).

:func:`compaction_target` and :func:`after_compaction` decide from etcd's status; :func:`reclaim`
reads the status and carries them out.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# Revisions kept behind the current one: watches a few minutes old can still resume.
KEEP_REVISIONS = 10_000
# Below this a database is not worth a defragmentation, which blocks etcd while it runs.
DEFRAGMENT_ABOVE_BYTES = 128 * 1024 * 1024
# What etcd suggests as the largest quota; its default (2 GiB) is what dev clusters ran into.
QUOTA_BYTES = 8 * 1024 * 1024 * 1024
NOSPACE = "NOSPACE"


class EtcdMaintenanceError(RuntimeError):
    """etcd did not answer a maintenance call as documented; the message says which."""


@dataclass(frozen=True)
class Space:
    """What etcd's status says about its database."""

    revision: int
    db_bytes: int
    in_use_bytes: int
    member_id: str
    nospace: bool


@dataclass(frozen=True)
class Maintenance:
    compacted_to: int | None
    defragment: bool
    disarm: bool


def compaction_target(revision: int, *, keep: int = KEEP_REVISIONS) -> int | None:
    """The revision to compact to: all history but the last ``keep`` revisions."""
    return revision - keep if revision > keep else None


def after_compaction(space: Space, compacted_to: int | None) -> Maintenance:
    """Defragment a file at least twice its live data (or one etcd already refuses writes for,
    which only a smaller file lifts), and disarm a NOSPACE alarm."""
    large = space.db_bytes >= DEFRAGMENT_ABOVE_BYTES and space.db_bytes >= 2 * space.in_use_bytes
    return Maintenance(compacted_to=compacted_to, defragment=space.nospace or large, disarm=space.nospace)


def space_of(status: dict[str, Any], alarms: dict[str, Any]) -> Space:
    """A :class:`Space` from the gateway's answers (int64 fields arrive as strings)."""
    try:
        return Space(
            revision=int(status["header"]["revision"]),
            db_bytes=int(status["dbSize"]),
            in_use_bytes=int(status.get("dbSizeInUse") or status["dbSize"]),
            member_id=str(status["header"]["member_id"]),
            nospace=any(a.get("alarm") == NOSPACE for a in alarms.get("alarms") or ()),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise EtcdMaintenanceError(f"etcd status without {err}: {status}") from None


def call(base: str, path: str, body: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
    """POSTs ``body`` to one of etcd's JSON-gateway endpoints at ``base`` and returns the answer."""
    request = urllib.request.Request(
        f"{base}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as err:
        raise EtcdMaintenanceError(f"etcd {path}: HTTP {err.code}: {err.read()[:300]!r}") from None
    except (OSError, ValueError) as err:
        raise EtcdMaintenanceError(f"etcd {path}: {err}") from None
    return answer


def _space(base: str, timeout: float) -> Space:
    status = call(base, "/v3/maintenance/status", {}, timeout)
    return space_of(status, call(base, "/v3/maintenance/alarm", {"action": "GET"}, timeout))


def reclaim(client_url: str, *, timeout: float = 120.0) -> Maintenance:
    """Compacts old history, then defragments and disarms as :func:`after_compaction` says."""
    base = client_url.rstrip("/")
    before = _space(base, timeout)
    target = compaction_target(before.revision)
    if target is not None:
        try:
            call(base, "/v3/kv/compaction", {"revision": target, "physical": True}, timeout)
        except EtcdMaintenanceError as err:
            # Already compacted past it: nothing older is left to drop.
            if "compacted" not in str(err):
                raise
    todo = after_compaction(_space(base, timeout), target)
    if todo.defragment:
        call(base, "/v3/maintenance/defragment", {}, timeout)
    if todo.disarm:
        alarm = {"action": "DEACTIVATE", "memberID": before.member_id, "alarm": NOSPACE}
        call(base, "/v3/maintenance/alarm", alarm, timeout)
    if todo.defragment or todo.disarm:
        log.info(
            "etcd space reclaimed",
            extra={
                "compacted_to": target,
                "defragmented": todo.defragment,
                "disarmed": todo.disarm,
                "db_bytes_before": before.db_bytes,
                "db_bytes_after": _space(base, timeout).db_bytes,
            },
        )
    return todo

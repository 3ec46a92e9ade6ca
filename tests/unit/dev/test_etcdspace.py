"""The decisions that keep a long-lived dev etcd under its quota, from its status as the gateway gives it."""

from __future__ import annotations

import pytest

from leoflow.dev.etcdspace import (
    DEFRAGMENT_ABOVE_BYTES,
    EtcdMaintenanceError,
    Space,
    after_compaction,
    compaction_target,
    space_of,
)

MiB = 1024 * 1024


def space(db: int, in_use: int, *, nospace: bool = False) -> Space:
    return Space(revision=50_000, db_bytes=db, in_use_bytes=in_use, member_id="7", nospace=nospace)


def test_history_older_than_the_kept_revisions_is_compacted() -> None:
    assert compaction_target(1_274_155, keep=10_000) == 1_264_155


def test_a_young_database_is_not_compacted() -> None:
    assert compaction_target(9_000, keep=10_000) is None


def test_a_file_twice_its_live_data_is_defragmented() -> None:
    todo = after_compaction(space(2048 * MiB, 48 * MiB), 40_000)
    assert (todo.compacted_to, todo.defragment, todo.disarm) == (40_000, True, False)


def test_a_small_file_is_left_alone_however_fragmented() -> None:
    assert not after_compaction(space(DEFRAGMENT_ABOVE_BYTES - 1, 1 * MiB), None).defragment


def test_a_file_mostly_in_use_is_not_defragmented() -> None:
    assert not after_compaction(space(1024 * MiB, 900 * MiB), None).defragment


def test_a_nospace_alarm_is_defragmented_and_disarmed_even_when_the_file_is_in_use() -> None:
    todo = after_compaction(space(2048 * MiB, 2048 * MiB, nospace=True), None)
    assert (todo.defragment, todo.disarm) == (True, True)


def test_status_fields_arrive_as_strings_and_the_alarm_is_read_from_the_alarm_list() -> None:
    status = {
        "header": {"revision": "1274155", "member_id": "12325517402334269023"},
        "dbSize": "2147610624",
        "dbSizeInUse": "48807936",
    }
    alarms = {"alarms": [{"memberID": "12325517402334269023", "alarm": "NOSPACE"}]}
    assert space_of(status, alarms) == Space(
        revision=1_274_155,
        db_bytes=2_147_610_624,
        in_use_bytes=48_807_936,
        member_id="12325517402334269023",
        nospace=True,
    )
    assert not space_of(status, {}).nospace


def test_a_status_without_its_sizes_is_a_clear_error() -> None:
    with pytest.raises(EtcdMaintenanceError, match="dbSize"):
        space_of({"header": {"revision": "3", "member_id": "1"}}, {})

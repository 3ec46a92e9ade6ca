from __future__ import annotations

from datetime import UTC, datetime

import pytest

from leoflow.spec.schedule import ScheduleError, check_cron, check_timezone, next_fire_times


def test_next_fire_times_skip_the_hour_lost_to_daylight_saving() -> None:
    after = datetime(2024, 3, 31, 0, 0, tzinfo=UTC)  # 01:00 in Paris, DST starts at 02:00
    fires = next_fire_times("0 * * * *", "Europe/Paris", after, count=3)
    assert [f.astimezone(UTC).hour for f in fires] == [1, 2, 3]
    assert [f.hour for f in fires] == [3, 4, 5]


def test_next_fire_times_are_strictly_after() -> None:
    after = datetime(2024, 1, 1, tzinfo=UTC)
    assert next_fire_times("@daily", "UTC", after, count=2) == [
        datetime(2024, 1, 2, tzinfo=UTC),
        datetime(2024, 1, 3, tzinfo=UTC),
    ]


def test_macros_expand() -> None:
    assert check_cron("@hourly") == "0 * * * *"


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fire_times("@daily", "UTC", datetime(2024, 1, 1))


def test_bad_day_of_week() -> None:
    with pytest.raises(ScheduleError, match="not a valid cron expression"):
        check_cron("0 0 * * 9")


@pytest.mark.parametrize(("written", "meant"), [("utc", "UTC"), ("europe/paris", "Europe/Paris")])
def test_timezone_in_the_wrong_case_suggests_the_iana_name(written: str, meant: str) -> None:
    with pytest.raises(ScheduleError, match=f"unknown timezone '{written}'; did you mean '{meant}'"):
        check_timezone(written)

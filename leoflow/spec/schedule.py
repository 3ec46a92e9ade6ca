"""Cron and timezone: validation for the compiler and fire times for the controller's scheduler.

Uses cronsim: small, pure Python, typed, actively maintained, strict about what it accepts, and it
handles DST transitions in a ``zoneinfo`` timezone correctly (skipped local times are skipped,
repeated ones fire once). The compiler and the scheduler share this module so a schedule that
compiles is exactly a schedule that fires.
"""

from __future__ import annotations

import difflib
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cronsim import CronSim, CronSimError

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class ScheduleError(ValueError):
    """A cron expression or timezone that cannot fire."""


def expand(cron: str) -> str:
    """The five-field form of ``cron`` (macros such as ``@hourly`` expanded)."""
    text = " ".join(cron.split())
    return MACROS.get(text, text)


def check_cron(cron: str) -> str:
    expr = expand(cron)
    if len(expr.split(" ")) != 5:
        raise ScheduleError(
            f"'{cron}' is not a cron expression: expected 5 fields (minute hour day-of-month month "
            "day-of-week) or a macro such as @hourly"
        )
    try:
        CronSim(expr, datetime(2000, 1, 1, tzinfo=ZoneInfo("UTC")))
    except CronSimError as err:
        raise ScheduleError(f"'{cron}' is not a valid cron expression: {err}") from err
    return expr


def check_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        zones = sorted(available_timezones())
        # `utc` or `europe/paris` is a real zone written in the wrong case: that one was meant.
        same = [z for z in zones if z.lower() == name.lower()]
        close = same or difflib.get_close_matches(name, zones, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else " (use an IANA name such as Europe/Paris)"
        raise ScheduleError(f"unknown timezone '{name}'{hint}") from err


def next_fire_times(cron: str, timezone: str, after: datetime, count: int = 1) -> list[datetime]:
    """The first ``count`` fire times strictly after ``after`` (aware), in ``timezone``."""
    if after.tzinfo is None:
        raise ValueError("'after' must be timezone-aware")
    zone = check_timezone(timezone)
    times = CronSim(check_cron(cron), after.astimezone(zone))
    return [next(times) for _ in range(count)]

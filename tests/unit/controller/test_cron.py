"""The cron core: which scheduled runs to create or cancel, for a given clock."""

from __future__ import annotations

from datetime import UTC, datetime

from leoflow.controller.cron import MAX_DUE, due_fires, plan_schedule, scheduled_run_name
from leoflow.spec.resources import CompiledSchedule

HOURLY = "0 * * * *"


def at(hour: int, minute: int = 0, day: int = 1) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def schedule(**fields: object) -> CompiledSchedule:
    return CompiledSchedule.model_validate({"cron": HOURLY, **fields})


def test_nothing_is_due_before_the_first_fire() -> None:
    plan = plan_schedule(schedule(), since=at(10, 5), now=at(10, 59), active=[])
    assert plan.create == []
    assert plan.last_scheduled == at(10, 5)
    assert plan.next_fire == at(11)


def test_a_fire_on_the_dot_is_due() -> None:
    plan = plan_schedule(schedule(), since=at(10, 5), now=at(11), active=[])
    assert plan.create == [at(11)]
    assert plan.last_scheduled == at(11)


def test_without_catchup_only_the_latest_missed_fire_runs() -> None:
    plan = plan_schedule(schedule(catchup=False), since=at(10), now=at(14, 30), active=[])
    assert plan.create == [at(14)]
    assert plan.skipped == [at(11), at(12), at(13)]
    assert plan.last_scheduled == at(14)


def test_catchup_creates_missed_fires_oldest_first_within_max_active_runs() -> None:
    plan = plan_schedule(schedule(catchup=True, maxActiveRuns=2), since=at(10), now=at(14, 30), active=[])
    assert plan.create == [at(11), at(12)]
    assert plan.last_scheduled == at(12)
    later = plan_schedule(schedule(catchup=True, maxActiveRuns=2), since=at(12), now=at(14, 30), active=["a"])
    assert later.create == [at(13)]


def test_allow_without_room_keeps_the_fire_for_later() -> None:
    plan = plan_schedule(schedule(maxActiveRuns=1), since=at(10), now=at(11, 1), active=["etl-a"])
    assert plan.create == []
    assert plan.last_scheduled == at(10)
    freed = plan_schedule(schedule(maxActiveRuns=1), since=plan.last_scheduled, now=at(11, 30), active=[])
    assert freed.create == [at(11)]


def test_forbid_skips_fires_while_a_run_is_active() -> None:
    plan = plan_schedule(schedule(concurrencyPolicy="Forbid"), since=at(10), now=at(11, 1), active=["etl-a"])
    assert plan.create == []
    assert plan.skipped == [at(11)]
    assert plan.last_scheduled == at(11)


def test_forbid_with_catchup_starts_one_run_at_a_time() -> None:
    sched = schedule(concurrencyPolicy="Forbid", catchup=True, maxActiveRuns=5)
    plan = plan_schedule(sched, since=at(10), now=at(13, 1), active=[])
    assert plan.create == [at(11)]
    assert plan.last_scheduled == at(11)


def test_replace_cancels_the_active_runs_and_starts_the_latest() -> None:
    plan = plan_schedule(
        schedule(concurrencyPolicy="Replace"), since=at(10), now=at(12, 1), active=["etl-a", "etl-b"]
    )
    assert plan.cancel == ["etl-a", "etl-b"]
    assert plan.create == [at(12)]


def test_fires_follow_the_schedule_timezone() -> None:
    paris = schedule(timezone="Europe/Paris")
    sched = paris.model_copy(update={"cron": "0 9 * * *"})
    plan = plan_schedule(sched, since=at(0), now=at(12), active=[])
    assert plan.create == [at(8)]


def test_a_long_outage_considers_a_bounded_number_of_fires() -> None:
    minutely = CompiledSchedule(cron="* * * * *", catchup=True, maxActiveRuns=10_000)
    fires = due_fires(minutely, datetime(2020, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
    assert len(fires) == MAX_DUE


def test_scheduled_run_names_are_deterministic_and_dns_safe() -> None:
    name = scheduled_run_name("etl", datetime(2026, 3, 1, 14, 30, tzinfo=UTC))
    assert name == "etl-20260301t1430"
    assert name == name.lower()

from __future__ import annotations

import pytest

from leoflow.controller.sensors.backoff import next_poke_delay
from leoflow.controller.sensors.state import SensorState, SensorStateError


def test_state_round_trips_through_its_compact_form() -> None:
    state = SensorState(started_at=1_700_000_000.25, next_poke_at=1_700_000_030.5, attempts=3, errors=1)
    text = state.encode()
    assert text == "1700000000.250 1700000030.500 3 1"
    assert SensorState.decode(text) == state


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("1 2 3", "4 fields"),
        ("1 2 x 0", "not a number"),
        ("1 2 -1 0", "out-of-range"),
        ("nan 2 0 0", "range"),
    ],
)
def test_unreadable_state_is_named(text: str, complaint: str) -> None:
    with pytest.raises(SensorStateError, match=complaint):
        SensorState.decode(text)


def test_poke_interval_without_errors_is_constant() -> None:
    assert next_poke_delay(30, 600, attempts=7, errors=0) == 30


def test_errors_double_the_wait_up_to_the_cap() -> None:
    delays = [next_poke_delay(10, 100, attempts=n, errors=n) for n in range(1, 6)]
    assert delays == [20, 40, 80, 100, 100]


def test_not_yet_backoff_is_opt_in_and_capped() -> None:
    delays = [next_poke_delay(10, 50, attempts=n, errors=0, not_yet_factor=2.0) for n in range(1, 6)]
    assert delays == [10, 20, 40, 50, 50]


def test_a_cap_below_the_interval_does_not_shorten_it() -> None:
    assert next_poke_delay(60, 10, attempts=1, errors=3) == 60

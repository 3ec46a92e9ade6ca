"""When a sensor pokes next: its poke interval, stretched exponentially after errors.

Pure arithmetic on the compiled sensor's numbers. After ``errors`` consecutive failed pokes the
wait is ``pokeInterval * 2**errors``; optionally a plain "not yet" also stretches the wait by
``not_yet_factor**(attempts-1)`` (for targets that are cheap to wait on but costly to ask). Both are
capped at ``maxPokeInterval`` (and never below one poke interval), and the next poke is never
scheduled past the sensor's deadline, so a timeout is noticed on time.
"""

from __future__ import annotations

ERROR_FACTOR = 2.0
MAX_EXPONENT = 30


def next_poke_delay(
    poke_interval: float,
    max_poke_interval: float,
    *,
    attempts: int,
    errors: int,
    not_yet_factor: float = 1.0,
) -> float:
    interval = max(poke_interval, 0.0)
    cap = max(max_poke_interval, interval)
    if errors > 0:
        delay = interval * ERROR_FACTOR ** min(errors, MAX_EXPONENT)
    elif not_yet_factor > 1.0 and attempts > 1:
        delay = interval * not_yet_factor ** min(attempts - 1, MAX_EXPONENT)
    else:
        delay = interval
    return min(delay, cap)

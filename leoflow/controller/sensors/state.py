"""What a waiting sensor must remember across a controller restart, in a form the DAGRun can hold.

Only four numbers: when the sensor started (its timeout counts from there, not from the latest
controller start), when it should poke next, how many pokes it has made and how many of the last
ones failed in a row (the error backoff exponent). Times are wall-clock epoch seconds because loop
time means nothing to the next process. The encoded form is one short string per sensor
(``"1732431600.000 1732431630.000 3 0"``) so a run with thousands of sensor tasks stays small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


class SensorStateError(ValueError):
    """A stored sensor state that cannot be read back."""


@dataclass(frozen=True, slots=True)
class SensorState:
    started_at: float
    next_poke_at: float
    attempts: int = 0
    errors: int = 0

    @classmethod
    def fresh(cls, now: float) -> SensorState:
        return cls(started_at=now, next_poke_at=now)

    def encode(self) -> str:
        return f"{self.started_at:.3f} {self.next_poke_at:.3f} {self.attempts} {self.errors}"

    @classmethod
    def decode(cls, text: str) -> SensorState:
        parts = text.split()
        if len(parts) != 4:
            raise SensorStateError(
                f"sensor state {text!r} must be 'started next attempts errors' (4 fields, got {len(parts)})"
            )
        try:
            started, next_poke = float(parts[0]), float(parts[1])
            attempts, errors = int(parts[2]), int(parts[3])
        except ValueError as err:
            raise SensorStateError(f"sensor state {text!r} has a field that is not a number: {err}") from err
        if not (math.isfinite(started) and math.isfinite(next_poke)) or attempts < 0 or errors < 0:
            raise SensorStateError(f"sensor state {text!r} has an out-of-range field")
        return cls(started_at=started, next_poke_at=next_poke, attempts=attempts, errors=errors)

"""What one poke found, and how a sensor ends.

A poke is *satisfied* (with an optional value, e.g. the JSON value it matched), *not yet*, or an
*error*. Errors are classified: a transient one (connection refused, a 5xx, a request timeout, a
broken watch) is retried with exponential backoff until the sensor's timeout; a permanent one
(an unknown resource kind, a malformed URL, a Job that failed while we wait for it to complete)
ends the sensor at once, because waiting longer cannot change the answer.

A sensor ends *satisfied*, *failed* (timed out or a permanent error) or *skipped* (the same, with
``softFail``): the controller maps these to the task states Succeeded, Failed and Skipped.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class PokeKind(enum.Enum):
    SATISFIED = "satisfied"
    NOT_YET = "not_yet"
    ERROR = "error"
    PERMANENT_ERROR = "permanent_error"


@dataclass(frozen=True, slots=True)
class Poke:
    kind: PokeKind
    detail: str = ""
    value: object = None

    @classmethod
    def satisfied(cls, value: object = None, detail: str = "") -> Poke:
        return cls(PokeKind.SATISFIED, detail, value)

    @classmethod
    def not_yet(cls, detail: str) -> Poke:
        return cls(PokeKind.NOT_YET, detail)

    @classmethod
    def error(cls, detail: str) -> Poke:
        return cls(PokeKind.ERROR, detail)

    @classmethod
    def permanent(cls, detail: str) -> Poke:
        return cls(PokeKind.PERMANENT_ERROR, detail)


class Result(enum.Enum):
    SATISFIED = "satisfied"
    FAILED = "failed"
    SKIPPED = "skipped"


class Reason(enum.Enum):
    SATISFIED = "Satisfied"
    TIMED_OUT = "TimedOut"
    PERMANENT_ERROR = "SensorError"


@dataclass(frozen=True, slots=True)
class Outcome:
    result: Result
    reason: Reason
    message: str
    value: object = None
    attempts: int = 0

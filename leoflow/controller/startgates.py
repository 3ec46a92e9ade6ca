"""Where prepared pods' agents wait for the go: one gate per pod, opened by the planner's release.

A ``prestart`` task's pod is created while its upstreams run; its agent calls ``WaitStart`` and
the agent server parks the call here. The agent sink opens the gate as the last upstream's
successful ``Finished`` arrives (``planner.released_by_success``), and the planner's release
opens it again, for the releases only a plan sees (a pod watch's success, a restart); either way
the command starts without waiting for an API call.

An agent can arrive just after its gate opened and before the status says so (the write is in
flight); recently opened gates are remembered for a while for that reason. Everything else (an
agent that reconnects after a controller restart, a release by another replica) is settled by
the run status, which the waiter reads again every ``recheck`` seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

REMEMBER_SECONDS = 30.0
"""How long an opened gate stays open for an agent that had not arrived yet: far longer than a
status write takes to land, after which the status itself says the attempt was released."""


class StartGates:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._waiting: dict[tuple[str, str], asyncio.Event] = {}
        self._opened: dict[tuple[str, str], float] = {}

    def open(self, namespace: str, pod: str) -> bool:
        """Lets the agent of ``namespace/pod`` start, whether it is waiting yet or not; False when
        the gate was open already (the sink opened it on the upstream's Finished)."""
        now = self._clock()
        self._forget_before(now - REMEMBER_SECONDS)
        slot = (namespace, pod)
        opened_before = self._opened.pop(slot, None) is not None
        self._opened[slot] = now
        event = self._waiting.get(slot)
        if event is not None:
            event.set()
        return not opened_before

    async def wait(self, namespace: str, pod: str, recheck: float) -> bool:
        """True once the gate is open; False after ``recheck`` seconds, for the caller to read the
        run status again."""
        slot = (namespace, pod)
        if slot in self._opened:
            return True
        event = self._waiting.setdefault(slot, asyncio.Event())
        try:
            async with asyncio.timeout(recheck):
                await event.wait()
            return True
        except TimeoutError:
            return False
        finally:
            if self._waiting.get(slot) is event:
                del self._waiting[slot]

    def waiting(self) -> int:
        """Agents parked right now (a waiter that gave up or was let go is no longer counted)."""
        return len(self._waiting)

    def _forget_before(self, moment: float) -> None:
        # Kept in the order they were opened, so the stale ones are at the front.
        while self._opened:
            slot, at = next(iter(self._opened.items()))
            if at >= moment:
                return
            del self._opened[slot]

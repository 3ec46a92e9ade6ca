"""Leader election on a coordination.k8s.io/v1 Lease: two replicas can run, only one writes.

The algorithm is client-go's: a candidate takes the Lease when it is free or when its record has
not changed for ``lease_duration`` *as measured by our own clock* since we first saw that record
(so clock skew between replicas cannot shorten a lease); every write carries the resourceVersion
it read, so two candidates racing for an expired lease cannot both win. The leader renews every
``retry_period`` and steps down as soon as it has gone ``renew_deadline`` without a successful
renewal (``renew_deadline < lease_duration``, so it stops writing before anyone else may start:
reference/failures.md, entry 13). ``is_leader`` checks that deadline itself, so a writer that
asks is fenced even if the renew loop is stuck in a slow request. Leaving the context releases
the Lease so a standby takes over at its next retry instead of after a full lease duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from leoflow.controller.kube.errors import ApiError
from leoflow.controller.kube.transport import LEASES, KubeObject, Transport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseConfig:
    namespace: str
    name: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "lease timings need 0 < retry_period < renew_deadline < lease_duration, got "
                f"{self.retry_period} / {self.renew_deadline} / {self.lease_duration}"
            )


def _micro_time() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """``async with LeaderElector(...) as elector: await elector.wait_leader()``."""

    def __init__(
        self,
        transport: Transport,
        config: LeaseConfig,
        *,
        on_started_leading: Callable[[], None] | None = None,
        on_stopped_leading: Callable[[], None] | None = None,
    ) -> None:
        self._transport = transport
        self._config = config
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._leading = False
        self._last_renew = 0.0
        self._observed: tuple[str, str, str] | None = None
        self._observed_at = 0.0
        self._became_leader = asyncio.Event()
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def identity(self) -> str:
        return self._config.identity

    @property
    def is_leader(self) -> bool:
        return self._leading and time.monotonic() - self._last_renew < self._config.renew_deadline

    async def wait_leader(self) -> None:
        await self._became_leader.wait()

    async def wait_lost(self) -> None:
        """Returns once leadership, after being held, was lost (the controller should stop)."""
        await self._lost.wait()

    async def __aenter__(self) -> LeaderElector:
        self._task = asyncio.create_task(self._run(), name=f"leader election {self._config.name}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stops campaigning and, if leading, releases the Lease for an immediate handover."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._leading:
            was_valid = self.is_leader
            self._step_down("shutdown")
            if was_valid:
                await self._release()

    async def _run(self) -> None:
        config = self._config
        while True:
            # While leading, never let an attempt (or a sleep) run past the renew deadline: the
            # step-down, and its callback, must happen on time, not a request timeout later.
            budget = config.renew_deadline / 2
            if self._leading:
                remaining = self._last_renew + config.renew_deadline - time.monotonic()
                if remaining <= 0:
                    self._step_down("renewal deadline passed")
                else:
                    budget = min(budget, remaining)
            try:
                async with asyncio.timeout(budget):
                    renewed = await self._try_acquire_or_renew()
            except TimeoutError:
                renewed = False
            except Exception:
                # Never let a surprise end the campaign: failing to renew is the safe outcome.
                log.exception("lease renewal failed", extra={"lease": config.name})
                renewed = False
            now = time.monotonic()
            if renewed:
                self._last_renew = now
                if not self._leading:
                    self._leading = True
                    self._lost.clear()
                    self._became_leader.set()
                    log.info("became leader", extra={"lease": config.name, "identity": config.identity})
                    if self._on_started:
                        self._on_started()
            elif self._leading and now - self._last_renew >= config.renew_deadline:
                self._step_down("renewal deadline passed")
            if self._leading:
                delay = min(config.retry_period, max(0.0, self._last_renew + config.renew_deadline - now))
            else:
                delay = config.retry_period * (1 + 0.2 * random.random())
            await asyncio.sleep(delay)

    def _step_down(self, why: str) -> None:
        self._leading = False
        self._became_leader.clear()
        self._lost.set()
        log.warning("stopped leading", extra={"lease": self._config.name, "why": why})
        if self._on_stopped:
            self._on_stopped()

    async def _try_acquire_or_renew(self) -> bool:
        config = self._config
        path = LEASES.path(config.namespace, config.name)
        now = _micro_time()
        try:
            lease = await self._transport.request("GET", path, verb="get")
        except ApiError as error:
            if not error.not_found:
                log.info("lease read failed", extra={"lease": config.name, "error": str(error)})
                return False
            return await self._create(now)
        spec: dict[str, Any] = lease.get("spec") or {}
        meta: dict[str, Any] = lease.get("metadata") or {}
        holder = str(spec.get("holderIdentity") or "")
        record = (holder, str(spec.get("renewTime") or ""), str(meta.get("resourceVersion") or ""))
        if record != self._observed:
            self._observed, self._observed_at = record, time.monotonic()
        duration = float(spec.get("leaseDurationSeconds") or config.lease_duration)
        if holder and holder != config.identity and time.monotonic() - self._observed_at < duration:
            return False
        ours = holder == config.identity
        transitions = int(spec.get("leaseTransitions") or 0)
        lease["spec"] = {
            **spec,
            "holderIdentity": config.identity,
            "leaseDurationSeconds": round(config.lease_duration),
            "acquireTime": spec.get("acquireTime") if ours else now,
            "renewTime": now,
            "leaseTransitions": transitions if ours else transitions + 1,
        }
        try:
            await self._transport.request("PUT", path, body=lease, verb="update")
        except ApiError as error:
            if not error.conflict:
                log.info("lease update failed", extra={"lease": config.name, "error": str(error)})
            return False
        return True

    async def _create(self, now: str) -> bool:
        config = self._config
        lease: KubeObject = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": config.name, "namespace": config.namespace},
            "spec": {
                "holderIdentity": config.identity,
                "leaseDurationSeconds": round(config.lease_duration),
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }
        try:
            await self._transport.request("POST", LEASES.path(config.namespace), body=lease, verb="create")
        except ApiError as error:
            if not error.already_exists:
                log.info("lease create failed", extra={"lease": config.name, "error": str(error)})
            return False
        return True

    async def _release(self) -> None:
        config = self._config
        path = LEASES.path(config.namespace, config.name)
        try:
            lease = await self._transport.request("GET", path, verb="get")
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != config.identity:
                return
            now = _micro_time()
            lease["spec"] = {**spec, "holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": now}
            await self._transport.request("PUT", path, body=lease, verb="update")
            log.info("released lease", extra={"lease": config.name, "identity": config.identity})
        except ApiError as error:
            log.warning("lease release failed", extra={"lease": config.name, "error": str(error)})

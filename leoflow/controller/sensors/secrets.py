"""Header values from Secrets, for HTTP sensors that authenticate: read through the API server.

A sensor names a Secret and a key (``headersFrom``); the DAG resource never holds the value.
Reading the Secret on every poke would put the poke rate of every such sensor onto the API server,
so a value is kept for ``ttl`` seconds per Secret (a rotated token is used within that time), and
concurrent reads of one Secret share one request. Only ``get`` on Secrets is needed, never list or
watch, so the controller's RBAC stays narrow.

A Secret or key that does not exist, or a Secret the controller may not read, is a permanent
error (the author must fix the name or the RBAC); connection failures and 5xx are transient.
Values are never logged and never put in an error message.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from leoflow.controller.sensors.apicalls import call, object_path

SecretLookup = Callable[[str, str, str], Awaitable[str]]
"""``(namespace, secret, key) -> value``."""


class SecretUnavailable(Exception):
    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class SecretReader:
    def __init__(
        self,
        api_client: Any,
        *,
        ttl: float = 60.0,
        request_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api_client
        self._ttl = ttl
        self._timeout = request_timeout
        self._clock = clock
        self._cache: dict[tuple[str, str], tuple[float, dict[str, str]]] = {}
        self._reading: dict[tuple[str, str], asyncio.Future[dict[str, str]]] = {}

    async def __call__(self, namespace: str, name: str, key: str) -> str:
        data = await self._data(namespace, name)
        if key not in data:
            raise SecretUnavailable(f"Secret {namespace}/{name} has no key '{key}'", permanent=True)
        return data[key]

    async def _data(self, namespace: str, name: str) -> dict[str, str]:
        cache_key = (namespace, name)
        cached = self._cache.get(cache_key)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        pending = self._reading.get(cache_key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
        self._reading[cache_key] = future
        try:
            data = await self._read(namespace, name)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as err:
            future.set_exception(err)
            # Waiters that shared this read have seen the error; the future itself needs no reader.
            future.exception()
            raise
        else:
            future.set_result(data)
            self._cache[cache_key] = (self._clock() + self._ttl, data)
            return data
        finally:
            del self._reading[cache_key]

    async def _read(self, namespace: str, name: str) -> dict[str, str]:
        where = f"Secret {namespace}/{name}"
        try:
            status, raw = await call(
                self._api, "GET", object_path("secrets", namespace, name), request_timeout=self._timeout
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise SecretUnavailable(
                f"reading {where} failed: {type(err).__name__}", permanent=False
            ) from None
        if status == 404:
            raise SecretUnavailable(f"{where} does not exist", permanent=True)
        if status in (401, 403):
            raise SecretUnavailable(f"the controller may not read {where} (HTTP {status})", permanent=True)
        if status != 200:
            raise SecretUnavailable(
                f"reading {where} answered HTTP {status}", permanent=status < 500 and status != 429
            )
        try:
            encoded = json.loads(raw).get("data") or {}
            return {k: base64.b64decode(v).decode() for k, v in encoded.items()}
        except (ValueError, AttributeError, binascii.Error, UnicodeDecodeError):
            raise SecretUnavailable(f"{where} holds a value that is not UTF-8 text", permanent=True) from None

"""Typed raw HTTP calls to the API server through a kubernetes_asyncio ApiClient.

kubernetes_asyncio is untyped and, with ``_preload_content=False``, hands back the bare aiohttp
response without raising on errors; this module is the one boundary that turns that into typed
values and :class:`~leoflow.controller.kube.errors.ApiError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from leoflow.controller.kube.errors import ApiError, connection_error, error_from_response
from leoflow.spec.resources import GROUP, VERSION

KubeObject = dict[str, Any]


@dataclass(frozen=True)
class ResourceRef:
    """Which collection an object lives in: ``group=""`` is the core API."""

    group: str
    version: str
    plural: str

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        root = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        parts = [root]
        if namespace is not None:
            parts.append(f"namespaces/{quote(namespace, safe='')}")
        parts.append(self.plural)
        if name is not None:
            parts.append(quote(name, safe=""))
        if sub is not None:
            parts.append(sub)
        return "/".join(parts)


PODS = ResourceRef("", "v1", "pods")
CONFIGMAPS = ResourceRef("", "v1", "configmaps")
CORE_EVENTS = ResourceRef("", "v1", "events")
LEASES = ResourceRef("coordination.k8s.io", "v1", "leases")
DAGS = ResourceRef(GROUP, VERSION, "dags")
DAGRUNS = ResourceRef(GROUP, VERSION, "dagruns")


def pin_environment(api_client: Any) -> Any:
    """Makes ``api_client`` read the environment once instead of before every request.

    kubernetes_asyncio opens its aiohttp session with ``trust_env=True``, so before each request
    aiohttp looks up the proxy variables and parses ``~/.netrc``, each in a worker thread: two
    thread hops per API call, which under load cost the controller about a quarter of its CPU and
    delay every create. The API server's proxy (``HTTPS_PROXY``/``NO_PROXY``, as client-go reads
    them) is resolved here once; netrc never applies, the API server's credentials are in the
    kubeconfig. Returns ``api_client``.
    """
    rest = api_client.rest_client
    if not rest.proxy:
        try:
            proxy, _ = get_env_proxy_for_url(URL(api_client.configuration.host))
        except LookupError:
            pass
        else:
            rest.proxy = str(proxy)
    # The session has no public switch for it; the attribute is read per request.
    rest.pool_manager._trust_env = False
    return api_client


class Transport:
    """Sends one request and returns decoded JSON, raising :class:`ApiError` for any failure."""

    def __init__(self, api_client: Any, request_timeout: float = 30.0) -> None:
        self._api = api_client
        self._timeout = request_timeout

    async def open(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: object = None,
        content_type: str = "application/json",
        client_timeout: aiohttp.ClientTimeout | float | None = None,
        verb: str = "",
    ) -> aiohttp.ClientResponse:
        """Starts a request and returns the open response (status 2xx), for streaming reads."""
        try:
            response: aiohttp.ClientResponse = await self._api.call_api(
                path,
                method,
                query_params=query or [],
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=client_timeout if client_timeout is not None else self._timeout,
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise connection_error(verb or method, exc) from exc
        if not 200 <= response.status <= 299:
            try:
                raw = await response.read()
            except (aiohttp.ClientError, TimeoutError, OSError):
                raw = b""
            finally:
                response.release()
            raise error_from_response(verb or method, response.status, dict(response.headers), raw)
        return response

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: object = None,
        content_type: str = "application/json",
        verb: str = "",
    ) -> KubeObject:
        response = await self.open(method, path, query=query, body=body, content_type=content_type, verb=verb)
        try:
            raw = await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise connection_error(verb or method, exc) from exc
        finally:
            response.release()
        try:
            decoded = json.loads(raw) if raw else {}
        except ValueError as exc:
            raise ApiError(
                verb or method, response.status, "BadResponse", f"undecodable body: {exc}"
            ) from exc
        if not isinstance(decoded, dict):
            raise ApiError(verb or method, response.status, "BadResponse", "response body is not an object")
        return decoded

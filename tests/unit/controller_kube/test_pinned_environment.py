"""An API client with its environment pinned reads proxy settings once, not before every request."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import helpers, web

from leoflow.controller.kube.transport import PODS, Transport, pin_environment

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}


async def test_requests_look_up_no_proxy_or_netrc_once_pinned(
    fake_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups: list[str] = []
    real = helpers.get_env_proxy_for_url

    def counted(url: Any) -> Any:
        lookups.append(str(url))
        return real(url)

    monkeypatch.setattr(helpers, "get_env_proxy_for_url", counted)
    monkeypatch.setattr(helpers, "netrc_from_env", lambda: lookups.append("netrc"))
    fake_api.on("POST", PODS.path("ns"), lambda _: _created())
    transport = Transport(fake_api.client)
    await transport.request("POST", PODS.path("ns"), body=POD)
    assert lookups, "the unpinned client consults the environment per request"

    pin_environment(fake_api.client)
    lookups.clear()
    for _ in range(3):
        await transport.request("POST", PODS.path("ns"), body=POD)
    assert lookups == []


def test_the_api_servers_proxy_comes_from_the_environment_once(
    fake_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    pin_environment(fake_api.client)
    assert fake_api.client.rest_client.proxy == "http://proxy.example:3128"


def test_an_explicit_proxy_is_kept(fake_api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    fake_api.client.rest_client.proxy = "http://chosen.example:8080"
    pin_environment(fake_api.client)
    assert fake_api.client.rest_client.proxy == "http://chosen.example:8080"


async def _created() -> web.Response:
    return web.json_response(POD, status=201)

"""Fuzzed request bodies: whatever arrives, the answer is 200 or a 4xx, and the server lives on.

The server runs on a real socket on 127.0.0.1 in a thread of its own, because hypothesis drives
synchronous tests; every example is one real HTTP request.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leoflow.webhook.serving import WebhookConfig, build_app

from .reviewing import SETTINGS, pod, review


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, Any] = {}

    async def start() -> None:
        runner = web.AppRunner(build_app(WebhookConfig(injection=SETTINGS), ready=True), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        holder["runner"] = runner
        holder["port"] = runner.addresses[0][1]
        started.set()

    thread = threading.Thread(
        target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True
    )
    thread.start()
    assert started.wait(10)
    yield holder["port"]
    asyncio.run_coroutine_threadsafe(holder["runner"].cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def post(port: int, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        connection.request(
            "POST", "/mutate-pods?timeout=5s", body=body, headers={"Content-Type": content_type}
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=30,
)


@st.composite
def near_reviews(draw: st.DrawFn) -> bytes:
    """Reviews with a valid envelope and arbitrary values spliced in where a real one has structure."""
    body = review(pod(command=["x"]))
    target = draw(
        st.sampled_from(["request", "object", "metadata", "spec", "containers", "labels", "uid", "kind"])
    )
    value = draw(json_values)
    request = body["request"]
    obj = request["object"]
    if target == "request":
        body["request"] = value
    elif target == "object":
        request["object"] = value
    elif target == "metadata":
        obj["metadata"] = value
    elif target == "spec":
        obj["spec"] = value
    elif target == "containers":
        obj["spec"]["containers"] = value
    elif target == "labels":
        obj["metadata"]["labels"] = {"leoflow.io/inject": "true", "x": value}
        obj["metadata"]["annotations"] = {
            "leoflow.io/entrypoint": json.dumps(value),
            "leoflow.io/containers": value,
        }
    elif target == "uid":
        request["uid"] = value
    else:
        request["kind"] = value
    return json.dumps(body).encode()


def assert_answered(port: int, status: int, body: bytes) -> None:
    assert status < 500, body
    if status == 200:
        answer = json.loads(body)
        assert isinstance(answer["response"]["allowed"], bool)
        # A crash inside the mutation would still be a 200 (a denial); it must not happen either.
        assert "internal error" not in answer["response"].get("status", {}).get("message", "")
    else:
        assert status in (400, 413)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=2048))
def test_random_bytes_never_get_a_5xx(port: int, body: bytes) -> None:
    assert_answered(port, *post(port, body))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(json_values)
def test_random_json_never_gets_a_5xx(port: int, value: Any) -> None:
    assert_answered(port, *post(port, json.dumps(value).encode()))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(near_reviews())
def test_near_valid_reviews_never_get_a_5xx(port: int, body: bytes) -> None:
    assert_answered(port, *post(port, body))


def test_server_still_healthy_after_the_fuzzing(port: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", "/healthz")
    assert connection.getresponse().status == 200

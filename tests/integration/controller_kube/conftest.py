"""A TCP proxy in front of the API server, so tests can cut or freeze the controller's connections.

Dead and silent connections are the failures the informer and the leader elector exist to survive;
a proxy produces them for real (TLS passes through untouched) without restarting the API server
that other tests share.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from leoflow.dev.testing import ClusterHandle


class TcpProxy:
    """Forwards bytes to the API server; ``cut`` resets, ``freeze`` silences existing connections."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._connections: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter, asyncio.Event]] = []
        self.refusing = False
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        """Closes every open connection, as a load balancer or a restarted API server would."""
        for client, upstream, _ in self._connections:
            client.close()
            upstream.close()
        self._connections.clear()

    def freeze(self) -> None:
        """Open connections stay open but carry nothing more: the silent hang of a dead network path."""
        for _, _, flowing in self._connections:
            flowing.clear()
        self._connections.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        flowing = asyncio.Event()
        flowing.set()
        self._connections.append((writer, up_writer, flowing))
        await asyncio.gather(
            self._pump(reader, up_writer, flowing),
            self._pump(up_reader, writer, flowing),
            return_exceptions=True,
        )

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, flowing: asyncio.Event) -> None:
        try:
            while data := await source.read(65536):
                await flowing.wait()
                sink.write(data)
                await sink.drain()
        finally:
            sink.close()


@pytest.fixture
async def api_proxy(cluster: ClusterHandle) -> AsyncIterator[TcpProxy]:
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    server = urlparse(config["clusters"][0]["cluster"]["server"])
    proxy = TcpProxy(server.hostname or "127.0.0.1", server.port or 443)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


@pytest.fixture
async def proxied_kube(cluster: ClusterHandle, api_proxy: TcpProxy) -> AsyncIterator[Any]:
    """An ApiClient whose every connection goes through ``api_proxy``."""
    client = await client_through(cluster, api_proxy)
    try:
        yield client
    finally:
        await client.close()


async def client_through(cluster: ClusterHandle, proxy: TcpProxy) -> Any:
    from kubernetes_asyncio.client import ApiClient, Configuration
    from kubernetes_asyncio.config import load_kube_config

    configuration = Configuration()
    await load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=configuration)
    configuration.host = f"https://127.0.0.1:{proxy.port}"
    return ApiClient(configuration=configuration)


async def _eventually(check: Callable[[], bool | Awaitable[bool]], what: str, within: float = 30) -> None:
    """Polls ``check`` until it holds; the bound only turns a hang into a readable failure."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.05)


Eventually = Callable[..., Awaitable[None]]


@pytest.fixture
def eventually() -> Eventually:
    return _eventually

"""The serving certificate is swapped under a live server: new handshakes see the new one,
an open connection keeps working, and a half-written pair is never loaded. Handshakes are counted,
one per new connection, so connection churn shows in the metrics."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from leoflow.certs import authority
from leoflow.webhook.metrics import WebhookMetrics
from leoflow.webhook.serving import WebhookConfig, build_app
from leoflow.webhook.tls import ReloadingCertificate

from .reviewing import SETTINGS

NOW = datetime.datetime.now(datetime.UTC)
YEAR = datetime.timedelta(days=365)


def pair(ca: authority.CertificatePair) -> authority.CertificatePair:
    return authority.issue_serving(
        ca, dns_names=("localhost",), ip_addresses=("127.0.0.1",), now=NOW, validity=YEAR
    )


def write(directory: Path, serving: authority.CertificatePair) -> None:
    (directory / "tls.crt").write_bytes(serving.cert_pem)
    (directory / "tls.key").write_bytes(serving.key_pem)


class Served:
    def __init__(
        self,
        certificate: ReloadingCertificate,
        port: int,
        trust: ssl.SSLContext,
        second_ca: authority.CertificatePair,
        metrics: WebhookMetrics,
    ) -> None:
        self.certificate = certificate
        self.metrics = metrics
        self.port = port
        self.trust = trust
        self.second_ca = second_ca

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port, ssl=self.trust)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    first_ca = authority.new_ca(common_name="first", now=NOW, validity=YEAR)
    second_ca = authority.new_ca(common_name="second", now=NOW, validity=YEAR)
    write(tmp_path, pair(first_ca))
    metrics = WebhookMetrics()
    certificate = ReloadingCertificate(
        tmp_path / "tls.crt", tmp_path / "tls.key", on_handshake=metrics.tls_handshakes.inc
    )
    config = WebhookConfig(injection=SETTINGS, metrics=metrics)
    runner = web.AppRunner(build_app(config, ready=True), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=certificate.context)
    await site.start()
    trust = ssl.create_default_context(cadata=(first_ca.cert_pem + second_ca.cert_pem).decode())
    yield Served(certificate, runner.addresses[0][1], trust, second_ca, metrics)
    await runner.cleanup()


def peer_certificate(writer: asyncio.StreamWriter) -> bytes:
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    assert isinstance(der, bytes)
    return der


def der(serving: authority.CertificatePair) -> bytes:
    return ssl.PEM_cert_to_DER_cert(serving.cert_pem.decode())


async def healthz(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n")
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    await reader.readexactly(3)
    return head.split(b"\r\n", 1)[0]


async def test_new_handshakes_get_the_new_certificate_and_open_connections_survive(
    served: Served, tmp_path: Path
) -> None:
    reader, old = await served.connect()
    before = peer_certificate(old)
    assert await healthz(reader, old) == b"HTTP/1.1 200 OK"

    replacement = pair(served.second_ca)
    write(tmp_path, replacement)
    assert served.certificate.reload_if_changed()
    assert not served.certificate.reload_if_changed()

    _, new = await served.connect()
    assert peer_certificate(new) == der(replacement)
    new.close()
    # The connection opened before the swap still answers, with the certificate it started with.
    assert await healthz(reader, old) == b"HTTP/1.1 200 OK"
    assert peer_certificate(old) == before
    old.close()


async def test_half_written_pair_is_not_loaded_until_complete(served: Served, tmp_path: Path) -> None:
    _, first = await served.connect()
    original = peer_certificate(first)
    first.close()
    replacement = pair(served.second_ca)
    (tmp_path / "tls.crt").write_bytes(replacement.cert_pem)  # the key is not written yet
    assert not served.certificate.reload_if_changed()
    _, during = await served.connect()
    assert peer_certificate(during) == original
    during.close()

    (tmp_path / "tls.key").write_bytes(replacement.key_pem)
    assert served.certificate.reload_if_changed()
    _, after = await served.connect()
    assert peer_certificate(after) == der(replacement)
    after.close()


async def test_each_new_connection_counts_one_handshake_and_reused_ones_none(served: Served) -> None:
    def handshakes() -> float | None:
        return served.metrics.registry.get_sample_value("leoflow_webhook_tls_handshakes_total")

    assert handshakes() == 0
    reader, first = await served.connect()
    for _ in range(3):
        assert await healthz(reader, first) == b"HTTP/1.1 200 OK"
    assert handshakes() == 1
    _, second = await served.connect()
    assert handshakes() == 2
    first.close()
    second.close()


def test_first_load_of_a_missing_file_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        ReloadingCertificate(tmp_path / "absent.crt", tmp_path / "absent.key")

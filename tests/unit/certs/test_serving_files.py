"""Serving certificate files are accepted only as a complete pair, a change is seen by content,
and a server can wait for files that are not there yet."""

from __future__ import annotations

import asyncio
import datetime
import logging
from pathlib import Path

import pytest

from leoflow.certs import authority
from leoflow.certs.servingfiles import ServingFiles

NOW = datetime.datetime.now(datetime.UTC)
HOUR = datetime.timedelta(hours=1)
CA = authority.new_ca(common_name="ca", now=NOW, validity=HOUR)


def issue() -> authority.CertificatePair:
    return authority.issue_serving(
        CA, dns_names=("leoflow-controller",), ip_addresses=(), now=NOW, validity=HOUR
    )


def write(directory: Path, pair: authority.CertificatePair) -> None:
    (directory / "tls.crt").write_bytes(pair.cert_pem)
    (directory / "tls.key").write_bytes(pair.key_pem)


def files(directory: Path) -> ServingFiles:
    return ServingFiles(directory / "tls.crt", directory / "tls.key")


def test_a_new_pair_is_handed_out_once(tmp_path: Path) -> None:
    write(tmp_path, issue())
    watched = files(tmp_path)
    watched.load()
    assert watched.changed() is None
    second = issue()
    write(tmp_path, second)
    changed = watched.changed()
    assert changed is not None and changed.cert_pem == second.cert_pem
    assert watched.changed() is None


def test_a_certificate_with_another_key_is_refused_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, issue())
    watched = files(tmp_path)
    watched.load()
    (tmp_path / "tls.crt").write_bytes(issue().cert_pem)
    assert watched.changed() is None
    assert watched.changed() is None
    warnings = [r for r in caplog.records if r.getMessage().startswith("certificate files do not load")]
    assert len(warnings) == 1
    assert "the key is not the certificate's" in warnings[0].error
    with pytest.raises(ValueError, match="the key is not the certificate's"):
        watched.load()


async def test_wait_returns_the_pair_once_the_files_appear(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    waiting = asyncio.create_task(files(tmp_path).wait(interval=0.05))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    assert caplog.text.count("waiting for the serving certificate files") == 1
    pair = issue()
    write(tmp_path, pair)
    loaded = await asyncio.wait_for(waiting, timeout=5)
    assert (loaded.cert_pem, loaded.key_pem) == (pair.cert_pem, pair.key_pem)

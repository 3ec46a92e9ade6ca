"""Serving certificate files are accepted only as a complete pair, a change is seen by stat and
then by content, settled files whose stat did not change are not read, and a server can wait for
files that are not there yet."""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import time
from pathlib import Path

import pytest

from leoflow.certs import authority
from leoflow.certs.servingfiles import SETTLED_NS, ServingFiles

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


class CountingReader:
    """Reads files for ServingFiles and counts how many it read."""

    def __init__(self) -> None:
        self.reads = 0

    def __call__(self, path: Path) -> bytes:
        self.reads += 1
        return path.read_bytes()


SETTLED_AT = time.time_ns() - 1800 * SETTLED_NS


def settle(*paths: Path) -> None:
    """Dates the files' mtime an hour back, so their stat is trusted."""
    for path in paths:
        os.utime(path, ns=(SETTLED_AT, SETTLED_AT))


def counted(directory: Path) -> tuple[ServingFiles, CountingReader]:
    reader = CountingReader()
    return ServingFiles(directory / "tls.crt", directory / "tls.key", read=reader), reader


def test_a_settled_unchanged_pair_is_not_read_again(tmp_path: Path) -> None:
    write(tmp_path, issue())
    settle(tmp_path / "tls.crt", tmp_path / "tls.key")
    watched, reader = counted(tmp_path)
    watched.load()
    assert reader.reads == 2
    assert [watched.changed() for _ in range(5)] == [None] * 5
    assert reader.reads == 2


def test_a_pair_modified_moments_ago_is_read_on_every_check(tmp_path: Path) -> None:
    # Its stat could stay the same through another write within the same clock tick.
    write(tmp_path, issue())
    watched, reader = counted(tmp_path)
    watched.load()
    assert [watched.changed() for _ in range(3)] == [None] * 3
    assert reader.reads == 2 + 3 * 2


def swap_in(directory: Path, version: str, pair: authority.CertificatePair, *, mtime_ns: int) -> None:
    """What the kubelet does to a Secret volume: a new directory, then one atomic symlink swap."""
    data = directory / version
    data.mkdir()
    write(data, pair)
    for name in ("tls.crt", "tls.key"):
        os.utime(data / name, ns=(mtime_ns, mtime_ns))
        if not (directory / name).is_symlink():
            (directory / name).symlink_to(Path("..data") / name)
    (directory / "..data_tmp").symlink_to(version)
    (directory / "..data_tmp").replace(directory / "..data")


def test_a_swapped_pair_is_picked_up_even_with_the_same_mtime(tmp_path: Path) -> None:
    swap_in(tmp_path, "v1", issue(), mtime_ns=SETTLED_AT)
    watched, reader = counted(tmp_path)
    watched.load()
    assert watched.changed() is None
    assert reader.reads == 2
    second = issue()
    swap_in(tmp_path, "v2", second, mtime_ns=SETTLED_AT)
    changed = watched.changed()
    assert changed is not None and (changed.cert_pem, changed.key_pem) == (second.cert_pem, second.key_pem)
    assert watched.changed() is None
    assert reader.reads == 4


def test_a_half_replaced_pair_is_refused_until_its_key_arrives(tmp_path: Path) -> None:
    write(tmp_path, issue())
    settle(tmp_path / "tls.crt", tmp_path / "tls.key")
    watched, reader = counted(tmp_path)
    watched.load()
    second = issue()
    (tmp_path / "tls.crt").write_bytes(second.cert_pem)
    settle(tmp_path / "tls.crt")
    assert watched.changed() is None
    assert watched.changed() is None
    assert reader.reads == 4  # the refused pair is read once, then its settled stat is trusted
    (tmp_path / "tls.key").write_bytes(second.key_pem)
    changed = watched.changed()
    assert changed is not None and changed.key_pem == second.key_pem

"""The serving certificate and key a server reads from files: loaded, checked, and reloaded.

The webhook (an ``ssl.SSLContext``) and the controller's agent endpoint (gRPC credentials) both
serve from a mounted Secret, which the kubelet replaces in place by an atomic symlink swap, with
no reliable filesystem event. So the files are polled, on every gRPC handshake. A check first
compares each file's stat (device, inode, size, mtime, ctime) with the last read's, which costs
two ``stat`` calls and no read; only when a stat changed are the files read and compared by a
digest of their content, as kopf does. A timestamp can miss a rewrite within one clock tick (or
within the 1-2 s granularity of coarse filesystems), so the stat of a file modified less than
:data:`SETTLED_NS` before it was read is not trusted, and such a file is read on every check
until it settles. A change is accepted only when the certificate and the key belong together: a
half-written pair (new certificate, old key) is refused and retried on the next change, never
served. Each server keeps its own live object and
swaps it in place, so open connections keep their session and new handshakes get the new pair.

The Secret may not exist yet when a server starts (the in-cluster keeper issues it, and the
kubelet projects it up to a minute later): :meth:`ServingFiles.wait` polls until a valid pair is
there, logging once what it waits for.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

log = logging.getLogger(__name__)

SETTLED_NS = 2_000_000_000
"""A file last modified at least this long before it was read cannot change again without its
stat changing: any later write gets a later mtime, even on filesystems that keep whole seconds."""

Stamp = tuple[int, int, int, int, int]
"""``(st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns)`` of a file, its symlinks followed."""


def _stamp(path: Path) -> Stamp:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(frozen=True)
class ServingPair:
    """A certificate (chain) and its key, PEM, as read together."""

    cert_pem: bytes
    key_pem: bytes


def check_pair(cert_pem: bytes, key_pem: bytes, *, where: str) -> ServingPair:
    """The pair if the PEMs parse and the key is the certificate's, else ``ValueError`` naming ``where``."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{where}: not a PEM certificate and private key: {err}") from None
    if cert.public_key() != key.public_key():
        raise ValueError(f"{where}: the key is not the certificate's")
    return ServingPair(cert_pem, key_pem)


class ServingFiles:
    """A certificate and key file pair, and what was last read from them.

    Cheap to poll (on every gRPC handshake): settled files whose stat did not change are not read;
    otherwise the files are read and hashed, only content not seen before is parsed, and each
    problem is logged once. ``read`` reads one file (the seam tests count reads through).
    """

    def __init__(
        self, cert_file: Path, key_file: Path, *, read: Callable[[Path], bytes] = Path.read_bytes
    ) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self._read_file = read
        self._seen: bytes | None = None
        self._stamps: tuple[Stamp, Stamp] | None = None
        """The stats of the files ``_seen`` was read from, when both had settled."""
        self._problem: str | None = None

    def _stamps_now(self) -> tuple[Stamp, Stamp]:
        return (_stamp(self.cert_file), _stamp(self.key_file))

    def _read(self, stamps: tuple[Stamp, Stamp]) -> tuple[bytes, bytes, bytes, tuple[Stamp, Stamp] | None]:
        """Reads the files ``stamps`` were taken of. Stat before reading: a replacement after the
        stat shows as a changed stat next time, at worst reading the same content twice; the other
        order could record the new stat with the old content and never read the new one."""
        cert_pem, key_pem = self._read_file(self.cert_file), self._read_file(self.key_file)
        read_at = time.time_ns()
        settled = all(read_at - stamp[3] >= SETTLED_NS for stamp in stamps)
        digest = hashlib.sha256(cert_pem + b"\0" + key_pem).digest()
        return cert_pem, key_pem, digest, stamps if settled else None

    def load(self) -> ServingPair:
        """The current pair, or ``OSError`` (unreadable) / ``ValueError`` (not a matching pair)."""
        cert_pem, key_pem, digest, stamps = self._read(self._stamps_now())
        pair = check_pair(cert_pem, key_pem, where=f"{self.cert_file}, {self.key_file}")
        self._seen, self._stamps, self._problem = digest, stamps, None
        return pair

    def changed(self) -> ServingPair | None:
        """The pair if the files changed since last read and hold a valid pair; otherwise None."""
        try:
            stamps = self._stamps_now()
            if stamps == self._stamps:
                return None
            cert_pem, key_pem, digest, self._stamps = self._read(stamps)
            if digest == self._seen:
                return None
            self._seen = digest
            pair = check_pair(cert_pem, key_pem, where=f"{self.cert_file}, {self.key_file}")
        except (OSError, ValueError) as err:
            if str(err) != self._problem:
                self._problem = str(err)
                log.warning(
                    "certificate files do not load; keeping the loaded pair", extra={"error": str(err)}
                )
            return None
        self._problem = None
        log.info("serving certificate reloaded", extra={"cert_file": str(self.cert_file)})
        return pair

    async def wait(self, *, interval: float = 2.0) -> ServingPair:
        """The first valid pair, polling every ``interval`` seconds until there is one."""
        waited = False
        while True:
            try:
                return self.load()
            except (OSError, ValueError) as err:
                if not waited:
                    log.warning(
                        "waiting for the serving certificate files",
                        extra={"cert_file": str(self.cert_file), "error": str(err)},
                    )
                    waited = True
            await asyncio.sleep(interval)

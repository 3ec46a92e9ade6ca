"""The serving certificate and key a server reads from files: loaded, checked, and reloaded.

The webhook (an ``ssl.SSLContext``) and the controller's agent endpoint (gRPC credentials) both
serve from a mounted Secret, which the kubelet replaces in place by an atomic symlink swap, with
no reliable filesystem event. So the files are polled, by a digest of their content as kopf does
(a timestamp can miss a rewrite within one clock tick), and a change is accepted only when the
certificate and the key belong together: a half-written pair (new certificate, old key) is
refused and retried on the next check, never served. Each server keeps its own live object and
swaps it in place, so open connections keep their session and new handshakes get the new pair.

The Secret may not exist yet when a server starts (the in-cluster keeper issues it, and the
kubelet projects it up to a minute later): :meth:`ServingFiles.wait` polls until a valid pair is
there, logging once what it waits for.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

log = logging.getLogger(__name__)


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

    Cheap to poll (on every gRPC handshake): the files are read and hashed; only content not seen
    before is parsed, and each problem is logged once.
    """

    def __init__(self, cert_file: Path, key_file: Path) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self._seen: bytes | None = None
        self._problem: str | None = None

    def _read(self) -> tuple[bytes, bytes, bytes]:
        cert_pem, key_pem = self.cert_file.read_bytes(), self.key_file.read_bytes()
        return cert_pem, key_pem, hashlib.sha256(cert_pem + b"\0" + key_pem).digest()

    def load(self) -> ServingPair:
        """The current pair, or ``OSError`` (unreadable) / ``ValueError`` (not a matching pair)."""
        cert_pem, key_pem, digest = self._read()
        pair = check_pair(cert_pem, key_pem, where=f"{self.cert_file}, {self.key_file}")
        self._seen, self._problem = digest, None
        return pair

    def changed(self) -> ServingPair | None:
        """The pair if the files changed since last read and hold a valid pair; otherwise None."""
        try:
            cert_pem, key_pem, digest = self._read()
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

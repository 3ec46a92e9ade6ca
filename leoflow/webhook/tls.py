"""The serving certificate, reloaded when its files change without dropping connections.

Mounted Secrets change by an atomic symlink swap and send no reliable filesystem event, so the
files are polled, by a digest of their content as kopf does (a timestamp can miss a rewrite
within one clock tick). A change is first loaded into a scratch context: a
half-written pair (new certificate, old key) fails there and is retried on the next check, and
never reaches the live context. The live ``SSLContext`` is then updated in place with
``load_cert_chain``; every new handshake uses the new pair, open connections keep theirs.

Each handshake is also counted (``on_handshake``): the API server's HTTP/1.1 client keeps a pool
of idle connections and opens new ones when more reviews are in flight than it holds, so a
handshake rate that climbs with load is the sign of connection churn, each one costing both sides
a key exchange.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


def _server_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class ReloadingCertificate:
    """Owns the live server ``SSLContext``; raises ``ssl.SSLError``/``OSError`` if the first load fails."""

    def __init__(
        self,
        cert_file: Path,
        key_file: Path,
        *,
        on_reload: Callable[[], None] | None = None,
        on_handshake: Callable[[], None] | None = None,
    ) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.context = _server_context()
        if on_handshake is not None:
            # OpenSSL calls the SNI hook on every ClientHello, with or without a server name (the
            # API server sends none to an IP address), which makes it a handshake counter.
            def count(_socket: ssl.SSLObject, _name: str | None, _context: ssl.SSLContext) -> None:
                on_handshake()

            self.context.sni_callback = count
        self._on_reload = on_reload
        self._stamp = self._current_stamp()
        self.context.load_cert_chain(cert_file, key_file)

    def _current_stamp(self) -> bytes:
        digest = hashlib.sha256()
        for path in (self.cert_file, self.key_file):
            digest.update(path.read_bytes())
            digest.update(b"\0")
        return digest.digest()

    def reload_if_changed(self) -> bool:
        """Loads the files again if they changed and form a valid pair; True when it did."""
        try:
            stamp = self._current_stamp()
        except OSError as err:
            log.warning("certificate files unreadable; keeping the loaded pair", extra={"error": str(err)})
            return False
        if stamp == self._stamp:
            return False
        try:
            _server_context().load_cert_chain(self.cert_file, self.key_file)
            self.context.load_cert_chain(self.cert_file, self.key_file)
        except (ssl.SSLError, OSError) as err:
            log.warning(
                "changed certificate files do not load yet; keeping the loaded pair",
                extra={"cert_file": str(self.cert_file), "error": str(err)},
            )
            return False
        self._stamp = stamp
        log.info("serving certificate reloaded", extra={"cert_file": str(self.cert_file)})
        if self._on_reload is not None:
            self._on_reload()
        return True

    async def watch(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.reload_if_changed()

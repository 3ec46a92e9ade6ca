"""The webhook's serving certificate, reloaded when its files change without dropping connections.

:mod:`leoflow.certs.servingfiles` decides when the files hold a new, complete pair (the
controller's agent endpoint shares it); a half-written pair never reaches the live context. The
live ``SSLContext`` is then updated in place with ``load_cert_chain``; every new handshake uses
the new pair, open connections keep theirs.

Each handshake is also counted (``on_handshake``): the API server's HTTP/1.1 client keeps a pool
of idle connections and opens new ones when more reviews are in flight than it holds, so a
handshake rate that climbs with load is the sign of connection churn, each one costing both sides
a key exchange.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from pathlib import Path

from leoflow.certs.servingfiles import ServingFiles

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
        self._files = ServingFiles(cert_file, key_file)
        self.context.load_cert_chain(cert_file, key_file)
        try:
            self._files.load()
        except ValueError as err:  # replaced between the two reads: the same error as a bad pair
            raise ssl.SSLError(str(err)) from err

    def reload_if_changed(self) -> bool:
        """Loads the files again if they changed and form a valid pair; True when it did."""
        if self._files.changed() is None:
            return False
        try:
            self.context.load_cert_chain(self.cert_file, self.key_file)
        except (ssl.SSLError, OSError) as err:
            # Replaced again since they were checked: the next check sees the newer pair.
            log.warning(
                "changed certificate files do not load; keeping the loaded pair",
                extra={"cert_file": str(self.cert_file), "error": str(err)},
            )
            return False
        if self._on_reload is not None:
            self._on_reload()
        return True

    async def watch(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.reload_if_changed()

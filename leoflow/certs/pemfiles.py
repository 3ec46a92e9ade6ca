"""Writing certificates and private keys to files.

A key written with the default mode and chmod'ed afterwards is readable by everyone between the
two calls, and a key overwritten in place keeps whatever mode the old file had. So each file is
written to a temporary file that is created owner-only in the same directory, given its final
mode before the first byte, and renamed over the target: a reader sees the old file or the whole
new one, never a partial one, and an interrupted write leaves the old file as it was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

PRIVATE = 0o600
PUBLIC = 0o644


def write(path: Path, content: bytes, *, mode: int) -> None:
    """Replaces ``path`` with ``content`` and ``mode``; raises ``OSError`` if it cannot."""
    # mkstemp creates the file 0600 whatever the umask, and the rename keeps the mode it has.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as stream:
            os.fchmod(stream.fileno(), mode)
            stream.write(content)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def write_private(path: Path, content: bytes) -> None:
    write(path, content, mode=PRIVATE)

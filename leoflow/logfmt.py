"""Structured logging for every Leoflow process, as logfmt lines (``key=value``).

Library modules only call ``logging.getLogger(__name__)`` and pass fields through ``extra=``;
entry points call :func:`configure` once. One line per event keeps component logs greppable
when a test dumps them after a failure.
"""

from __future__ import annotations

import logging
import time
from typing import Any

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime", "taskName"}
)


def _quote(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n\t'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class LogfmtFormatter(logging.Formatter):
    """Renders ``ts level logger msg`` then the record's extra fields, in the order given."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields.update({k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS})
        line = " ".join(f"{k}={_quote(v)}" for k, v in fields.items())
        if record.exc_info:
            line += " exc=" + _quote(self.formatException(record.exc_info))
        return line


# The Kubernetes client logs whole response bodies at DEBUG, Secrets (private keys) included:
# never below INFO, even when the user asks for debug detail.
_QUIET_LOGGERS = ("kubernetes_asyncio",)


def configure(level: int | str = logging.INFO) -> None:
    """Installs the logfmt formatter on the root logger (stderr); safe to call twice."""
    root = logging.getLogger()
    root.setLevel(level)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.INFO, logging.getLogger(name).getEffectiveLevel()))
    for handler in root.handlers:
        if isinstance(handler.formatter, LogfmtFormatter):
            return
    handler = logging.StreamHandler()
    handler.setFormatter(LogfmtFormatter())
    root.addHandler(handler)

"""The node's log: level, plain or JSON lines, stderr and/or a size-rotated
file (``node start --log-level/--log-json/--log-file/--log-max-bytes/--log-backups``)."""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["LOG_LEVELS", "JsonFormatter", "configure_logging", "DEFAULT_LOG_MAX_BYTES",
           "DEFAULT_LOG_BACKUPS"]

LOG_LEVELS = ("debug", "info", "warning", "error")
DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_LOG_BACKUPS = 5
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_OURS = "_o2ocli_handler"
"""Attribute marking the handlers this module installed (replaced on reconfiguration)."""


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601 with ms), ``level``,
    ``logger``, ``message`` and, for an exception, ``exception`` (the traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry: dict[str, Any] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "info", *, json_lines: bool = False,
                      file: Path | None = None, max_bytes: int = DEFAULT_LOG_MAX_BYTES,
                      backups: int = DEFAULT_LOG_BACKUPS, stderr: bool = True) -> None:
    """Send the root logger's records at ``level`` and above to stderr and/or
    ``file``, which is rotated when it would pass ``max_bytes`` (``file.1`` …
    ``file.N``, ``backups`` kept; 0 bytes: never rotated)."""
    if level not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}, not {level!r}")
    formatter: logging.Formatter = (
        JsonFormatter() if json_lines else logging.Formatter(PLAIN_FORMAT))
    handlers: list[logging.Handler] = []
    if file is not None:
        handlers.append(logging.handlers.RotatingFileHandler(
            file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"))
    if stderr or file is None:
        handlers.append(logging.StreamHandler(sys.stderr))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        setattr(handler, _OURS, True)
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level.upper())

"""Point of sale: ``pos serve`` (a till web page, a REST API, webhooks, an event
stream) on a watch-only wallet and a node's RPC.  See ``man o2ocli-pos``."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["API_KEY_FILE", "load_or_create_secret"]

API_KEY_FILE = "pos-api.key"


def load_or_create_secret(path: Path) -> tuple[str, bool]:
    """The secret in ``path`` (one line), created (32 random bytes, hex, mode 0600)
    if missing; returns (secret, created)."""
    try:
        text = path.read_text(encoding="utf-8").strip()
        if text:
            return text, False
    except FileNotFoundError:
        pass
    secret = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (secret + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(path, 0o600)
    return secret, True

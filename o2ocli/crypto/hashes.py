"""Hash functions used throughout the node: SHA-256, double SHA-256 and HASH160.

The RIPEMD-160 implementation is chosen once, at import time: :mod:`hashlib` when the linked
OpenSSL still provides it, otherwise pycryptodome's ``Crypto.Hash.RIPEMD160``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

__all__ = ["RIPEMD160_IMPL", "hash160", "ripemd160", "sha256", "sha256d"]

_sha256 = hashlib.sha256


def _select_ripemd160() -> tuple[str, Callable[[bytes], bytes]]:
    """Pick a working RIPEMD-160 implementation (hashlib first, then pycryptodome)."""
    try:
        hashlib.new("ripemd160", b"")
    except ValueError:  # OpenSSL 3 without the legacy provider
        pass
    else:

        fresh = hashlib.new("ripemd160").copy  # copying is cheaper than a lookup by name

        def _hashlib_ripemd160(data: bytes) -> bytes:
            h = fresh()
            h.update(data)
            return h.digest()

        return "hashlib", _hashlib_ripemd160

    try:
        from Crypto.Hash import RIPEMD160  # type: ignore[import-not-found]
    except ImportError as exc:  # pragma: no cover - depends on the platform
        raise ImportError(
            "RIPEMD-160 is unavailable: hashlib lacks it and pycryptodome is not installed"
        ) from exc

    def _pycryptodome_ripemd160(data: bytes) -> bytes:  # pragma: no cover - platform specific
        return RIPEMD160.new(data).digest()

    return "pycryptodome", _pycryptodome_ripemd160


#: Which RIPEMD-160 implementation is in use: ``"hashlib"`` or ``"pycryptodome"``.
RIPEMD160_IMPL, _ripemd160 = _select_ripemd160()


def sha256(data: bytes) -> bytes:
    """Return the 32-byte SHA-256 digest of *data*."""
    return _sha256(data).digest()


def sha256d(data: bytes) -> bytes:
    """Return SHA-256(SHA-256(*data*)), the double hash used for ids and checksums."""
    return _sha256(_sha256(data).digest()).digest()


def ripemd160(data: bytes) -> bytes:
    """Return the 20-byte RIPEMD-160 digest of *data*."""
    return _ripemd160(data)


def hash160(data: bytes) -> bytes:
    """Return RIPEMD-160(SHA-256(*data*)), the 20-byte hash used in addresses."""
    return _ripemd160(_sha256(data).digest())

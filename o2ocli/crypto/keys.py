"""secp256k1 key pair types.

:class:`PrivateKey` wraps a 32-byte secret in [1, n-1]; :class:`PublicKey` wraps a point and
always stores its 33-byte compressed SEC1 form. Both are immutable. Cryptography is delegated
to the default backend (libsecp256k1).
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any, NoReturn

from .backends import DEFAULT_BACKEND, SECP256K1_N
from .hashes import hash160

__all__ = ["InvalidKeyError", "PrivateKey", "PublicKey"]

_N_BYTES = SECP256K1_N.to_bytes(32, "big")
_ZERO32 = bytes(32)


class InvalidKeyError(ValueError):
    """Raised for a secret outside [1, n-1] or a public key that is not a valid curve point."""


def _readonly(self: object, *_args: Any) -> NoReturn:
    raise AttributeError(f"{type(self).__name__} is immutable")


class PublicKey:
    """An immutable secp256k1 public key, stored as 33 compressed SEC1 bytes.

    Equality and hashing use those bytes, so a key parsed from its uncompressed form equals
    the same key parsed from its compressed form.
    """

    __slots__ = ("_data",)
    _data: bytes

    def __init__(self, data: bytes) -> None:
        """Parse a 33-byte compressed or 65-byte uncompressed SEC1 point.

        Raises :class:`InvalidKeyError` for any other length or prefix, or a point that is not
        on the curve.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidKeyError(f"public key must be bytes, got {type(data).__name__}")
        data = bytes(data)
        if len(data) not in (33, 65):
            raise InvalidKeyError(f"public key must be 33 or 65 bytes, got {len(data)}")
        compressed = DEFAULT_BACKEND.normalize_pubkey(data)
        if compressed is None:
            raise InvalidKeyError("public key is not a valid secp256k1 point")
        object.__setattr__(self, "_data", compressed)

    @classmethod
    def _from_compressed(cls, data: bytes) -> PublicKey:
        """Wrap bytes already known to be a valid compressed point (internal)."""
        obj = object.__new__(cls)
        object.__setattr__(obj, "_data", data)
        return obj

    __setattr__ = _readonly
    __delattr__ = _readonly

    def to_bytes(self) -> bytes:
        """Return the 33-byte compressed SEC1 encoding."""
        return self._data

    def __bytes__(self) -> bytes:
        return self._data

    def hash160(self) -> bytes:
        """Return HASH160 (RIPEMD-160 of SHA-256) of the compressed encoding: 20 bytes."""
        return hash160(self._data)

    def verify(self, sig64: bytes, digest: bytes) -> bool:
        """Consensus check of a 64-byte ``r || s`` signature over a 32-byte digest (low-S)."""
        return DEFAULT_BACKEND.verify(self._data, sig64, digest, require_low_s=True)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PublicKey):
            return self._data == other._data
        return NotImplemented

    def __hash__(self) -> int:
        return hash((PublicKey, self._data))

    def __repr__(self) -> str:
        return f"PublicKey({self._data.hex()})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (PublicKey, (self._data,))


class PrivateKey:
    """An immutable secp256k1 private key (32-byte secret in [1, n-1]).

    ``repr`` shows only the public key, never the secret.
    """

    __slots__ = ("_secret", "_public")
    _secret: bytes
    _public: PublicKey | None

    def __init__(self, secret: bytes) -> None:
        """Wrap a 32-byte big-endian secret; raise :class:`InvalidKeyError` if out of range."""
        if not isinstance(secret, bytes | bytearray | memoryview):
            raise InvalidKeyError(f"secret must be bytes, got {type(secret).__name__}")
        secret = bytes(secret)
        if len(secret) != 32:
            raise InvalidKeyError(f"secret must be 32 bytes, got {len(secret)}")
        if secret == _ZERO32 or secret >= _N_BYTES:
            raise InvalidKeyError("secret is out of range [1, n-1]")
        object.__setattr__(self, "_secret", secret)
        object.__setattr__(self, "_public", None)

    @classmethod
    def generate(cls) -> PrivateKey:
        """Return a new key from the operating system's CSPRNG (:mod:`secrets`)."""
        while True:
            candidate = secrets.token_bytes(32)
            if candidate != _ZERO32 and candidate < _N_BYTES:
                return cls(candidate)

    __setattr__ = _readonly
    __delattr__ = _readonly

    @property
    def secret(self) -> bytes:
        """The raw 32-byte secret. Handle with care."""
        return self._secret

    @property
    def public_key(self) -> PublicKey:
        """The matching :class:`PublicKey` (computed once, then cached)."""
        public = self._public
        if public is None:
            public = PublicKey._from_compressed(DEFAULT_BACKEND.pubkey_from_secret(self._secret))
            object.__setattr__(self, "_public", public)
        return public

    def sign(self, digest: bytes) -> bytes:
        """Sign a 32-byte digest: RFC 6979, low-S, 64 bytes ``r || s``."""
        return DEFAULT_BACKEND.sign(self._secret, digest)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PrivateKey):
            return hmac.compare_digest(self._secret, other._secret)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((PrivateKey, self.public_key.to_bytes()))

    def __repr__(self) -> str:
        return f"PrivateKey(<secret hidden>, public_key={self.public_key.to_bytes().hex()})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (PrivateKey, (self._secret,))

"""Interchangeable secp256k1 ECDSA backends.

Two implementations sit behind one :class:`Backend` protocol:

* :class:`CoincurveBackend` (the default): libsecp256k1 through coincurve's cffi bindings. The
  verify path calls the C library directly on the 64-byte ``r || s`` form, with no DER round
  trip and no shared mutable state, so it may be called from many threads at once (cffi
  releases the GIL during the C calls).
* :class:`EcdsaBackend`: a pure-Python reference built on the ``ecdsa`` package. It is slow and
  exists for differential testing. The ``ecdsa`` package is imported only when this backend is
  constructed, so importing :mod:`o2ocli.crypto` stays cheap.

All signatures are 64 bytes ``r || s``; all digests are 32 bytes. Signing is deterministic
(RFC 6979) and always returns a low-S signature, so both backends produce byte-identical
signatures. The module-level :func:`verify` is the consensus rule: low-S required.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import Context

__all__ = [
    "DEFAULT_BACKEND",
    "SECP256K1_HALF_N",
    "SECP256K1_N",
    "Backend",
    "CoincurveBackend",
    "EcdsaBackend",
    "get_backend",
    "sign",
    "verify",
    "verify_cached",
]

#: Order n of the secp256k1 group.
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
#: floor(n / 2): the largest ``s`` a low-S signature may carry.
SECP256K1_HALF_N = SECP256K1_N // 2

_N_BYTES = SECP256K1_N.to_bytes(32, "big")
_HALF_N_BYTES = SECP256K1_HALF_N.to_bytes(32, "big")
_ZERO32 = bytes(32)


@runtime_checkable
class Backend(Protocol):
    """Interface shared by every ECDSA implementation."""

    name: str

    def pubkey_from_secret(self, secret: bytes) -> bytes:
        """Return the 33-byte compressed public key for a 32-byte secret (ValueError if invalid)."""
        ...

    def sign(self, secret: bytes, digest: bytes) -> bytes:
        """Sign a 32-byte digest (RFC 6979, low-S); return 64 bytes ``r || s``."""
        ...

    def verify(
        self, pubkey: bytes, sig64: bytes, digest: bytes, *, require_low_s: bool = True
    ) -> bool:
        """Return True iff *sig64* is a valid signature of *digest* by *pubkey*. Never raises."""
        ...

    def normalize_pubkey(self, pubkey: bytes) -> bytes | None:
        """Return the 33-byte compressed form of a SEC1 point, or None if it is not valid."""
        ...


def _is_sec1_shape(pubkey: bytes) -> bool:
    """Cheap structural check: 33-byte compressed (02/03) or 65-byte uncompressed (04) SEC1.

    Hybrid encodings (06/07), raw 64-byte points and everything else are refused.
    """
    n = len(pubkey)
    if n == 33:
        return pubkey[0] in (2, 3)
    if n == 65:
        return pubkey[0] == 4
    return False


def _check_secret(secret: bytes) -> None:
    """Raise ValueError unless *secret* is 32 bytes encoding an integer in [1, n-1]."""
    if not isinstance(secret, bytes | bytearray | memoryview) or len(secret) != 32:
        raise ValueError("secret must be 32 bytes")
    if secret == _ZERO32 or bytes(secret) >= _N_BYTES:
        raise ValueError("secret is out of range [1, n-1]")


def _check_digest(digest: bytes) -> None:
    """Raise ValueError unless *digest* is 32 bytes."""
    if not isinstance(digest, bytes | bytearray | memoryview) or len(digest) != 32:
        raise ValueError("digest must be 32 bytes")


# ---------------------------------------------------------------------------------------------
# libsecp256k1 (coincurve) backend
# ---------------------------------------------------------------------------------------------

# Parsing and verification need no precomputed signing tables, so they use libsecp256k1's
# immutable static context: nothing in it is ever written, hence it is safe to share between
# threads. Signing and key derivation use a private context of our own, randomized once here
# and never re-seeded afterwards (only secp256k1_context_randomize mutates a context).
_VERIFY_CTX = lib.secp256k1_context_static
_SIGN_CTX = Context(name="o2ocli-sign").ctx

_ffi_new = ffi.new
_ffi_buffer = ffi.buffer
_pubkey_parse = lib.secp256k1_ec_pubkey_parse
_pubkey_serialize = lib.secp256k1_ec_pubkey_serialize
_pubkey_create = lib.secp256k1_ec_pubkey_create
_sig_parse_compact = lib.secp256k1_ecdsa_signature_parse_compact
_sig_serialize_compact = lib.secp256k1_ecdsa_signature_serialize_compact
_sig_normalize = lib.secp256k1_ecdsa_signature_normalize
_ecdsa_verify = lib.secp256k1_ecdsa_verify
_ecdsa_sign = lib.secp256k1_ecdsa_sign
_EC_COMPRESSED = lib.SECP256K1_EC_COMPRESSED
_NULL = ffi.NULL


def _serialize_compressed(pk: Any) -> bytes:
    """Serialize a parsed ``secp256k1_pubkey *`` to 33 compressed bytes."""
    out = _ffi_new("unsigned char[33]")
    outlen = _ffi_new("size_t *", 33)
    _pubkey_serialize(_VERIFY_CTX, out, outlen, pk, _EC_COMPRESSED)
    return bytes(_ffi_buffer(out, 33))


def _needs_bytes_copy(*values: object) -> bool:
    """True if all values are bytes-like and at least one of them is not ``bytes`` itself."""
    return all(isinstance(v, bytes | bytearray | memoryview) for v in values) and not all(
        type(v) is bytes for v in values
    )


class CoincurveBackend:
    """ECDSA over secp256k1 via libsecp256k1 (coincurve's cffi bindings). Thread-safe."""

    name = "coincurve"
    __slots__ = ()

    def pubkey_from_secret(self, secret: bytes) -> bytes:
        """Return the 33-byte compressed public key for *secret* (ValueError if invalid)."""
        _check_secret(secret)
        pk = _ffi_new("secp256k1_pubkey *")
        if not _pubkey_create(_SIGN_CTX, pk, bytes(secret)):
            raise ValueError("invalid secret")
        return _serialize_compressed(pk)

    def sign(self, secret: bytes, digest: bytes) -> bytes:
        """Sign *digest* with RFC 6979 nonces; return a low-S 64-byte ``r || s``.

        libsecp256k1 always emits low-S signatures.
        """
        _check_secret(secret)
        _check_digest(digest)
        sig = _ffi_new("secp256k1_ecdsa_signature *")
        # NULL nonce function = secp256k1_nonce_function_default (RFC 6979, no extra data).
        if not _ecdsa_sign(_SIGN_CTX, sig, bytes(digest), bytes(secret), _NULL, _NULL):
            raise ValueError("signing failed")
        out = _ffi_new("unsigned char[64]")
        _sig_serialize_compact(_VERIFY_CTX, out, sig)
        return bytes(_ffi_buffer(out, 64))

    def verify(
        self, pubkey: bytes, sig64: bytes, digest: bytes, *, require_low_s: bool = True
    ) -> bool:
        """Verify *sig64* (``r || s``) over *digest* against a SEC1 *pubkey*; never raises.

        Returns False for a malformed or off-curve public key, a signature that is not 64
        bytes, r or s outside [1, n-1], s > n/2 when *require_low_s*, or a wrong signature.
        """
        try:
            if len(sig64) != 64 or len(digest) != 32:
                return False
            plen = len(pubkey)
            if plen == 33:
                if pubkey[0] != 2 and pubkey[0] != 3:
                    return False
            elif plen != 65 or pubkey[0] != 4:
                return False
            pk = _ffi_new("secp256k1_pubkey *")
            if not _pubkey_parse(_VERIFY_CTX, pk, pubkey, plen):
                return False
            sig = _ffi_new("secp256k1_ecdsa_signature *")
            # Fails if r or s >= n; r == 0 or s == 0 parse but never verify.
            if not _sig_parse_compact(_VERIFY_CTX, sig, sig64):
                return False
            if not require_low_s:
                # Rewrites s to n - s in place when s > n/2 (secp256k1_ecdsa_verify rejects
                # high-S signatures on its own).
                _sig_normalize(_VERIFY_CTX, sig, sig)
            return _ecdsa_verify(_VERIFY_CTX, sig, digest, pk) == 1
        except TypeError:
            # cffi only takes ``bytes`` for ``const unsigned char *``; retry once with copies
            # of bytes-like arguments (bytearray, memoryview). Anything else is rejected.
            if _needs_bytes_copy(pubkey, sig64, digest):
                return self.verify(
                    bytes(pubkey), bytes(sig64), bytes(digest), require_low_s=require_low_s
                )
            return False
        except (ValueError, IndexError):
            return False

    def normalize_pubkey(self, pubkey: bytes) -> bytes | None:
        """Return the 33-byte compressed form of a valid SEC1 point, else None."""
        try:
            if not _is_sec1_shape(pubkey):
                return None
            pk = _ffi_new("secp256k1_pubkey *")
            if not _pubkey_parse(_VERIFY_CTX, pk, bytes(pubkey), len(pubkey)):
                return None
            return _serialize_compressed(pk)
        except (TypeError, ValueError, IndexError):
            return None

    def __repr__(self) -> str:
        return "CoincurveBackend()"


# ---------------------------------------------------------------------------------------------
# Pure-Python reference backend (python-ecdsa)
# ---------------------------------------------------------------------------------------------


class EcdsaBackend:
    """Reference ECDSA backend built on the pure-Python ``ecdsa`` package (slow).

    The ``ecdsa`` package is imported when an instance is created, not at module import.
    """

    name = "ecdsa"

    def __init__(self) -> None:
        import ecdsa
        import ecdsa.util

        self._ecdsa = ecdsa
        self._curve = ecdsa.SECP256k1
        self._sigencode = ecdsa.util.sigencode_string
        self._sigdecode = ecdsa.util.sigdecode_string
        self._verify_errors: tuple[type[BaseException], ...] = (
            ecdsa.BadSignatureError,
            ecdsa.BadDigestError,
            ecdsa.MalformedPointError,
            ValueError,
            AssertionError,
            ArithmeticError,
        )

    def _signing_key(self, secret: bytes) -> Any:
        """Build an ``ecdsa.SigningKey`` after range-checking *secret*."""
        _check_secret(secret)
        return self._ecdsa.SigningKey.from_string(bytes(secret), curve=self._curve)

    def _verifying_key(self, pubkey: bytes) -> Any:
        """Parse a SEC1 compressed/uncompressed point; None if invalid."""
        if not isinstance(pubkey, bytes | bytearray | memoryview) or not _is_sec1_shape(pubkey):
            return None
        try:
            return self._ecdsa.VerifyingKey.from_string(
                bytes(pubkey),
                curve=self._curve,
                valid_encodings=("compressed", "uncompressed"),
            )
        except self._verify_errors:
            return None

    def pubkey_from_secret(self, secret: bytes) -> bytes:
        """Return the 33-byte compressed public key for *secret* (ValueError if invalid)."""
        sk = self._signing_key(secret)
        return sk.get_verifying_key().to_string("compressed")

    def sign(self, secret: bytes, digest: bytes) -> bytes:
        """Sign *digest* with RFC 6979 (SHA-256) nonces; return a low-S 64-byte ``r || s``."""
        sk = self._signing_key(secret)
        _check_digest(digest)
        sig = sk.sign_digest_deterministic(
            bytes(digest), hashfunc=hashlib.sha256, sigencode=self._sigencode
        )
        s = int.from_bytes(sig[32:], "big")
        if s > SECP256K1_HALF_N:
            sig = sig[:32] + (SECP256K1_N - s).to_bytes(32, "big")
        return sig

    def verify(
        self, pubkey: bytes, sig64: bytes, digest: bytes, *, require_low_s: bool = True
    ) -> bool:
        """Verify *sig64* (``r || s``) over *digest* against a SEC1 *pubkey*; never raises.

        Same acceptance rules as :meth:`CoincurveBackend.verify`.
        """
        try:
            if len(sig64) != 64 or len(digest) != 32:
                return False
            r = int.from_bytes(sig64[:32], "big")
            s = int.from_bytes(sig64[32:], "big")
            if not (0 < r < SECP256K1_N and 0 < s < SECP256K1_N):
                return False
            if require_low_s and s > SECP256K1_HALF_N:
                return False
            vk = self._verifying_key(pubkey)
            if vk is None:
                return False
            return bool(
                vk.verify_digest(
                    bytes(sig64), bytes(digest), sigdecode=self._sigdecode, allow_truncate=False
                )
            )
        except self._verify_errors:
            return False
        except TypeError:
            return False

    def normalize_pubkey(self, pubkey: bytes) -> bytes | None:
        """Return the 33-byte compressed form of a valid SEC1 point, else None."""
        vk = self._verifying_key(pubkey)
        return None if vk is None else vk.to_string("compressed")

    def __repr__(self) -> str:
        return "EcdsaBackend()"


# ---------------------------------------------------------------------------------------------
# Registry and consensus helpers
# ---------------------------------------------------------------------------------------------

#: The backend used by :func:`sign`, :func:`verify` and the key classes.
DEFAULT_BACKEND: Backend = CoincurveBackend()

_BACKENDS: dict[str, Backend] = {"coincurve": DEFAULT_BACKEND}


def get_backend(name: str = "coincurve") -> Backend:
    """Return the backend called *name* (``"coincurve"`` or ``"ecdsa"``).

    Instances are cached. Raises ValueError for an unknown name.
    """
    backend = _BACKENDS.get(name)
    if backend is None:
        if name != "ecdsa":
            raise ValueError(f"unknown ECDSA backend {name!r} (expected 'coincurve' or 'ecdsa')")
        backend = _BACKENDS.setdefault(name, EcdsaBackend())
    return backend


def sign(secret: bytes, digest: bytes) -> bytes:
    """Sign a 32-byte *digest* with the default backend (RFC 6979, low-S); 64 bytes out."""
    return DEFAULT_BACKEND.sign(secret, digest)


def verify(pubkey: bytes, sig64: bytes, digest: bytes) -> bool:
    """Consensus signature check: default backend, strict low-S. Never raises."""
    return DEFAULT_BACKEND.verify(pubkey, sig64, digest, require_low_s=True)


PUBKEY_CACHE = 65_536
"""Parsed public keys :func:`verify_cached` keeps (about 10 MB); it starts over when full."""


def verify_cached(checks: Sequence[tuple[bytes, bytes, bytes]],
                  cache: dict[bytes, object]) -> int | None:
    """Index of the first failing check in ``checks``, or None: exactly
    :func:`~o2ocli.crypto.backends.verify` on each, with parsed public keys
    kept in ``cache`` (only keys that parse are kept)."""
    for i, (pubkey, sig64, digest) in enumerate(checks):
        if (type(pubkey) is not bytes or type(sig64) is not bytes or type(digest) is not bytes
                or len(sig64) != 64 or len(digest) != 32):
            if not verify(pubkey, sig64, digest):
                return i
            continue
        pk = cache.get(pubkey)
        if pk is None:
            n = len(pubkey)
            if not ((n == 33 and pubkey[0] in (2, 3)) or (n == 65 and pubkey[0] == 4)):
                return i
            pk = _ffi_new("secp256k1_pubkey *")
            if not _pubkey_parse(_VERIFY_CTX, pk, pubkey, n):
                return i
            if len(cache) >= PUBKEY_CACHE:
                cache.clear()
            cache[pubkey] = pk
        sig = _ffi_new("secp256k1_ecdsa_signature *")
        # Fails if r or s >= n; the verify call rejects high-S and zero r/s.
        if not _sig_parse_compact(_VERIFY_CTX, sig, sig64):
            return i
        if _ecdsa_verify(_VERIFY_CTX, sig, digest, pk) != 1:
            return i
    return None

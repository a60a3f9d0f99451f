"""Passphrase encryption of wallet secrets: scrypt + AES-256-GCM, as a JSON-able dict.

An encrypted blob looks like::

    {"version": 1, "kdf": "scrypt", "n": 32768, "r": 8, "p": 1, "salt": "<16 bytes hex>",
     "cipher": "aes-256-gcm", "nonce": "<12 bytes hex>", "ciphertext": "<hex, GCM tag last>"}

The key is scrypt(NFKD(passphrase) as UTF-8, salt) and the GCM associated data is
``b"o2ocli-keystore-v1"``, so a blob made for another purpose does not decrypt here. Any
change to the salt, the scrypt parameters, the nonce or the ciphertext makes authentication
fail, which is reported as :class:`WrongPassphrase`: GCM cannot tell a wrong passphrase from a
tampered blob, and neither ever yields garbage plaintext.

A wallet without a passphrase stores ``{"version": 1, "kdf": "none", "cipher": "none",
"plaintext": "<hex>"}`` (:func:`plain_secret`); :func:`decrypt_secret` returns its contents
whatever passphrase it is given.

Primitives come from ``cryptography`` (OpenSSL). Scrypt parameters read from a file are
bounded (n <= 2**20, r <= 32, p <= 16, n*r*p <= 2**23, i.e. at most 1 GiB and a few seconds),
so a hostile file cannot make the wallet allocate gigabytes.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

__all__ = [
    "ASSOCIATED_DATA",
    "KeystoreError",
    "WrongPassphrase",
    "decrypt_secret",
    "encrypt_secret",
    "is_encrypted",
    "plain_secret",
]

VERSION = 1
#: GCM associated data: binds a blob to this use and format version.
ASSOCIATED_DATA = b"o2ocli-keystore-v1"

_SALT_LEN = 16
_NONCE_LEN = 12
_TAG_LEN = 16
_KEY_LEN = 32
_MIN_SALT_LEN = 16
_MAX_SALT_LEN = 64
_MAX_N = 2**20
_MAX_R = 32
_MAX_P = 16
_MAX_COST = 2**23  # n * r * p; scrypt needs 128 * n * r bytes, so at most 1 GiB
_HEX_RE = re.compile(r"(?:[0-9a-fA-F]{2})*", re.ASCII)


class KeystoreError(Exception):
    """Raised for a malformed or unsupported keystore blob, or invalid parameters."""


class WrongPassphrase(KeystoreError):
    """Raised when authentication fails: wrong passphrase, or a tampered blob."""

    def __init__(self, message: str = "wrong passphrase") -> None:
        super().__init__(message)


def _check_scrypt_params(n: Any, r: Any, p: Any) -> None:
    for name, value in (("n", n), ("r", r), ("p", p)):
        if type(value) is not int:
            raise KeystoreError(f"scrypt parameter {name} must be an int, got {value!r}")
    if n < 2 or n > _MAX_N or n & (n - 1):
        raise KeystoreError(f"scrypt n must be a power of two in [2, 2**20], got {n}")
    if not 1 <= r <= _MAX_R:
        raise KeystoreError(f"scrypt r must be in [1, {_MAX_R}], got {r}")
    if not 1 <= p <= _MAX_P:
        raise KeystoreError(f"scrypt p must be in [1, {_MAX_P}], got {p}")
    if n * r * p > _MAX_COST:
        raise KeystoreError(f"scrypt cost n*r*p = {n * r * p} exceeds the limit 2**23")


def _derive_key(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    if not isinstance(passphrase, str):
        raise TypeError(f"passphrase must be a str, got {type(passphrase).__name__}")
    secret = unicodedata.normalize("NFKD", passphrase).encode("utf-8")
    return Scrypt(salt=salt, length=_KEY_LEN, n=n, r=r, p=p).derive(secret)


def _check_plaintext(plaintext: bytes) -> bytes:
    if not isinstance(plaintext, bytes | bytearray | memoryview):
        raise TypeError(f"plaintext must be bytes, got {type(plaintext).__name__}")
    return bytes(plaintext)


def encrypt_secret(
    plaintext: bytes, passphrase: str, *, n: int = 2**15, r: int = 8, p: int = 1
) -> dict[str, Any]:
    """Encrypt *plaintext* under *passphrase*; return a JSON-able blob (see module docs).

    A fresh random salt and nonce are drawn every time, so two blobs of the same secret
    differ. Raises :class:`KeystoreError` for scrypt parameters outside the accepted range.
    """
    plaintext = _check_plaintext(plaintext)
    _check_scrypt_params(n, r, p)
    salt = secrets.token_bytes(_SALT_LEN)
    nonce = secrets.token_bytes(_NONCE_LEN)
    key = _derive_key(passphrase, salt, n, r, p)
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, ASSOCIATED_DATA)
    return {
        "version": VERSION,
        "kdf": "scrypt",
        "n": n,
        "r": r,
        "p": p,
        "salt": salt.hex(),
        "cipher": "aes-256-gcm",
        "nonce": nonce.hex(),
        "ciphertext": ciphertext.hex(),
    }


def plain_secret(plaintext: bytes) -> dict[str, Any]:
    """Wrap *plaintext* unencrypted, for a wallet that has no passphrase."""
    plaintext = _check_plaintext(plaintext)
    return {"version": VERSION, "kdf": "none", "cipher": "none", "plaintext": plaintext.hex()}


def _field(blob: Mapping[str, Any], name: str) -> Any:
    try:
        return blob[name]
    except KeyError:
        raise KeystoreError(f"keystore blob has no {name!r} field") from None


def _hex_field(blob: Mapping[str, Any], name: str) -> bytes:
    value = _field(blob, name)
    if not isinstance(value, str) or not _HEX_RE.fullmatch(value):
        raise KeystoreError(f"keystore field {name!r} is not an even-length hex string")
    return bytes.fromhex(value)


def is_encrypted(blob: Mapping[str, Any]) -> bool:
    """True for a scrypt/AES-GCM blob, False for a plain one.

    Raises :class:`KeystoreError` if *blob* is not a mapping, has an unknown version, or an
    unknown kdf/cipher combination.
    """
    if not isinstance(blob, Mapping):
        raise KeystoreError(f"keystore blob must be a JSON object, got {type(blob).__name__}")
    version = _field(blob, "version")
    if type(version) is not int or version != VERSION:
        raise KeystoreError(f"unsupported keystore version {version!r} (expected {VERSION})")
    kdf, cipher = _field(blob, "kdf"), _field(blob, "cipher")
    if kdf == "scrypt" and cipher == "aes-256-gcm":
        return True
    if kdf == "none" and cipher == "none":
        return False
    if kdf not in ("scrypt", "none"):
        raise KeystoreError(f"unknown keystore kdf {kdf!r}")
    if cipher not in ("aes-256-gcm", "none"):
        raise KeystoreError(f"unknown keystore cipher {cipher!r}")
    raise KeystoreError(f"keystore kdf {kdf!r} cannot be used with cipher {cipher!r}")


def decrypt_secret(blob: Mapping[str, Any], passphrase: str) -> bytes:
    """Return the secret stored in *blob*.

    Raises :class:`WrongPassphrase` when authentication fails (wrong passphrase or any
    tampering) and :class:`KeystoreError` for a malformed blob. The blob is fully checked,
    scrypt bounds included, before any key derivation runs. A plain blob is returned as is,
    whatever the passphrase.
    """
    if not is_encrypted(blob):
        return _hex_field(blob, "plaintext")
    n, r, p = _field(blob, "n"), _field(blob, "r"), _field(blob, "p")
    _check_scrypt_params(n, r, p)
    salt = _hex_field(blob, "salt")
    if not _MIN_SALT_LEN <= len(salt) <= _MAX_SALT_LEN:
        raise KeystoreError(f"keystore salt must be 16 to 64 bytes, got {len(salt)}")
    nonce = _hex_field(blob, "nonce")
    if len(nonce) != _NONCE_LEN:
        raise KeystoreError(f"keystore nonce must be {_NONCE_LEN} bytes, got {len(nonce)}")
    ciphertext = _hex_field(blob, "ciphertext")
    if len(ciphertext) < _TAG_LEN:
        raise KeystoreError("keystore ciphertext is shorter than the 16-byte GCM tag")
    key = _derive_key(passphrase, salt, n, r, p)
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, ASSOCIATED_DATA)
    except InvalidTag:
        raise WrongPassphrase() from None

"""Hierarchical deterministic keys: BIP32 extended keys.

* BIP32 derivation and (de)serialization are implemented here on top of :mod:`hmac`
  (HMAC-SHA512), ``coincurve`` (libsecp256k1 point addition for public derivation) and
  :class:`o2ocli.crypto.keys.PrivateKey`. The ``bip32`` package was evaluated and not used:
  on its own it accepts two of the sixteen invalid keys of BIP32 test vector 5 (it does not
  check that the key data matches the version bytes), and it pins ``coincurve<21``.
* BIP39 mnemonics live in :mod:`o2ocli.wallet.bip39`, the BIP44 layout and derivation
  paths in :mod:`o2ocli.wallet.hdpath`; both are re-exported here, the wallet's one HD
  entry point.

Every failure is reported as :class:`HDError` (a :class:`ValueError`).
"""

from __future__ import annotations

import hmac
from typing import Any, NoReturn

import coincurve

from o2ocli.crypto.backends import SECP256K1_N
from o2ocli.crypto.base58check import Base58Error, b58check_decode, b58check_encode
from o2ocli.crypto.hashes import hash160
from o2ocli.crypto.keys import InvalidKeyError, PrivateKey, PublicKey

from .bip39 import generate_mnemonic, mnemonic_to_seed, validate_mnemonic
from .hdpath import (
    ACCOUNT_PATH,
    CHANGE,
    COIN_TYPE,
    EXTERNAL,
    GAP_LIMIT,
    HARDENED,
    INVOICE,
    INVOICE_GAP_LIMIT,
    MAX_DEPTH,
    HDError,
    address_path,
    format_index,
    parse_path,
)

__all__ = [
    "ACCOUNT_PATH",
    "CHANGE",
    "COIN_TYPE",
    "EXTERNAL",
    "GAP_LIMIT",
    "HARDENED",
    "INVOICE",
    "INVOICE_GAP_LIMIT",
    "XPRV_VERSION",
    "XPUB_VERSION",
    "ExtendedKey",
    "HDError",
    "address_path",
    "generate_mnemonic",
    "mnemonic_to_seed",
    "parse_path",
    "validate_mnemonic",
]

#: Mainnet BIP32 version bytes (``xprv`` / ``xpub``).
XPRV_VERSION = 0x0488ADE4
XPUB_VERSION = 0x0488B21E

_N = SECP256K1_N
_MAX_INDEX = 0xFFFFFFFF
_ZERO4 = bytes(4)
_SEED_BYTES = (16, 64)  # BIP32: 128 to 512 bits
_PAYLOAD_LEN = 78
# A 78-byte payload plus checksum is 111 or 112 Base58 characters; anything much longer is
# refused before the quadratic Base58 decode runs.
_MAX_ENCODED_LEN = 128

_set = object.__setattr__


# ---------------------------------------------------------------------------------------------
# BIP32
# ---------------------------------------------------------------------------------------------


def _hmac_sha512(key: bytes, data: bytes) -> bytes:
    return hmac.digest(key, data, "sha512")


def _readonly(self: object, *_args: Any) -> NoReturn:
    raise AttributeError(f"{type(self).__name__} is immutable")


def _check_version(version: int, name: str) -> None:
    if type(version) is not int or not 0 <= version <= 0xFFFFFFFF:
        raise HDError(f"{name} must be a 32-bit unsigned int, got {version!r}")


def _as_bytes(value: object, size: int, name: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview) or len(value) != size:
        raise HDError(f"{name} must be {size} bytes")
    return bytes(value)


class ExtendedKey:
    """An immutable BIP32 extended key: a private or public-only node of the key tree.

    Fields: ``depth`` (0 for the master), ``parent_fingerprint`` (4 bytes), ``child_number``
    (hardened indexes are >= 2**31), ``chain_code`` (32 bytes), ``key`` (a
    :class:`PrivateKey`, or None for a public-only key) and ``pubkey`` (33-byte compressed).

    ``repr`` never shows the secret or the chain code.
    """

    __slots__ = (
        "depth",
        "parent_fingerprint",
        "child_number",
        "chain_code",
        "key",
        "pubkey",
        "_hash160",
        "_point",
    )
    depth: int
    parent_fingerprint: bytes
    child_number: int
    chain_code: bytes
    key: PrivateKey | None
    pubkey: bytes
    _hash160: bytes | None
    _point: coincurve.PublicKey | None

    def __init__(
        self,
        depth: int,
        parent_fingerprint: bytes,
        child_number: int,
        chain_code: bytes,
        key: PrivateKey | None,
        pubkey: bytes | None = None,
    ) -> None:
        """Build a key from its fields, validating each one (raises :class:`HDError`).

        *pubkey* may be omitted when *key* is given; if both are given they must match.
        """
        if type(depth) is not int or not 0 <= depth <= MAX_DEPTH:
            raise HDError(f"depth must be an int in [0, {MAX_DEPTH}], got {depth!r}")
        parent_fingerprint = _as_bytes(parent_fingerprint, 4, "parent_fingerprint")
        if type(child_number) is not int or not 0 <= child_number <= _MAX_INDEX:
            raise HDError(f"child_number must be an int in [0, 2**32), got {child_number!r}")
        chain_code = _as_bytes(chain_code, 32, "chain_code")
        if depth == 0 and (parent_fingerprint != _ZERO4 or child_number != 0):
            raise HDError("a depth-0 key must have a zero parent fingerprint and child number")
        if key is not None and not isinstance(key, PrivateKey):
            raise HDError(f"key must be a PrivateKey or None, got {type(key).__name__}")
        if pubkey is not None:
            pubkey = _as_bytes(pubkey, 33, "pubkey")
            try:
                PublicKey(pubkey)
            except InvalidKeyError as exc:
                raise HDError(f"invalid pubkey: {exc}") from None
            if key is not None and key.public_key.to_bytes() != pubkey:
                raise HDError("pubkey does not match the private key")
        elif key is not None:
            pubkey = key.public_key.to_bytes()
        else:
            raise HDError("an extended key needs a private key or a public key")
        self._init(depth, parent_fingerprint, child_number, chain_code, key, pubkey)

    def _init(
        self,
        depth: int,
        parent_fingerprint: bytes,
        child_number: int,
        chain_code: bytes,
        key: PrivateKey | None,
        pubkey: bytes,
    ) -> None:
        _set(self, "depth", depth)
        _set(self, "parent_fingerprint", parent_fingerprint)
        _set(self, "child_number", child_number)
        _set(self, "chain_code", chain_code)
        _set(self, "key", key)
        _set(self, "pubkey", pubkey)
        _set(self, "_hash160", None)
        _set(self, "_point", None)

    @classmethod
    def _new(
        cls,
        depth: int,
        parent_fingerprint: bytes,
        child_number: int,
        chain_code: bytes,
        key: PrivateKey | None,
        pubkey: bytes,
    ) -> ExtendedKey:
        """Build from fields already known to be valid (internal, no checks)."""
        obj = object.__new__(cls)
        obj._init(depth, parent_fingerprint, child_number, chain_code, key, pubkey)
        return obj

    __setattr__ = _readonly
    __delattr__ = _readonly

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_seed(cls, seed: bytes) -> ExtendedKey:
        """Master key of a 16- to 64-byte seed: HMAC-SHA512(key=b"Bitcoin seed", seed)."""
        if not isinstance(seed, bytes | bytearray | memoryview):
            raise HDError(f"seed must be bytes, got {type(seed).__name__}")
        seed = bytes(seed)
        if not _SEED_BYTES[0] <= len(seed) <= _SEED_BYTES[1]:
            raise HDError(f"seed must be 16 to 64 bytes, got {len(seed)}")
        digest = _hmac_sha512(b"Bitcoin seed", seed)
        try:
            key = PrivateKey(digest[:32])
        except InvalidKeyError:  # probability below 2**-127
            raise HDError("this seed gives an invalid master key; use another seed") from None
        return cls._new(0, _ZERO4, 0, digest[32:], key, key.public_key.to_bytes())

    @classmethod
    def parse(
        cls,
        text: str,
        *,
        xprv_version: int = XPRV_VERSION,
        xpub_version: int = XPUB_VERSION,
    ) -> ExtendedKey:
        """Parse a Base58Check ``xprv``/``xpub`` string (mainnet versions by default).

        Beyond the checksum it checks the payload length, the version, that the key data
        matches the version (``00 || secret`` for a private key, ``02``/``03`` point for a
        public one), the secret range [1, n-1], that the point is on the curve, and that a
        depth-0 key has a zero parent fingerprint and child number.
        """
        _check_version(xprv_version, "xprv_version")
        _check_version(xpub_version, "xpub_version")
        if xprv_version == xpub_version:
            raise HDError("xprv_version and xpub_version must differ")
        if not isinstance(text, str):
            raise HDError(f"extended key must be a str, got {type(text).__name__}")
        if not text:
            raise HDError("extended key is empty")
        if len(text) > _MAX_ENCODED_LEN:
            raise HDError(f"extended key is too long ({len(text)} characters)")
        try:
            payload = b58check_decode(text)
        except Base58Error as exc:
            raise HDError(f"invalid extended key: {exc}") from None
        if len(payload) != _PAYLOAD_LEN:
            raise HDError(f"extended key payload must be 78 bytes, got {len(payload)}")

        version = int.from_bytes(payload[0:4], "big")
        depth = payload[4]
        parent_fingerprint = payload[5:9]
        child_number = int.from_bytes(payload[9:13], "big")
        chain_code = payload[13:45]
        key_data = payload[45:78]

        if version == xprv_version:
            private = True
        elif version == xpub_version:
            private = False
        else:
            raise HDError(f"unknown extended key version 0x{version:08x}")
        if depth == 0 and parent_fingerprint != _ZERO4:
            raise HDError("zero depth with non-zero parent fingerprint")
        if depth == 0 and child_number != 0:
            raise HDError("zero depth with non-zero child number")

        prefix = key_data[0]
        key: PrivateKey | None
        if private:
            if prefix in (2, 3):
                raise HDError("version / key data mismatch: xprv version with public key data")
            if prefix != 0:
                raise HDError(f"invalid private key prefix 0x{prefix:02x} (expected 0x00)")
            try:
                key = PrivateKey(key_data[1:])
            except InvalidKeyError:
                raise HDError("private key is not in 1..n-1") from None
            pubkey = key.public_key.to_bytes()
        else:
            if prefix == 0:
                raise HDError("version / key data mismatch: xpub version with private key data")
            if prefix not in (2, 3):
                raise HDError(f"invalid public key prefix 0x{prefix:02x} (expected 0x02/0x03)")
            try:
                PublicKey(key_data)
            except InvalidKeyError:
                raise HDError("public key is not a point on secp256k1") from None
            key = None
            pubkey = key_data
        return cls._new(depth, parent_fingerprint, child_number, chain_code, key, pubkey)

    # -- derivation --------------------------------------------------------------------------

    def derive(self, index: int) -> ExtendedKey:
        """Return child *index* (hardened when ``index >= 2**31``).

        A public-only key derives only non-hardened children (public derivation). Raises
        :class:`HDError` for a hardened index from a public-only key, an index outside
        [0, 2**32), depth 255, or the (probability < 2**-127) invalid child, in which case
        BIP32 says to use the next index.
        """
        if type(index) is not int or not 0 <= index <= _MAX_INDEX:
            raise HDError(f"child index must be an int in [0, 2**32), got {index!r}")
        if self.depth >= MAX_DEPTH:
            raise HDError(f"cannot derive below depth {MAX_DEPTH}")
        key = self.key
        suffix = index.to_bytes(4, "big")
        if index >= HARDENED:
            if key is None:
                raise HDError(
                    f"cannot derive hardened child {format_index(index)} from a public key"
                )
            digest = _hmac_sha512(self.chain_code, b"\x00" + key.secret + suffix)
        else:
            digest = _hmac_sha512(self.chain_code, self.pubkey + suffix)
        tweak = digest[:32]
        tweak_int = int.from_bytes(tweak, "big")
        if tweak_int >= _N:
            raise self._invalid_child(index)
        child_key: PrivateKey | None
        if key is not None:
            secret = (tweak_int + int.from_bytes(key.secret, "big")) % _N
            if secret == 0:
                raise self._invalid_child(index)
            child_key = PrivateKey(secret.to_bytes(32, "big"))
            child_pub = child_key.public_key.to_bytes()
        else:
            child_key = None
            point = self._point
            if point is None:
                point = coincurve.PublicKey(self.pubkey)
                _set(self, "_point", point)
            try:
                child_pub = point.add(tweak).format()
            except ValueError:  # the sum is the point at infinity
                raise self._invalid_child(index) from None
        return ExtendedKey._new(
            self.depth + 1, self.fingerprint, index, digest[32:], child_key, child_pub
        )

    @staticmethod
    def _invalid_child(index: int) -> HDError:
        return HDError(f"child {format_index(index)} is invalid (BIP32: use the next index)")

    def derive_path(self, path: str) -> ExtendedKey:
        """Derive along *path* (see :func:`parse_path`), starting from this key.

        ``m`` stands for the key this is called on, so ``account.derive_path("m/0/5")`` works
        from an account key too. The whole path is checked before anything is derived.
        """
        node = self
        for index in parse_path(path):
            node = node.derive(index)
        return node

    def neuter(self) -> ExtendedKey:
        """Return the public-only version of this key (itself if already public-only)."""
        if self.key is None:
            return self
        obj = ExtendedKey._new(
            self.depth,
            self.parent_fingerprint,
            self.child_number,
            self.chain_code,
            None,
            self.pubkey,
        )
        _set(obj, "_hash160", self._hash160)
        return obj

    # -- encoding ----------------------------------------------------------------------------

    def serialize(
        self,
        private: bool = True,
        *,
        xprv_version: int = XPRV_VERSION,
        xpub_version: int = XPUB_VERSION,
    ) -> str:
        """Return the 111-character Base58Check ``xprv`` (or ``xpub`` if not *private*).

        Raises :class:`HDError` when asked for the private form of a public-only key.
        """
        if private:
            if self.key is None:
                raise HDError("a public-only key has no xprv; use serialize(private=False)")
            _check_version(xprv_version, "xprv_version")
            version = xprv_version
            key_data = b"\x00" + self.key.secret
        else:
            _check_version(xpub_version, "xpub_version")
            version = xpub_version
            key_data = self.pubkey
        payload = b"".join(
            (
                version.to_bytes(4, "big"),
                bytes((self.depth,)),
                self.parent_fingerprint,
                self.child_number.to_bytes(4, "big"),
                self.chain_code,
                key_data,
            )
        )
        return b58check_encode(payload)

    @property
    def pubkey_hash(self) -> bytes:
        """HASH160 of the 33-byte compressed public key (20 bytes)."""
        value = self._hash160
        if value is None:
            value = hash160(self.pubkey)
            _set(self, "_hash160", value)
        return value

    @property
    def fingerprint(self) -> bytes:
        """This key's fingerprint: the first 4 bytes of :attr:`pubkey_hash`."""
        return self.pubkey_hash[:4]

    # -- dunder ------------------------------------------------------------------------------

    def _fields(self) -> tuple[int, bytes, int, bytes, bytes]:
        return (
            self.depth,
            self.parent_fingerprint,
            self.child_number,
            self.chain_code,
            self.pubkey,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ExtendedKey):
            return NotImplemented
        return self._fields() == other._fields() and self.key == other.key

    def __hash__(self) -> int:
        return hash((ExtendedKey, *self._fields(), self.key is not None))

    def __repr__(self) -> str:
        return (
            f"ExtendedKey(depth={self.depth}, child_number={format_index(self.child_number)}, "
            f"parent_fingerprint={self.parent_fingerprint.hex()}, "
            f"fingerprint={self.fingerprint.hex()}, private={self.key is not None})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            ExtendedKey,
            (
                self.depth,
                self.parent_fingerprint,
                self.child_number,
                self.chain_code,
                self.key,
                self.pubkey,
            ),
        )

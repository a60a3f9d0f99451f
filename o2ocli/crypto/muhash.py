"""MuHash3072: a multiset hash (the UTXO set commitment, :mod:`o2ocli.storage.utxocommit`).

The construction is Bitcoin Core's (``src/crypto/muhash.cpp``, used by its
``coinstatsindex``), written here with Python integers:

* an element (any byte string) maps to a number: ``SHA-256(element)`` is a
  ChaCha20 key (RFC 8439, 96-bit nonce 0, block counter 0); the first 384
  bytes of its keystream, read little-endian, are a number below 2**3072,
  taken modulo the prime ``P = 2**3072 - 1103717``;
* a set is the product of its elements' numbers modulo ``P``.  Adding an
  element multiplies the *numerator* by its number, removing one multiplies
  the *denominator*; only :meth:`MuHash3072.digest` divides (one modular
  inverse), so a long run of updates costs multiplications only;
* the digest is ``SHA-256`` of ``numerator / denominator mod P`` as 384
  little-endian bytes.

The product does not depend on the order of the updates, and removing an
element cancels adding it, so two sets with the same elements have the same
digest however they were built.  The state (:meth:`MuHash3072.to_bytes`) is
Core's serialisation: numerator ‖ denominator, 384 little-endian bytes each.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

__all__ = ["MODULUS", "NUM_BYTES", "MuHash3072", "element_number"]

MODULUS = (1 << 3072) - 1103717
"""The prime 2**3072 - 1103717 (the largest 3072-bit safe prime)."""

NUM_BYTES = 384
"""Bytes of one number (3072 bits)."""

_ZERO_KEYSTREAM = bytes(NUM_BYTES)
_ZERO_NONCE = bytes(16)  # cryptography's ChaCha20 nonce: counter u32 LE ‖ 96-bit nonce
_MASK = (1 << 3072) - 1
_C = 1103717  # MODULUS = 2**3072 - _C


def _reduce(x: int) -> int:
    """``x mod MODULUS`` for 0 ≤ x < 2**6144 (2**3072 ≡ _C, so fold the high half)."""
    while x >> 3072:
        x = (x & _MASK) + (x >> 3072) * _C
    return x - MODULUS if x >= MODULUS else x


def element_number(element: bytes) -> int:
    """The number (mod :data:`MODULUS`) an element maps to."""
    key = hashlib.sha256(element).digest()
    encryptor = Cipher(algorithms.ChaCha20(key, _ZERO_NONCE), mode=None).encryptor()
    stream = encryptor.update(_ZERO_KEYSTREAM)
    return _reduce(int.from_bytes(stream, "little"))


def _product(numbers: list[int]) -> int:
    """Product of ``numbers`` mod :data:`MODULUS` (pairwise, to keep operands even)."""
    if not numbers:
        return 1
    while len(numbers) > 1:
        paired = [_reduce(a * b) for a, b in zip(numbers[::2], numbers[1::2], strict=False)]
        if len(numbers) % 2:
            paired.append(numbers[-1])
        numbers = paired
    return numbers[0]


class MuHash3072:
    """A MuHash3072 accumulator (numerator / denominator mod :data:`MODULUS`)."""

    __slots__ = ("numerator", "denominator")

    def __init__(self, numerator: int = 1, denominator: int = 1) -> None:
        self.numerator = numerator
        self.denominator = denominator

    def insert(self, element: bytes) -> MuHash3072:
        """Add ``element`` to the set; returns self."""
        self.numerator = _reduce(self.numerator * element_number(element))
        return self

    def remove(self, element: bytes) -> MuHash3072:
        """Remove ``element`` from the set; returns self."""
        self.denominator = _reduce(self.denominator * element_number(element))
        return self

    def update(self, added: list[bytes], removed: list[bytes]) -> MuHash3072:
        """Add every element of ``added`` and remove every one of ``removed``."""
        if added:
            num = _product([element_number(e) for e in added])
            self.numerator = _reduce(self.numerator * num)
        if removed:
            den = _product([element_number(e) for e in removed])
            self.denominator = _reduce(self.denominator * den)
        return self

    def combine(self, other: MuHash3072) -> MuHash3072:
        """Add every element of ``other``'s set (and remove its removals); returns self."""
        self.numerator = _reduce(self.numerator * other.numerator)
        self.denominator = _reduce(self.denominator * other.denominator)
        return self

    def value(self) -> int:
        """``numerator / denominator mod P`` (one modular inverse)."""
        return _reduce(self.numerator * pow(self.denominator, -1, MODULUS))

    def digest(self) -> bytes:
        """The 32-byte hash of the set (SHA-256 of :meth:`value`, 384 bytes LE)."""
        return hashlib.sha256(self.value().to_bytes(NUM_BYTES, "little")).digest()

    def to_bytes(self) -> bytes:
        """numerator ‖ denominator, 384 little-endian bytes each (Core's serialisation)."""
        return (self.numerator.to_bytes(NUM_BYTES, "little")
                + self.denominator.to_bytes(NUM_BYTES, "little"))

    @classmethod
    def from_bytes(cls, data: bytes) -> MuHash3072:
        """Inverse of :meth:`to_bytes` (values ≥ ``P`` are reduced, as in Core)."""
        if len(data) != 2 * NUM_BYTES:
            raise ValueError(f"a MuHash3072 state is {2 * NUM_BYTES} bytes, not {len(data)}")
        return cls(_reduce(int.from_bytes(data[:NUM_BYTES], "little")),
                   _reduce(int.from_bytes(data[NUM_BYTES:], "little")))

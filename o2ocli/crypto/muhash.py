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

Speed (it runs for every coin a block creates or spends): the keystream comes
from pycryptodome's ChaCha20 C functions without a cipher object per key
(``cryptography`` otherwise), the products use GMP through gmpy2 (Python ints
otherwise: the same numbers), and a reduction modulo ``P`` folds the high part
in (``2**3072 ≡ 1103717``) instead of dividing.

The product does not depend on the order of the updates, and removing an
element cancels adding it, so two sets with the same elements have the same
digest however they were built.  The state (:meth:`MuHash3072.to_bytes`) is
Core's serialisation: numerator ‖ denominator, 384 little-endian bytes each.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterable

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

try:  # GMP arithmetic: the same numbers, several times faster than Python ints at 3072 bits
    import gmpy2
except ImportError:  # pragma: no cover - gmpy2 is an install requirement
    gmpy2 = None

__all__ = ["MODULUS", "NUM_BYTES", "MuHash3072", "RecentNumbers", "element_number", "products"]

MODULUS = (1 << 3072) - 1103717
"""The prime 2**3072 - 1103717 (the largest 3072-bit safe prime)."""

NUM_BYTES = 384
"""Bytes of one number (3072 bits)."""

_ZERO_KEYSTREAM = bytes(NUM_BYTES)
_ZERO_NONCE = bytes(16)  # cryptography's ChaCha20 nonce: counter u32 LE ‖ 96-bit nonce
_MASK = (1 << 3072) - 1
_C = 1103717  # MODULUS = 2**3072 - _C
_GMP_POSITIVE = b"\x01\x01"  # gmpy2.to_binary header of a positive mpz (LE magnitude follows)

Numbers = Callable[[Iterable[bytes]], list[int]]
"""A function from elements to their numbers (below 2**3072, not reduced)."""


def _reduce(x: int) -> int:
    """``x mod MODULUS`` for any x ≥ 0 (2**3072 ≡ _C, so fold the high part in)."""
    while x >> 3072:
        x = (x & _MASK) + (x >> 3072) * _C
    return x - MODULUS if x >= MODULUS else x


def _key_number_cryptography(key: bytes) -> int:
    """The first 384 bytes of ChaCha20(key, nonce 0, counter 0) as a
    little-endian number (not reduced), through ``cryptography`` (a cipher
    context per key: several microseconds, most of an element's cost)."""
    stream = Cipher(algorithms.ChaCha20(key, _ZERO_NONCE), mode=None).encryptor().update(
        _ZERO_KEYSTREAM)
    if gmpy2 is not None:
        return gmpy2.mpz.from_bytes(stream, "little")
    return int.from_bytes(stream, "little")


def _numbers_cryptography(elements: Iterable[bytes]) -> list[int]:
    """The numbers of ``elements`` (not reduced), through ``cryptography``."""
    sha256 = hashlib.sha256
    return [_key_number_cryptography(sha256(element).digest()) for element in elements]


def _numbers_raw() -> Numbers | None:
    """:func:`_numbers_cryptography` through pycryptodome's ChaCha20 C
    functions called directly (no Python cipher object per key), the
    keystream written behind a gmpy2 header so it is read as an mpz without
    a conversion; or None when this pycryptodome does not offer them through
    cffi, or a probe disagrees (tests check the paths agree)."""
    try:
        from Crypto.Cipher import ChaCha20
        from Crypto.Util import _raw_api

        if _raw_api.backend != "cffi":
            return None  # pragma: no cover - pycryptodome without cffi
        lib = ChaCha20._raw_chacha20_lib
        ffi = _raw_api.ffi
        init, encrypt, destroy = lib.chacha20_init, lib.chacha20_encrypt, lib.chacha20_destroy
        new = ffi.new
        buffer = ffi.buffer
    except Exception:  # pragma: no cover - another pycryptodome layout
        return None
    nonce = bytes(12)
    if gmpy2 is not None:
        from_binary = gmpy2.from_binary
    else:

        def from_binary(data: bytes) -> int:
            return int.from_bytes(data[2:], "little")

    def numbers(elements: Iterable[bytes]) -> list[int]:
        # Buffers per call: cffi releases the GIL in C calls, so two threads
        # (a connect and a verify-utxo scan) must not share them.
        state_ptr = new("void **")
        out = new("uint8_t[]", 2 + NUM_BYTES)
        out[0:2] = _GMP_POSITIVE
        stream_ptr = out + 2
        out_bytes = buffer(out)
        sha256, zeros, size = hashlib.sha256, _ZERO_KEYSTREAM, NUM_BYTES
        result = []
        for element in elements:
            key = sha256(element).digest()
            if init(state_ptr, key, 32, nonce, 12):
                result.append(_key_number_cryptography(key))  # pragma: no cover - C error
                continue
            state = state_ptr[0]
            failed = encrypt(state, zeros, stream_ptr, size)
            destroy(state)
            if failed:
                result.append(_key_number_cryptography(key))  # pragma: no cover - C error
            else:
                result.append(from_binary(out_bytes[:]))
        return result

    try:
        probes = [b"", bytes(range(100))]
        if numbers(probes) != _numbers_cryptography(probes):
            return None  # pragma: no cover - a pycryptodome that differs
    except Exception:  # pragma: no cover - another pycryptodome layout
        return None
    return numbers


_numbers: Numbers = _numbers_raw() or _numbers_cryptography


def element_number(element: bytes) -> int:
    """The number (mod :data:`MODULUS`) an element maps to."""
    return int(_reduce(_numbers([element])[0]))


class RecentNumbers:
    """The numbers of the last ``capacity`` elements added, so removing one of
    them soon after (a coin spent a few blocks after it was created) skips
    its SHA-256 and ChaCha20.  A number is a function of the element's bytes
    alone, so a hit is always right; an entry leaves when it is used or when
    ``capacity`` newer ones push it out (about 0.6 kB each)."""

    __slots__ = ("capacity", "_numbers")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._numbers: OrderedDict[bytes, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._numbers)

    def clear(self) -> None:
        """Forget every number."""
        self._numbers.clear()


def _product(elements: Iterable[bytes], start: int = 1, recent: RecentNumbers | None = None,
             *, keep: bool = False) -> int:
    """``start`` times the numbers of ``elements``, mod :data:`MODULUS`;
    with ``recent``, the numbers are remembered there (``keep``) or taken
    from there when it has them.

    One multiplication per element, each followed by two folds of the high
    part (``2**3072 ≡ _C``) instead of a division: with ``acc < 2**3073`` and
    a number ``< 2**3072`` the product is below ``2**6145``, the first fold
    leaves less than ``2**3095`` and the second less than ``2**3072 + 2**44``,
    so ``acc`` stays below ``2**3073`` (a number need not be reduced first);
    one full :func:`_reduce` at the end."""
    if recent is None:
        numbers = _numbers(elements)
    elif keep:
        elements = list(elements)
        numbers = _numbers(elements)
        kept = recent._numbers
        kept.update(zip(elements, numbers, strict=True))
        while len(kept) > recent.capacity:
            kept.popitem(last=False)
    else:
        take = recent._numbers.pop
        numbers, missing = [], []
        for element in elements:
            x = take(element, None)
            if x is None:
                missing.append(element)
            else:
                numbers.append(x)
        numbers += _numbers(missing)
    c = _C
    if gmpy2 is not None:
        # One GMP call splits high and low part (f_divmod_2exp: floor
        # quotient and remainder by 2**3072): 1.5 instead of 2.1 µs a number.
        split = gmpy2.f_divmod_2exp
        acc = gmpy2.mpz(start)
        for x in numbers:
            high, low = split(acc * x, 3072)
            high, low = split(low + high * c, 3072)
            acc = low + high * c
        return int(_reduce(acc))
    mask = _MASK
    acc = start
    for x in numbers:
        acc *= x
        acc = (acc & mask) + (acc >> 3072) * c
        acc = (acc & mask) + (acc >> 3072) * c
    return int(_reduce(acc))


def products(added: list[bytes], removed: list[bytes],
             recent: RecentNumbers | None = None) -> tuple[int, int]:
    """The products (mod :data:`MODULUS`) of the numbers of ``added`` and of
    ``removed``, as :meth:`MuHash3072.update` uses them (with ``recent`` alike);
    what a signature worker computes for a block (:mod:`.sigworker`)."""
    removed_product = _product(removed, 1, recent) if removed else 1
    added_product = _product(added, 1, recent, keep=True) if added else 1
    return added_product, removed_product


class MuHash3072:
    """A MuHash3072 accumulator (numerator / denominator mod :data:`MODULUS`)."""

    __slots__ = ("numerator", "denominator")

    def __init__(self, numerator: int = 1, denominator: int = 1) -> None:
        self.numerator = numerator
        self.denominator = denominator

    def insert(self, element: bytes) -> MuHash3072:
        """Add ``element`` to the set; returns self."""
        self.numerator = _product([element], self.numerator)
        return self

    def remove(self, element: bytes) -> MuHash3072:
        """Remove ``element`` from the set; returns self."""
        self.denominator = _product([element], self.denominator)
        return self

    def update(self, added: list[bytes], removed: list[bytes],
               recent: RecentNumbers | None = None) -> MuHash3072:
        """Add every element of ``added`` and remove every one of ``removed``
        (with ``recent``: remember the added elements' numbers there, and
        reuse the removed ones' found there)."""
        if removed:
            self.denominator = _product(removed, self.denominator, recent)
        if added:
            self.numerator = _product(added, self.numerator, recent, keep=True)
        return self

    def update_products(self, added_product: int, removed_product: int) -> MuHash3072:
        """:meth:`update` given the products of the added and the removed
        elements' numbers (:func:`products`, computed elsewhere)."""
        if removed_product != 1:
            self.denominator = _reduce(self.denominator * removed_product)
        if added_product != 1:
            self.numerator = _reduce(self.numerator * added_product)
        return self

    def combine(self, other: MuHash3072) -> MuHash3072:
        """Add every element of ``other``'s set (and remove its removals); returns self."""
        self.numerator = _reduce(self.numerator * other.numerator)
        self.denominator = _reduce(self.denominator * other.denominator)
        return self

    def value(self) -> int:
        """``numerator / denominator mod P`` (one modular inverse)."""
        if gmpy2 is not None:
            inverse = gmpy2.invert(self.denominator, MODULUS)
            return int(gmpy2.mpz(self.numerator) * inverse % MODULUS)
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

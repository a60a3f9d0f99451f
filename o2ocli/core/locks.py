"""Output locks: who may spend an output.

A lock is a *tagged union*: one tag byte followed by the body of that type.
Later features add new tags; existing encodings never change.

=====  ==================  ==========================================
tag    type                body
=====  ==================  ==========================================
0x01   :class:`PayToAddress`  20-byte HASH160 of a compressed public key
0x02   :class:`Multisig`      u8 ``m``, u8 ``n``, ``n`` × 20-byte HASH160,
                              strictly ascending (so one set has one encoding)
0x03   :class:`Escrow`        20-byte payer ‖ u8 ``k`` ‖ ``k`` × (20-byte payee ‖
                              u16 basis points) ‖ u8 has-arbiter ‖ [20-byte
                              arbiter] ‖ u32 timeout height
=====  ==================  ==========================================

Every lock is expressed in terms of *addresses* (pubkey hashes).  A spend
reveals ``(pubkey, signature)`` pairs in the input's witness; the consensus
rule for the lock type (:mod:`o2ocli.consensus.locks`) decides whether the
pairs satisfy it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .encoding import DecodeError, Reader, Writer
from .limits import MAX_MULTISIG_KEYS

__all__ = [
    "Lock",
    "PayToAddress",
    "Multisig",
    "Escrow",
    "encode_lock",
    "decode_lock",
    "lock_bytes",
    "LOCK_TYPES",
    "MAX_ESCROW_PAYEES",
    "BPS_TOTAL",
]

HASH160_SIZE = 20
MAX_ESCROW_PAYEES = 8
BPS_TOTAL = 10_000
"""Escrow shares are in basis points and add up to this."""


@dataclass(frozen=True, slots=True)
class PayToAddress:
    """Spendable by one signature from the key whose HASH160 is ``pubkey_hash``."""

    TAG: ClassVar[int] = 0x01
    pubkey_hash: bytes
    """HASH160 of the owner's 33-byte compressed public key."""

    def __post_init__(self) -> None:
        if not isinstance(self.pubkey_hash, bytes) or len(self.pubkey_hash) != HASH160_SIZE:
            raise ValueError("pubkey_hash must be 20 bytes")

    def addresses(self) -> tuple[bytes, ...]:
        """The pubkey hashes this lock involves (for the address index)."""
        return (self.pubkey_hash,)

    def _encode_body(self, w: Writer) -> None:
        w.raw(self.pubkey_hash)

    @classmethod
    def _decode_body(cls, r: Reader) -> PayToAddress:
        return cls(r.raw(HASH160_SIZE, "pay-to-address hash"))


@dataclass(frozen=True, slots=True)
class Multisig:
    """Spendable by ``m`` signatures from distinct keys among ``pubkey_hashes``."""

    TAG: ClassVar[int] = 0x02
    m: int
    """Number of signatures required (1 ≤ m ≤ n)."""
    pubkey_hashes: tuple[bytes, ...]
    """The ``n`` (≤ 15) authorised pubkey hashes, strictly ascending."""

    def __post_init__(self) -> None:
        n = len(self.pubkey_hashes)
        if not 1 <= n <= MAX_MULTISIG_KEYS:
            raise ValueError(f"multisig needs 1..{MAX_MULTISIG_KEYS} keys, got {n}")
        if not 1 <= self.m <= n:
            raise ValueError(f"multisig m must be within 1..{n}, got {self.m}")
        for h in self.pubkey_hashes:
            if not isinstance(h, bytes) or len(h) != HASH160_SIZE:
                raise ValueError("multisig pubkey hashes must be 20 bytes each")
        if any(a >= b for a, b in zip(self.pubkey_hashes, self.pubkey_hashes[1:], strict=False)):
            raise ValueError("multisig pubkey hashes must be strictly ascending")

    @classmethod
    def of(cls, m: int, pubkey_hashes: list[bytes] | tuple[bytes, ...]) -> Multisig:
        """Build a multisig lock from hashes in any order (sorted, duplicates refused)."""
        ordered = tuple(sorted(pubkey_hashes))
        return cls(m, ordered)

    def addresses(self) -> tuple[bytes, ...]:
        """The pubkey hashes this lock involves (for the address index)."""
        return self.pubkey_hashes

    def _encode_body(self, w: Writer) -> None:
        w.u8(self.m)
        w.u8(len(self.pubkey_hashes))
        for h in self.pubkey_hashes:
            w.raw(h)

    @classmethod
    def _decode_body(cls, r: Reader) -> Multisig:
        m = r.u8("multisig m")
        n = r.u8("multisig n")
        if not 1 <= n <= MAX_MULTISIG_KEYS:
            raise DecodeError(f"multisig n out of range: {n}")
        if not 1 <= m <= n:
            raise DecodeError(f"multisig m out of range: {m} of {n}")
        hashes = tuple(r.raw(HASH160_SIZE, "multisig key hash") for _ in range(n))
        if any(a >= b for a, b in zip(hashes, hashes[1:], strict=False)):
            raise DecodeError("multisig key hashes must be strictly ascending")
        return cls(m, hashes)


@dataclass(frozen=True, slots=True)
class Escrow:
    """Money held for a service: the payer releases it to the payees (split by
    shares), the payees refund it, the payer reclaims it after ``timeout``, or
    the arbiter rules with one party.  The spending rules are in
    :mod:`o2ocli.consensus.escrow`."""

    TAG: ClassVar[int] = 0x03
    payer: bytes
    """Pubkey hash of the customer who funds the escrow."""
    payees: tuple[tuple[bytes, int], ...]
    """(pubkey hash, share in basis points) of each payee; shares add up to 10,000."""
    arbiter: bytes | None
    """Pubkey hash of the arbiter, or None."""
    timeout: int
    """From this height on, the payer alone may take the money back."""

    def __post_init__(self) -> None:
        if not isinstance(self.payer, bytes) or len(self.payer) != HASH160_SIZE:
            raise ValueError("escrow payer must be 20 bytes")
        if not 1 <= len(self.payees) <= MAX_ESCROW_PAYEES:
            raise ValueError(f"escrow needs 1..{MAX_ESCROW_PAYEES} payees")
        seen = {self.payer}
        for pkh, bps in self.payees:
            if not isinstance(pkh, bytes) or len(pkh) != HASH160_SIZE:
                raise ValueError("escrow payee must be 20 bytes")
            if not 1 <= bps <= BPS_TOTAL:
                raise ValueError("escrow share must be 1..10000 basis points")
            if pkh in seen:
                raise ValueError("escrow parties must be distinct")
            seen.add(pkh)
        if sum(bps for _, bps in self.payees) != BPS_TOTAL:
            raise ValueError("escrow shares must add up to 10000 basis points")
        if self.arbiter is not None:
            if not isinstance(self.arbiter, bytes) or len(self.arbiter) != HASH160_SIZE:
                raise ValueError("escrow arbiter must be 20 bytes")
            if self.arbiter in seen:
                raise ValueError("escrow parties must be distinct")
        if not 0 <= self.timeout <= 0xFFFF_FFFF:
            raise ValueError("escrow timeout out of range")

    def addresses(self) -> tuple[bytes, ...]:
        """Every party (payer, payees, arbiter): each sees the escrow in its history."""
        parties = (self.payer, *(pkh for pkh, _ in self.payees))
        return parties + ((self.arbiter,) if self.arbiter is not None else ())

    def _encode_body(self, w: Writer) -> None:
        w.raw(self.payer)
        w.u8(len(self.payees))
        for pkh, bps in self.payees:
            w.raw(pkh)
            w.u16(bps)
        if self.arbiter is None:
            w.u8(0)
        else:
            w.u8(1)
            w.raw(self.arbiter)
        w.u32(self.timeout)

    @classmethod
    def _decode_body(cls, r: Reader) -> Escrow:
        payer = r.raw(HASH160_SIZE, "escrow payer")
        k = r.u8("escrow payee count")
        if not 1 <= k <= MAX_ESCROW_PAYEES:
            raise DecodeError(f"escrow payee count out of range: {k}")
        payees = tuple((r.raw(HASH160_SIZE, "escrow payee"), r.u16("escrow share"))
                       for _ in range(k))
        flag = r.u8("escrow arbiter flag")
        if flag > 1:
            raise DecodeError("escrow arbiter flag must be 0 or 1")
        arbiter = r.raw(HASH160_SIZE, "escrow arbiter") if flag else None
        timeout = r.u32("escrow timeout")
        try:
            return cls(payer, payees, arbiter, timeout)
        except ValueError as exc:
            raise DecodeError(f"invalid escrow lock: {exc}") from None


Lock = PayToAddress | Multisig | Escrow
LOCK_TYPES: dict[int, type] = {
    PayToAddress.TAG: PayToAddress,
    Multisig.TAG: Multisig,
    Escrow.TAG: Escrow,
}


def encode_lock(lock: Lock, w: Writer) -> None:
    """Append the tagged encoding of ``lock``."""
    w.u8(lock.TAG)
    lock._encode_body(w)


def lock_bytes(lock: Lock) -> bytes:
    """The tagged encoding of ``lock`` on its own."""
    w = Writer()
    encode_lock(lock, w)
    return w.getvalue()


def decode_lock(r: Reader) -> Lock:
    """Read one tagged lock; unknown tags are a :class:`DecodeError`."""
    tag = r.u8("lock tag")
    cls = LOCK_TYPES.get(tag)
    if cls is None:
        raise DecodeError(f"unknown lock type 0x{tag:02x}")
    return cls._decode_body(r)

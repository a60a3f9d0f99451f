"""Finality votes and equivocation evidence (pure data and encodings).

A validator votes for a *link* between two blocks of one branch, Casper FFG
style: a justified ``source`` block and a later ``target`` block that descends
from it.  Every block height is a checkpoint.

Byte layout::

    Vote     := signer_pubkey:33
                source_height:u32 source_hash:32
                target_height:u32 target_hash:32
                signature:64                          (169 bytes)
    Evidence := Vote Vote                             (338 bytes)

* The signed digest is ``SHA-256d(var_bytes("o2o/vote/v1") ‖
  var_bytes(chain_id) ‖ source_height ‖ source_hash ‖ target_height ‖
  target_hash)`` (the vote encoding without pubkey and signature): a vote is
  bound to its network.
* The signer is HASH160 of ``signer_pubkey``.
* ``vote id = SHA-256d(vote encoding)``; ``evidence id = SHA-256d(evidence
  encoding)``.  An evidence's two votes are stored in ascending vote-id order
  so one equivocation has one encoding.

Whether two votes conflict is a consensus rule
(:func:`o2ocli.consensus.finality.votes_conflict`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from o2ocli.crypto.hashes import hash160, sha256d

from .encoding import MAX_U32, DecodeError, Reader, Writer, domain_preimage
from .tx import PUBKEY_SIZE, SIGNATURE_SIZE

__all__ = ["VOTE_TAG", "VOTE_SIZE", "FinalityVote", "Evidence", "vote_digest"]

VOTE_TAG = b"o2o/vote/v1"
VOTE_SIZE = PUBKEY_SIZE + 4 + 32 + 4 + 32 + SIGNATURE_SIZE


def _link_bytes(source_height: int, source_hash: bytes, target_height: int,
                target_hash: bytes) -> bytes:
    w = Writer()
    w.u32(source_height)
    w.raw(source_hash)
    w.u32(target_height)
    w.raw(target_hash)
    return w.getvalue()


def vote_digest(chain_id: str, source_height: int, source_hash: bytes, target_height: int,
                target_hash: bytes) -> bytes:
    """The digest a validator signs to vote for the link source → target."""
    return sha256d(domain_preimage(
        VOTE_TAG, chain_id, _link_bytes(source_height, source_hash, target_height, target_hash)))


@dataclass(frozen=True, slots=True)
class FinalityVote:
    """One signed vote for the link ``source → target``."""

    signer_pubkey: bytes
    """Compressed public key of the voting validator."""
    source_height: int
    """Height of the justified block the link starts from."""
    source_hash: bytes
    """Hash of that block."""
    target_height: int
    """Height of the block voted for."""
    target_hash: bytes
    """Hash of that block."""
    signature: bytes = bytes(SIGNATURE_SIZE)
    """64-byte low-S signature over :meth:`digest`."""
    _id: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.signer_pubkey) != PUBKEY_SIZE:
            raise ValueError("signer pubkey must be 33 bytes")
        if len(self.source_hash) != 32 or len(self.target_hash) != 32:
            raise ValueError("vote hashes must be 32 bytes")
        if not (0 <= self.source_height <= MAX_U32 and 0 <= self.target_height <= MAX_U32):
            raise ValueError("vote height out of range")
        if len(self.signature) != SIGNATURE_SIZE:
            raise ValueError("signature must be 64 bytes")

    @property
    def signer(self) -> bytes:
        """The voting validator's address (HASH160 of its pubkey)."""
        return hash160(self.signer_pubkey)

    def digest(self, chain_id: str) -> bytes:
        """What the signature covers."""
        return vote_digest(chain_id, self.source_height, self.source_hash,
                           self.target_height, self.target_hash)

    def to_bytes(self) -> bytes:
        """The 169-byte encoding."""
        return (self.signer_pubkey
                + _link_bytes(self.source_height, self.source_hash, self.target_height,
                              self.target_hash)
                + self.signature)

    def encode(self, w: Writer) -> None:
        """Append the encoding to ``w``."""
        w.raw(self.to_bytes())

    @property
    def id(self) -> bytes:
        """SHA-256d of the encoding."""
        cached = self._id
        if cached is None:
            cached = sha256d(self.to_bytes())
            object.__setattr__(self, "_id", cached)
        return cached

    @classmethod
    def decode(cls, r: Reader) -> FinalityVote:
        """Read one vote."""
        pubkey = r.raw(PUBKEY_SIZE, "vote pubkey")
        source_height = r.u32("vote source height")
        source_hash = r.raw(32, "vote source hash")
        target_height = r.u32("vote target height")
        target_hash = r.raw(32, "vote target hash")
        signature = r.raw(SIGNATURE_SIZE, "vote signature")
        return cls(pubkey, source_height, source_hash, target_height, target_hash, signature)

    @classmethod
    def from_bytes(cls, data: bytes) -> FinalityVote:
        """Decode exactly one vote."""
        r = Reader(data)
        vote = cls.decode(r)
        r.finish("vote")
        return vote

    def short(self) -> str:
        """``source_height→target_height target_hash[:16]`` for logs."""
        return f"{self.source_height}→{self.target_height} {self.target_hash.hex()[:16]}"


@dataclass(frozen=True, slots=True)
class Evidence:
    """Two votes by one key that the finality rules call conflicting."""

    first: FinalityVote
    """The vote with the smaller id."""
    second: FinalityVote
    """The vote with the larger id."""

    @classmethod
    def of(cls, a: FinalityVote, b: FinalityVote) -> Evidence:
        """The canonical evidence for the pair ``a``, ``b`` (any order)."""
        return cls(a, b) if a.id < b.id else cls(b, a)

    @property
    def signer(self) -> bytes:
        """The accused validator's address (of the first vote's key)."""
        return self.first.signer

    def to_bytes(self) -> bytes:
        """The two votes' encodings."""
        return self.first.to_bytes() + self.second.to_bytes()

    def encode(self, w: Writer) -> None:
        """Append the encoding to ``w``."""
        w.raw(self.to_bytes())

    @property
    def id(self) -> bytes:
        """SHA-256d of the encoding."""
        return sha256d(self.to_bytes())

    @classmethod
    def decode(cls, r: Reader) -> Evidence:
        """Read one evidence; its votes must be in canonical order."""
        first = FinalityVote.decode(r)
        second = FinalityVote.decode(r)
        if not first.id < second.id:
            raise DecodeError("evidence votes are not in ascending id order")
        return cls(first, second)

    @classmethod
    def from_bytes(cls, data: bytes) -> Evidence:
        """Decode exactly one evidence."""
        r = Reader(data)
        ev = cls.decode(r)
        r.finish("evidence")
        return ev

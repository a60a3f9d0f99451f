"""Block headers, blocks and the transaction merkle root.

Byte layout::

    Header := version:u32  height:u32  prev_hash:32  merkle_root:32
              time:u64  difficulty:u32
              vote_kind:u8 [vote_address:20 if vote_kind != 0]
              n_checkpoint:varint { validator:20 } * n_checkpoint
              -- end of the *unsealed* encoding (signed by the validator) --
              seal_pubkey:33  seal_signature:64
    Block  := Header  n_tx:varint  { Tx } * n_tx
              [ n_vote:varint { Vote } * n_vote
                n_evidence:varint { Evidence } * n_evidence ]   (version 2 only)

* ``block hash = SHA-256d(full header encoding)`` (seal included).
* ``seal hash = SHA-256d(var_bytes("o2o/seal/v1") ‖ var_bytes(chain_id) ‖
  unsealed header encoding)``: what the sealing validator signs.
* ``vote_kind``: 0 = no vote, 1 = propose adding ``vote_address`` to the
  validator set, 2 = propose removing it (Clique's beneficiary and nonce).
* ``checkpoint`` lists the validator set (ascending) on epoch blocks and is
  empty otherwise.
* The genesis header carries an all-zero seal.
* Version 2 blocks also carry finality votes and equivocation evidence (see
  :mod:`o2ocli.core.finality`); their header's merkle root commits to both:
  ``SHA-256d(0x02 ‖ tx_root ‖ merkle_root(vote ids) ‖ merkle_root(evidence ids))``
  where ``tx_root`` is the version 1 root below.

Merkle root (:func:`merkle_root`) of a block: the leaves are the *wtxids*
(SHA-256d of each transaction's full encoding, witnesses included, see
:func:`tx_merkle_root`), so the block hash commits to every signature: nobody
can relay a copy of a block with a corrupted witness under the same hash.
Leaves and nodes are domain-separated (RFC 6962 style)::

    leaf(txid)   = SHA-256d(0x00 ‖ txid)
    node(l, r)   = SHA-256d(0x01 ‖ l ‖ r)
    root([])     = 32 zero bytes
    root([x])    = leaf(x)
    root(L)      = node(root(L[:k]), root(L[k:]))   for n > 1 leaves, where
                   k is the largest power of two below n

The tree is never padded by duplicating a leaf, and because leaves and inner
nodes hash different prefixes, a transaction whose encoding happens to look
like an inner node (``0x01 ‖ a ‖ b``) cannot stand for two transactions: two
different transaction lists cannot share a root without a SHA-256 collision
(the CVE-2012-2459 family of attacks does not apply).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from o2ocli.crypto.hashes import sha256d
from o2ocli.crypto.merkle import merkle_root

from .encoding import MAX_U32, MAX_U64, DecodeError, Reader, Writer, domain_preimage
from .finality import Evidence, FinalityVote
from .limits import (
    MAX_BLOCK_BYTES,
    MAX_BLOCK_EVIDENCE,
    MAX_BLOCK_TXS,
    MAX_BLOCK_VOTES,
    MAX_CHECKPOINT_VALIDATORS,
)
from .tx import PUBKEY_SIZE, SIGNATURE_SIZE, Tx

__all__ = [
    "BlockHeader",
    "Block",
    "merkle_root",
    "tx_merkle_root",
    "VOTE_NONE",
    "VOTE_ADD",
    "VOTE_REMOVE",
    "SEAL_TAG",
    "BLOCK_VERSION",
    "BLOCK_VERSION_VOTES",
    "block_commitment",
]

BLOCK_VERSION = 1
BLOCK_VERSION_VOTES = 2
"""Blocks of this version carry finality votes and evidence after their txs."""
VOTE_NONE, VOTE_ADD, VOTE_REMOVE = 0, 1, 2
SEAL_TAG = b"o2o/seal/v1"
NO_ADDRESS = bytes(20)


def tx_merkle_root(txs: Sequence[Tx]) -> bytes:
    """The merkle root a block header carries: over the transactions' *wtxids*
    (hash of the full encoding, witnesses included), so the block hash commits
    to every signature and a block cannot be altered without changing its hash."""
    return merkle_root([tx.wtxid for tx in txs])


def block_commitment(version: int, txs: Sequence[Tx], votes: Sequence[FinalityVote] = (),
                     evidence: Sequence[Evidence] = ()) -> bytes:
    """What a header of ``version`` carries as its merkle root."""
    return _commitment(version, tx_merkle_root(txs), votes, evidence)


def _commitment(version: int, root: bytes, votes: Sequence[FinalityVote],
                evidence: Sequence[Evidence]) -> bytes:
    """:func:`block_commitment` from the transactions' root."""
    if version < BLOCK_VERSION_VOTES:
        return root
    return sha256d(b"\x02" + root + merkle_root([v.id for v in votes])
                   + merkle_root([e.id for e in evidence]))


@dataclass(frozen=True, slots=True)
class BlockHeader:
    """An immutable block header."""

    height: int
    """Height of this block (genesis = 0)."""
    prev_hash: bytes
    """Hash of the parent header (all zero for genesis)."""
    merkle_root: bytes
    """Merkle root of the block's txids."""
    time: int
    """Unix time in seconds, chosen by the sealer."""
    difficulty: int = 0
    """PoA weight: 2 in turn, 1 out of turn (0 only in genesis)."""
    vote_kind: int = VOTE_NONE
    """0 none, 1 add, 2 remove."""
    vote_address: bytes = NO_ADDRESS
    """The validator address voted on (all zero when ``vote_kind`` is 0)."""
    checkpoint: tuple[bytes, ...] = ()
    """The validator set, ascending, on epoch blocks; empty otherwise."""
    seal_pubkey: bytes = bytes(PUBKEY_SIZE)
    """Sealing validator's compressed public key."""
    seal_signature: bytes = bytes(SIGNATURE_SIZE)
    """Validator's signature over :meth:`seal_hash`."""
    version: int = BLOCK_VERSION
    """Header format version."""
    _unsealed: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _hash: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.height <= MAX_U32:
            raise ValueError("height out of range")
        if not 0 <= self.time <= MAX_U64:
            raise ValueError("time out of range")
        if not 0 <= self.difficulty <= MAX_U32:
            raise ValueError("difficulty out of range")
        if self.vote_kind not in (VOTE_NONE, VOTE_ADD, VOTE_REMOVE):
            raise ValueError("unknown vote kind")
        if len(self.vote_address) != 20:
            raise ValueError("vote address must be 20 bytes")
        if self.vote_kind == VOTE_NONE and self.vote_address != NO_ADDRESS:
            raise ValueError("a header without a vote must carry the zero address")
        if len(self.prev_hash) != 32 or len(self.merkle_root) != 32:
            raise ValueError("prev_hash and merkle_root must be 32 bytes")
        if len(self.seal_pubkey) != PUBKEY_SIZE or len(self.seal_signature) != SIGNATURE_SIZE:
            raise ValueError("seal must be a 33-byte pubkey and a 64-byte signature")
        if len(self.checkpoint) > MAX_CHECKPOINT_VALIDATORS:
            raise ValueError("checkpoint too long")
        if any(len(a) != 20 for a in self.checkpoint):
            raise ValueError("checkpoint addresses must be 20 bytes")

    def unsealed_bytes(self) -> bytes:
        """The header encoding without the seal."""
        cached = self._unsealed
        if cached is None:
            w = Writer()
            w.u32(self.version)
            w.u32(self.height)
            w.raw(self.prev_hash)
            w.raw(self.merkle_root)
            w.u64(self.time)
            w.u32(self.difficulty)
            w.u8(self.vote_kind)
            if self.vote_kind != VOTE_NONE:
                w.raw(self.vote_address)
            w.varint(len(self.checkpoint))
            for address in self.checkpoint:
                w.raw(address)
            cached = w.getvalue()
            object.__setattr__(self, "_unsealed", cached)
        return cached

    def to_bytes(self) -> bytes:
        """Full header encoding (with seal)."""
        return self.unsealed_bytes() + self.seal_pubkey + self.seal_signature

    def encode(self, w: Writer) -> None:
        """Append the full header encoding."""
        w.raw(self.to_bytes())

    @classmethod
    def decode(cls, r: Reader) -> BlockHeader:
        """Read one header from ``r``."""
        start = r.pos
        version = r.u32("header version")
        height = r.u32("height")
        prev_hash = r.raw(32, "prev_hash")
        root = r.raw(32, "merkle_root")
        time = r.u64("time")
        difficulty = r.u32("difficulty")
        vote_kind = r.u8("vote kind")
        if vote_kind == VOTE_NONE:
            vote_address = NO_ADDRESS
        elif vote_kind in (VOTE_ADD, VOTE_REMOVE):
            vote_address = r.raw(20, "vote address")
        else:
            raise DecodeError(f"unknown vote kind {vote_kind}")
        n = r.count("checkpoint validator", MAX_CHECKPOINT_VALIDATORS)
        checkpoint = tuple(r.raw(20, "checkpoint validator") for _ in range(n))
        unsealed_end = r.pos
        seal_pubkey = r.raw(PUBKEY_SIZE, "seal pubkey")
        seal_signature = r.raw(SIGNATURE_SIZE, "seal signature")
        header = cls(
            height,
            prev_hash,
            root,
            time,
            difficulty,
            vote_kind,
            vote_address,
            checkpoint,
            seal_pubkey,
            seal_signature,
            version,
        )
        object.__setattr__(header, "_unsealed", r.slice(start, unsealed_end))
        return header

    @classmethod
    def from_bytes(cls, data: bytes) -> BlockHeader:
        """Decode exactly one header."""
        r = Reader(data)
        header = cls.decode(r)
        r.finish("header")
        return header

    @property
    def hash(self) -> bytes:
        """SHA-256d of the full header encoding."""
        cached = self._hash
        if cached is None:
            cached = sha256d(self.to_bytes())
            object.__setattr__(self, "_hash", cached)
        return cached

    def seal_hash(self, chain_id: str) -> bytes:
        """The digest the sealing validator signs."""
        return sha256d(domain_preimage(SEAL_TAG, chain_id, self.unsealed_bytes()))


@dataclass(frozen=True, slots=True)
class Block:
    """A header and its transactions."""

    header: BlockHeader
    """The block header."""
    txs: tuple[Tx, ...]
    """Transactions in block order (a fee claim, if any, first)."""
    votes: tuple[FinalityVote, ...] = ()
    """Finality votes carried (version 2 blocks only)."""
    evidence: tuple[Evidence, ...] = ()
    """Equivocation evidence carried (version 2 blocks only)."""
    _size: int | None = field(default=None, init=False, repr=False, compare=False)
    _raw: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _tx_root: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _ids_asked: bool = field(default=False, init=False, repr=False, compare=False)
    _commitment: bytes | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def hash(self) -> bytes:
        """The header hash."""
        return self.header.hash

    @property
    def height(self) -> int:
        """The header's height."""
        return self.header.height

    def to_bytes(self) -> bytes:
        """Full canonical encoding (cached)."""
        cached = self._raw
        if cached is None:
            w = Writer()
            self.header.encode(w)
            w.varint(len(self.txs))
            for tx in self.txs:
                tx.encode(w)
            if self.header.version >= BLOCK_VERSION_VOTES:
                w.varint(len(self.votes))
                for vote in self.votes:
                    vote.encode(w)
                w.varint(len(self.evidence))
                for ev in self.evidence:
                    ev.encode(w)
            elif self.votes or self.evidence:
                raise ValueError("only version 2 blocks carry votes or evidence")
            cached = w.getvalue()
            object.__setattr__(self, "_raw", cached)
        return cached

    @property
    def size(self) -> int:
        """Length of the full encoding in bytes."""
        cached = self._size
        if cached is None:
            cached = len(self.to_bytes())
            object.__setattr__(self, "_size", cached)
        return cached

    def compute_merkle_root(self) -> bytes:
        """The merkle root this block's header must carry (see
        :func:`block_commitment`); computed once per block object (a block is
        immutable, and a received one is checked by the chain manager and
        again by the chainstate)."""
        cached = self._commitment
        if cached is None:
            root = self._tx_root
            if root is None:
                root = tx_merkle_root(self.txs)
            cached = _commitment(self.header.version, root, self.votes, self.evidence)
            object.__setattr__(self, "_commitment", cached)
        return cached

    def id_parts(self) -> list[tuple[bytes, int]]:
        """Each transaction's full encoding and the length of its stripped
        encoding (which the full one begins with): what
        :func:`o2ocli.crypto.merkle.block_ids` hashes (a worker, ahead)."""
        return [(tx.to_bytes(), len(tx.stripped_bytes())) for tx in self.txs]

    def id_parts_once(self) -> list[tuple[bytes, int]] | None:
        """:meth:`id_parts` the first time it is asked of this block object
        while its ids are unknown; None after that (they are being hashed
        ahead, or known)."""
        if self._ids_asked or self._tx_root is not None:
            return None
        object.__setattr__(self, "_ids_asked", True)
        return self.id_parts()

    def adopt_ids(self, ids: tuple[bytes, bytes, bytes]) -> None:
        """Take the ``(txids, wtxids, root)`` that
        :func:`~o2ocli.crypto.merkle.block_ids` computed from :meth:`id_parts`
        (in a worker process), so they are not hashed again here.  The values
        are what :attr:`Tx.txid`, :attr:`Tx.wtxid` and :func:`tx_merkle_root`
        compute from the same bytes; ids of the wrong length are ignored."""
        txids, wtxids, root = ids
        n = len(self.txs)
        if len(txids) != 32 * n or len(wtxids) != 32 * n or len(root) != 32:
            return
        for i, tx in enumerate(self.txs):
            tx.adopt_ids(txids[32 * i : 32 * i + 32], wtxids[32 * i : 32 * i + 32])
        if self._tx_root is None:
            object.__setattr__(self, "_tx_root", root)

    @classmethod
    def from_bytes(cls, data: bytes) -> Block:
        """Decode exactly one block; trailing bytes are an error."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise DecodeError(f"expected bytes, got {type(data).__name__}")
        if len(data) > MAX_BLOCK_BYTES:
            raise DecodeError(f"block too large: {len(data)} bytes")
        r = Reader(data)
        header = BlockHeader.decode(r)
        n = r.count("transaction", MAX_BLOCK_TXS)
        txs = tuple(Tx.decode(r) for _ in range(n))
        votes: tuple[FinalityVote, ...] = ()
        evidence: tuple[Evidence, ...] = ()
        if header.version >= BLOCK_VERSION_VOTES:
            votes = tuple(FinalityVote.decode(r)
                          for _ in range(r.count("vote", MAX_BLOCK_VOTES)))
            evidence = tuple(Evidence.decode(r)
                             for _ in range(r.count("evidence", MAX_BLOCK_EVIDENCE)))
        r.finish("block")
        block = cls(header, txs, votes, evidence)
        object.__setattr__(block, "_size", len(data))
        object.__setattr__(block, "_raw", bytes(data))
        return block

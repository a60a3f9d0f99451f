"""Proof of authority: Clique (EIP-225) rules adapted to our header, plus
EIP-3436 fork choice and the reorganisation bound.  Finality itself comes
from signed votes (:mod:`o2ocli.consensus.finality`): a seal is not a vote.

All functions are pure: the snapshot of the validator set, the parent header
and the current time are passed in.

Vocabulary
----------
* **validators**: the authorised sealers, kept sorted by address bytes.
* **snapshot**: the validator set, the recent sealers and the pending votes
  *after* a given block.  The snapshot after block ``n`` decides who may seal
  block ``n + 1``.
* **signer limit**: ``floor(N/2) + 1``.  A validator that sealed one of the
  last ``limit - 1`` blocks may not seal the next one, so it seals at most one
  block in any ``limit`` consecutive blocks.
* **in turn**: validator ``validators[height % N]`` seals block ``height``
  with difficulty 2; any other authorised validator may seal it out of turn
  with difficulty 1 (the node waits an extra random delay before doing so).

Rules checked for a header (:func:`validate_header`):

1. time ≥ parent time + period, and at most ``max_future`` seconds ahead of
   the caller's clock;
2. on epoch blocks (``height % epoch == 0``) no vote, and the checkpoint lists
   exactly the current validators; elsewhere no checkpoint list;
3. the seal is a valid signature, over the seal hash, by the key in
   ``seal_pubkey``, whose HASH160 is the signer;
4. the signer is a validator and has not sealed recently;
5. the difficulty is 2 in turn, 1 out of turn.

Votes (:meth:`Snapshot.apply`) follow go-ethereum's ``Snapshot.apply``
semantics, checked against the EIP-225 test table: one live vote per signer
per target, votes only count when meaningful (add a non-validator, remove a
validator), a strict majority (``> N/2``) applies the change, epoch blocks
clear pending votes, and a removed validator's own votes are discarded.
Two bounds beyond Clique keep every snapshot storable and every epoch block
makeable: the set never grows past :data:`MAX_VALIDATORS` (an add vote on a
full set is ignored), and a validator has at most
:data:`MAX_PENDING_VOTES_PER_SIGNER` live votes (further ones are ignored).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from o2ocli.core.block import VOTE_ADD, VOTE_NONE, VOTE_REMOVE, BlockHeader
from o2ocli.core.encoding import Reader, Writer
from o2ocli.core.limits import MAX_CHECKPOINT_VALIDATORS
from o2ocli.crypto.backends import verify as ecdsa_verify
from o2ocli.crypto.hashes import hash160
from o2ocli.crypto.keys import PrivateKey

from .block import check_header_version
from .errors import BlockInvalid

__all__ = [
    "DIFF_IN_TURN",
    "DIFF_NO_TURN",
    "PoAParams",
    "Vote",
    "Snapshot",
    "signer_limit",
    "seal_signer",
    "seal_header",
    "check_header_time",
    "check_checkpoint",
    "check_difficulty",
    "validate_header",
    "ForkChoiceKey",
    "fork_choice_key",
    "prefer_chain",
    "check_reorg_depth",
]

DIFF_IN_TURN = 2
DIFF_NO_TURN = 1
MAX_VALIDATORS = MAX_CHECKPOINT_VALIDATORS
"""Largest validator set: an epoch block must list the whole set in its header."""
MAX_PENDING_VOTES_PER_SIGNER = 32
"""Live votes one validator may have pending; further votes are ignored until
some of its proposals pass or the epoch clears them.  Bounds the snapshot size."""


@dataclass(frozen=True, slots=True)
class PoAParams:
    """PoA numbers from the chain spec."""

    chain_id: str
    """Committed to by the seal hash."""
    period: int
    """Minimum seconds between a block and its parent."""
    epoch: int
    """Blocks per epoch: votes are cleared and the set is checkpointed every ``epoch`` blocks."""
    max_future: int = 15
    """How many seconds ahead of the local clock a header's time may be."""


def signer_limit(n_validators: int) -> int:
    """``floor(N/2) + 1``: the size of the window in which a validator seals at
    most once."""
    return n_validators // 2 + 1


@dataclass(frozen=True, slots=True)
class Vote:
    """A pending vote cast by a validator in a header."""

    signer: bytes
    """Who voted (sealer of the block carrying the vote)."""
    address: bytes
    """Whom the vote is about."""
    authorize: bool
    """True to add ``address``, False to remove it."""
    height: int
    """Height of the block carrying the vote."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The validator-set state after block ``height``."""

    height: int
    """Height of the block this snapshot follows."""
    validators: tuple[bytes, ...]
    """Authorised validator addresses, ascending."""
    recents: tuple[tuple[int, bytes], ...] = ()
    """(height, signer) of the recent blocks within the signer limit, ascending."""
    votes: tuple[Vote, ...] = ()
    """Pending votes in the order they were cast."""

    @classmethod
    def genesis(cls, validators: Sequence[bytes]) -> Snapshot:
        """The snapshot after the genesis block (its checkpoint list)."""
        if not validators:
            raise ValueError("a chain needs at least one validator")
        if len(set(validators)) != len(validators):
            raise ValueError("duplicate validator address")
        return cls(0, tuple(sorted(validators)))

    # -- queries ------------------------------------------------------------
    def limit(self) -> int:
        """The signer limit for the current set."""
        return signer_limit(len(self.validators))

    def in_turn(self, height: int) -> bytes:
        """The validator whose turn it is to seal block ``height``."""
        return self.validators[height % len(self.validators)]

    def is_validator(self, address: bytes) -> bool:
        """True if ``address`` may seal."""
        return address in self.validators

    def recently_signed(self, address: bytes) -> bool:
        """True if ``address`` sealed a block still inside the recency window."""
        return any(signer == address for _, signer in self.recents)

    def tally(self) -> dict[bytes, tuple[bool, int]]:
        """address → (authorize, number of live votes), derived from :attr:`votes`."""
        result: dict[bytes, tuple[bool, int]] = {}
        for vote in self.votes:
            direction, count = result.get(vote.address, (vote.authorize, 0))
            if direction == vote.authorize:
                result[vote.address] = (direction, count + 1)
        return result

    # -- transition -----------------------------------------------------------
    def apply(
        self, height: int, signer: bytes, vote_kind: int, vote_address: bytes, epoch: int
    ) -> Snapshot:
        """The snapshot after a block at ``height`` sealed by ``signer`` carrying
        the given vote.  Raises :class:`BlockInvalid` (``bad-poa-unauthorized``,
        ``bad-poa-recently-signed``) if the signer may not seal it."""
        if height != self.height + 1:
            raise ValueError(f"snapshot is at {self.height}, cannot apply block {height}")
        validators = list(self.validators)
        votes = [] if height % epoch == 0 else list(self.votes)
        limit = signer_limit(len(validators))
        recents = [(h, s) for h, s in self.recents if h > height - limit]
        if signer not in validators:
            raise BlockInvalid("bad-poa-unauthorized", "block sealed by a non-validator")
        if any(s == signer for _, s in recents):
            raise BlockInvalid("bad-poa-recently-signed", "validator sealed too recently")
        recents.append((height, signer))

        if vote_kind != VOTE_NONE:
            authorize = vote_kind == VOTE_ADD
            target = vote_address
            # One live vote per signer and target: a new vote replaces the old one.
            votes = [v for v in votes if not (v.signer == signer and v.address == target)]
            meaningful = (target in validators) != authorize
            room = not authorize or len(validators) < MAX_VALIDATORS
            mine = sum(1 for v in votes if v.signer == signer)
            if meaningful and room and mine < MAX_PENDING_VOTES_PER_SIGNER:
                votes.append(Vote(signer, target, authorize, height))
            # Every live vote about a target points the same way (membership has
            # not changed since they were cast), so the tally is their number.
            # It is checked even when this vote was not counted: a proposal that
            # gained a majority because the set shrank passes on its next vote.
            about = [v for v in votes if v.address == target]
            full = about and about[0].authorize and len(validators) >= MAX_VALIDATORS
            if len(about) > len(validators) // 2 and not full:
                if about[0].authorize:
                    validators.append(target)
                    validators.sort()
                else:
                    validators.remove(target)
                    shrunk_limit = signer_limit(len(validators))
                    recents = [(h, s) for h, s in recents if h > height - shrunk_limit]
                    votes = [v for v in votes if v.signer != target]
                votes = [v for v in votes if v.address != target]
        return Snapshot(height, tuple(validators), tuple(recents), tuple(votes))

    # -- storage ------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """Compact encoding for the node's snapshot store."""
        w = Writer()
        w.u32(self.height)
        w.varint(len(self.validators))
        for v in self.validators:
            w.raw(v)
        w.varint(len(self.recents))
        for h, s in self.recents:
            w.u32(h)
            w.raw(s)
        w.varint(len(self.votes))
        for vote in self.votes:
            w.raw(vote.signer)
            w.raw(vote.address)
            w.u8(1 if vote.authorize else 0)
            w.u32(vote.height)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Snapshot:
        """Inverse of :meth:`to_bytes`."""
        r = Reader(data)
        height = r.u32("snapshot height")
        n_validators = r.count("validator", MAX_VALIDATORS)
        validators = tuple(r.raw(20, "validator") for _ in range(n_validators))
        recents = tuple(
            (r.u32("recent height"), r.raw(20, "recent signer"))
            for _ in range(r.count("recent", 1024))
        )
        votes = tuple(
            Vote(r.raw(20, "vote signer"), r.raw(20, "vote address"), r.u8("vote") == 1,
                 r.u32("vote height"))
            for _ in range(r.count("vote", MAX_VALIDATORS * MAX_PENDING_VOTES_PER_SIGNER))
        )
        r.finish("snapshot")
        return cls(height, validators, recents, votes)


# ---------------------------------------------------------------------------
# Seals
# ---------------------------------------------------------------------------


def seal_signer(header: BlockHeader, chain_id: str) -> bytes:
    """Rule: the seal is a valid low-S signature over the header's seal hash by
    ``seal_pubkey``.  Returns the signer's address (HASH160 of the pubkey)."""
    if not ecdsa_verify(header.seal_pubkey, header.seal_signature, header.seal_hash(chain_id)):
        raise BlockInvalid("bad-poa-seal", "block seal signature does not verify")
    return hash160(header.seal_pubkey)


def seal_header(header: BlockHeader, key: PrivateKey, chain_id: str) -> BlockHeader:
    """``header`` sealed by ``key`` (deterministic: RFC 6979)."""
    signature = key.sign(header.seal_hash(chain_id))
    return BlockHeader(
        header.height,
        header.prev_hash,
        header.merkle_root,
        header.time,
        header.difficulty,
        header.vote_kind,
        header.vote_address,
        header.checkpoint,
        key.public_key.to_bytes(),
        signature,
        header.version,
    )


# ---------------------------------------------------------------------------
# Header rules
# ---------------------------------------------------------------------------


def check_header_time(
    header: BlockHeader, parent: BlockHeader, params: PoAParams, now: int
) -> None:
    """Rule: a block comes at least ``period`` seconds after its parent and at
    most ``max_future`` seconds after ``now`` (the validating node's clock)."""
    if header.time < parent.time + params.period:
        raise BlockInvalid(
            "bad-poa-time-too-early",
            f"block time {header.time} is less than parent time + period "
            f"({parent.time} + {params.period})",
        )
    if header.time > now + params.max_future:
        raise BlockInvalid(
            "bad-poa-time-future", f"block time {header.time} is in the future (now {now})"
        )


def check_checkpoint(header: BlockHeader, snapshot: Snapshot, params: PoAParams) -> None:
    """Rule: an epoch block carries no vote and lists exactly the current
    validators (ascending); any other block lists none."""
    if header.height % params.epoch == 0:
        if header.vote_kind != VOTE_NONE:
            raise BlockInvalid("bad-poa-checkpoint-vote", "epoch blocks may not carry a vote")
        if header.checkpoint != snapshot.validators:
            raise BlockInvalid(
                "bad-poa-checkpoint", "epoch block does not list the current validator set"
            )
    elif header.checkpoint:
        raise BlockInvalid("bad-poa-checkpoint", "only epoch blocks may list validators")


def check_difficulty(header: BlockHeader, signer: bytes, snapshot: Snapshot) -> None:
    """Rule: difficulty is 2 when the signer is in turn for this height, else 1."""
    expected = DIFF_IN_TURN if snapshot.in_turn(header.height) == signer else DIFF_NO_TURN
    if header.difficulty != expected:
        raise BlockInvalid(
            "bad-poa-difficulty", f"difficulty {header.difficulty}, expected {expected}"
        )


def validate_header(
    header: BlockHeader,
    parent: BlockHeader,
    snapshot: Snapshot,
    params: PoAParams,
    now: int,
) -> Snapshot:
    """All PoA rules for ``header`` on ``parent`` (``snapshot`` is the one after
    the parent).  Returns the snapshot after ``header``."""
    if snapshot.height != parent.height or header.height != parent.height + 1:
        raise BlockInvalid("bad-blk-height", "header does not follow its parent")
    check_header_version(header)
    if header.vote_kind not in (VOTE_NONE, VOTE_ADD, VOTE_REMOVE):
        raise BlockInvalid("bad-poa-vote", "unknown vote kind")
    check_header_time(header, parent, params, now)
    check_checkpoint(header, snapshot, params)
    signer = seal_signer(header, params.chain_id)
    new_snapshot = snapshot.apply(
        header.height, signer, header.vote_kind, header.vote_address, params.epoch
    )
    check_difficulty(header, signer, snapshot)
    return new_snapshot


# ---------------------------------------------------------------------------
# Fork choice and finality
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ForkChoiceKey:
    """What the fork choice compares about a chain head."""

    total_difficulty: int
    """Sum of difficulties from genesis."""
    height: int
    """Head height."""
    signer_index: int
    """Index of the head's sealer in the (sorted) validator set that authorised it."""
    validator_count: int
    """Size of that validator set."""
    hash: bytes
    """Head hash."""


def fork_choice_key(head: ForkChoiceKey) -> tuple[int, int, int, int]:
    """Sort key, smallest is best (EIP-3436): most total difficulty, then lowest
    height, then the head whose in-turn slot is least recent
    (``(height - signer_index) % validator_count``, smallest), then lowest hash
    read as an unsigned 256-bit integer."""
    recency = (head.height - head.signer_index) % max(head.validator_count, 1)
    return (-head.total_difficulty, head.height, recency, int.from_bytes(head.hash, "big"))


def prefer_chain(candidate: ForkChoiceKey, current: ForkChoiceKey) -> bool:
    """Rule: switch to ``candidate`` only if it sorts strictly before ``current``."""
    return fork_choice_key(candidate) < fork_choice_key(current)


def check_reorg_depth(fork_height: int, finalized: int) -> None:
    """Rule: never reorganise below the finalized height: a competing branch
    must fork at or above it."""
    if fork_height < finalized:
        raise BlockInvalid(
            "bad-fork-below-finalized",
            f"branch forks at height {fork_height}, below the finalized height {finalized}",
        )

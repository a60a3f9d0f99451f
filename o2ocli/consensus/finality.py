"""The finality gadget: Casper FFG over every block, with binding signed votes.

All functions are pure: the branch (height → hash), the validator sets and the
votes are passed in.

Vocabulary
----------
* **vote**: a validator's signature on a *link* ``source → target`` between
  two blocks of one branch (:class:`~o2ocli.core.finality.FinalityVote`).
  Every block is a checkpoint.
* **quorum** for a target at height ``h``: ``ceil(2N/3)`` of the ``N``
  validators in force at ``h`` (the set that may seal block ``h``).
* **justified**: genesis is justified; a block is justified when a quorum
  voted for links to it from one justified source on its branch.
* **finalized**: genesis is finalized; a justified block ``s`` is finalized
  when a quorum voted for the link ``s → s+1`` (its child on the branch).
  Everything below a finalized block is final too.

The two rules a validator must never break (each breach is *evidence*, a pair
of signed votes any node can check, :func:`votes_conflict`):

1. **no double vote**: two different votes for the same target height;
2. **no surround vote**: ``s1 < s2 < t2 < t1`` for votes ``(s1, t1)``, ``(s2, t2)``.

Accountable safety (Casper FFG, Buterin & Griffith 2017): if two conflicting
blocks are finalized, the two quorums behind them overlap in at least
``2·ceil(2N/3) − N ≥ 1`` validators, and each validator in the overlap signed
two votes that break rule 1 or 2.  So conflicting finality needs provable
misbehaviour.  An honest validator keeps both rules by voting with
non-decreasing source heights and strictly increasing target heights, and by
persisting its last vote before sending it (:func:`check_own_vote`).

On a branch (what a block's votes are checked against, :func:`count_vote`)
each validator's counted votes must also be monotone in that sense: so one
branch never counts two conflicting votes of one key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from o2ocli.core.encoding import Reader, Writer
from o2ocli.core.finality import Evidence, FinalityVote
from o2ocli.crypto.backends import verify as ecdsa_verify

from .errors import BlockInvalid

__all__ = [
    "quorum",
    "FinalityState",
    "votes_conflict",
    "check_vote_signature",
    "check_vote_order",
    "check_vote_target",
    "check_vote_source",
    "check_vote_source_justified",
    "check_vote_not_stale",
    "check_vote_signer",
    "check_vote_monotone",
    "count_vote",
    "check_evidence",
    "check_evidence_accused",
    "apply_block_finality",
    "check_own_vote",
    "MAX_LINKS",
]

BranchLookup = Callable[[int], "bytes | None"]
"""height → hash of the block at that height on the branch (None above it)."""
ValidatorsAt = Callable[[int], "Sequence[bytes]"]
"""height → the validator set that may seal the block at that height."""

MAX_LINKS = 256
"""Links (source, target) a state keeps above its finalized block; the oldest
targets are dropped first.  Only reached if finality stalls for hundreds of
blocks (honest validators vote for their tip, so the links that can still
reach a quorum are the newest); votes for dropped links are simply counted
again if they come back.  Likewise at most this many justified blocks above
the finalized one are kept (the lowest dropped first: a vote from a dropped
source no longer counts).  Every block stores its state, so this bounds the
bytes each block adds while finality stalls (it was 4096: up to ~280 KB per
block with three voters)."""

_DECODE_LINKS = 4096
"""What :meth:`FinalityState.from_bytes` accepts (states stored when
:data:`MAX_LINKS` was 4096 still read back)."""


def quorum(n_validators: int) -> int:
    """``ceil(2N/3)``: votes that justify a target whose set has ``N`` validators."""
    return (2 * n_validators + 2) // 3


@dataclass(frozen=True, slots=True)
class FinalityState:
    """What the votes counted on one branch have decided, after one block."""

    finalized: tuple[int, bytes]
    """(height, hash) of the highest finalized block."""
    justified: tuple[tuple[int, bytes], ...]
    """Justified blocks at or above :attr:`finalized`, ascending (starts with it)."""
    links: tuple[tuple[int, int, tuple[bytes, ...]], ...] = ()
    """(source height, target height, signers ascending) for targets above
    :attr:`finalized`; hashes are the branch's blocks at those heights."""
    last: tuple[tuple[bytes, int, int], ...] = ()
    """(signer, source height, target height) of each signer's last counted vote."""
    accused: tuple[bytes, ...] = ()
    """Validators with evidence included on this branch, ascending."""

    @classmethod
    def genesis(cls, genesis_hash: bytes) -> FinalityState:
        """Genesis is justified and finalized."""
        return cls((0, genesis_hash), ((0, genesis_hash),))

    @property
    def best_justified(self) -> tuple[int, bytes]:
        """The highest justified block."""
        return self.justified[-1]

    def is_justified(self, height: int, block_hash: bytes) -> bool:
        """True if (height, hash) is justified on this branch."""
        return (height, block_hash) in self.justified

    def last_vote(self, signer: bytes) -> tuple[int, int] | None:
        """(source height, target height) of ``signer``'s last counted vote."""
        for who, source, target in self.last:
            if who == signer:
                return source, target
        return None

    def signers(self, source_height: int, target_height: int) -> tuple[bytes, ...]:
        """Who voted for the link between these heights."""
        for s, t, who in self.links:
            if s == source_height and t == target_height:
                return who
        return ()

    # -- storage ------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """Compact encoding for the node's store."""
        w = Writer()
        w.u32(self.finalized[0])
        w.raw(self.finalized[1])
        w.varint(len(self.justified))
        for h, block_hash in self.justified:
            w.u32(h)
            w.raw(block_hash)
        w.varint(len(self.links))
        for s, t, who in self.links:
            w.u32(s)
            w.u32(t)
            w.varint(len(who))
            for signer in who:
                w.raw(signer)
        w.varint(len(self.last))
        for signer, s, t in self.last:
            w.raw(signer)
            w.u32(s)
            w.u32(t)
        w.varint(len(self.accused))
        for signer in self.accused:
            w.raw(signer)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> FinalityState:
        """Inverse of :meth:`to_bytes`."""
        r = Reader(data)
        finalized = (r.u32("finalized height"), r.raw(32, "finalized hash"))
        justified = tuple((r.u32("justified height"), r.raw(32, "justified hash"))
                          for _ in range(r.count("justified", _DECODE_LINKS + 1)))
        links = []
        for _ in range(r.count("link", _DECODE_LINKS)):
            s, t = r.u32("link source"), r.u32("link target")
            who = tuple(r.raw(20, "link signer") for _ in range(r.count("signer", 255)))
            links.append((s, t, who))
        last = tuple((r.raw(20, "signer"), r.u32("source"), r.u32("target"))
                     for _ in range(r.count("last vote", 1024)))
        accused = tuple(r.raw(20, "accused") for _ in range(r.count("accused", 1024)))
        r.finish("finality state")
        return cls(finalized, justified, tuple(links), last, accused)


# ---------------------------------------------------------------------------
# Votes
# ---------------------------------------------------------------------------


def votes_conflict(a: FinalityVote, b: FinalityVote) -> str | None:
    """Rule: two different votes of one key conflict when they have the same
    target height (``"double"``) or one's link strictly surrounds the other's
    (``"surround"``).  Returns the kind, or None."""
    if a.signer_pubkey != b.signer_pubkey or a.id == b.id:
        return None
    if a.target_height == b.target_height:
        return "double"
    if a.source_height < b.source_height and b.target_height < a.target_height:
        return "surround"
    if b.source_height < a.source_height and a.target_height < b.target_height:
        return "surround"
    return None


def check_vote_signature(vote: FinalityVote, chain_id: str) -> bytes:
    """Rule: a vote is signed (low-S) by its pubkey over its digest on this
    chain.  Returns the signer's address."""
    if not ecdsa_verify(vote.signer_pubkey, vote.signature, vote.digest(chain_id)):
        raise BlockInvalid("bad-vote-signature", "finality vote signature does not verify")
    return vote.signer


def check_vote_order(vote: FinalityVote) -> None:
    """Rule: a vote's target is above its source."""
    if vote.target_height <= vote.source_height:
        raise BlockInvalid("bad-vote-order",
                           f"vote target {vote.target_height} is not above its source "
                           f"{vote.source_height}")


def check_vote_target(vote: FinalityVote, branch: BranchLookup) -> None:
    """Rule: a vote's target is a block of this branch."""
    if branch(vote.target_height) != vote.target_hash:
        raise BlockInvalid("bad-vote-target",
                           f"vote target {vote.target_height} is not on this branch")


def check_vote_source(vote: FinalityVote, branch: BranchLookup) -> None:
    """Rule: a vote's source is a block of this branch."""
    if branch(vote.source_height) != vote.source_hash:
        raise BlockInvalid("bad-vote-source",
                           f"vote source {vote.source_height} is not on this branch")


def check_vote_source_justified(vote: FinalityVote, state: FinalityState) -> None:
    """Rule: a vote's source is justified on this branch when it is counted."""
    if not state.is_justified(vote.source_height, vote.source_hash):
        raise BlockInvalid("bad-vote-source-unjustified",
                           f"vote source {vote.source_height} is not justified")


def check_vote_not_stale(vote: FinalityVote, state: FinalityState) -> None:
    """Rule: a vote's target is above the branch's finalized block."""
    if vote.target_height <= state.finalized[0]:
        raise BlockInvalid("bad-vote-stale",
                           f"vote target {vote.target_height} is not above the finalized "
                           f"height {state.finalized[0]}")


def check_vote_signer(signer: bytes, validators: Sequence[bytes]) -> None:
    """Rule: the signer is in the validator set in force at the target height."""
    if signer not in validators:
        raise BlockInvalid("bad-vote-signer", "finality vote from a non-validator")


def check_vote_monotone(vote: FinalityVote, signer: bytes, state: FinalityState) -> None:
    """Rule: on one branch, each validator's counted votes have strictly
    increasing targets and non-decreasing sources (so no two of them conflict)."""
    last = state.last_vote(signer)
    if last is not None and (vote.target_height <= last[1] or vote.source_height < last[0]):
        raise BlockInvalid("bad-vote-not-monotone",
                           f"vote {vote.source_height}→{vote.target_height} does not follow "
                           f"the signer's vote {last[0]}→{last[1]} on this branch")


def count_vote(
    state: FinalityState,
    vote: FinalityVote,
    signer: bytes,
    branch: BranchLookup,
    validators_at: ValidatorsAt,
) -> FinalityState:
    """The state after counting ``vote`` (signature already checked: ``signer``
    is its address) on the branch ``branch``.  Raises :class:`BlockInvalid`
    naming the rule it breaks."""
    check_vote_order(vote)
    check_vote_not_stale(vote, state)
    check_vote_target(vote, branch)
    check_vote_source(vote, branch)
    check_vote_source_justified(vote, state)
    validators = validators_at(vote.target_height)
    check_vote_signer(signer, validators)
    check_vote_monotone(vote, signer, state)

    s, t = vote.source_height, vote.target_height
    links = list(state.links)
    for i, (ls, lt, who) in enumerate(links):
        if ls == s and lt == t:
            voters = tuple(sorted({*who, signer}))
            links[i] = (s, t, voters)
            break
    else:
        voters = (signer,)
        links.append((s, t, voters))
        links.sort(key=lambda link: (link[1], link[0]))
        if len(links) > MAX_LINKS:
            del links[0]
    last = tuple(sorted([(w, ls, lt) for w, ls, lt in state.last if w != signer]
                        + [(signer, s, t)]))
    justified = list(state.justified)
    finalized = state.finalized
    if len(voters) >= quorum(len(validators)):
        if (t, vote.target_hash) not in justified:
            justified.append((t, vote.target_hash))
            justified.sort()
            if len(justified) > MAX_LINKS + 1:
                del justified[1]  # the lowest above the finalized block
        if t == s + 1 and s > finalized[0]:
            finalized = (s, vote.source_hash)
            justified = [j for j in justified if j[0] >= s]
            links = [link for link in links if link[1] > s]
    return FinalityState(finalized, tuple(justified), tuple(links), last, state.accused)


# ---------------------------------------------------------------------------
# Evidence
# ---------------------------------------------------------------------------


def check_evidence(ev: Evidence, chain_id: str) -> bytes:
    """Rule: evidence is two votes, both signed by one key, that conflict.
    Returns the accused validator's address."""
    if ev.first.signer_pubkey != ev.second.signer_pubkey:
        raise BlockInvalid("bad-evidence-signer", "evidence votes are by different keys")
    for vote in (ev.first, ev.second):
        if not ecdsa_verify(vote.signer_pubkey, vote.signature, vote.digest(chain_id)):
            raise BlockInvalid("bad-evidence-signature", "evidence vote does not verify")
    if votes_conflict(ev.first, ev.second) is None:
        raise BlockInvalid("bad-evidence-no-conflict", "evidence votes do not conflict")
    return ev.signer


def check_evidence_accused(accused: bytes, state: FinalityState,
                           validators: Sequence[bytes]) -> None:
    """Rule: a block carries evidence only against a current validator that no
    earlier block of its branch accused."""
    if accused not in validators:
        raise BlockInvalid("bad-evidence-not-validator", "evidence against a non-validator")
    if accused in state.accused:
        raise BlockInvalid("bad-evidence-duplicate", "validator already accused on this branch")


# ---------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------


def apply_block_finality(
    state: FinalityState,
    votes: Sequence[FinalityVote],
    evidence: Sequence[Evidence],
    chain_id: str,
    branch: BranchLookup,
    validators_at: ValidatorsAt,
    parent_validators: Sequence[bytes],
) -> FinalityState:
    """Rule: a block's votes are each valid and counted in order on its branch
    (:func:`count_vote`, every target an ancestor of the block), and its
    evidence is valid (:func:`check_evidence`, :func:`check_evidence_accused`).
    Returns the state after the block."""
    for vote in votes:
        signer = check_vote_signature(vote, chain_id)
        state = count_vote(state, vote, signer, branch, validators_at)
    if evidence:
        accused = set(state.accused)
        for ev in evidence:
            who = check_evidence(ev, chain_id)
            check_evidence_accused(who, FinalityState(
                state.finalized, state.justified, accused=tuple(sorted(accused))),
                parent_validators)
            accused.add(who)
        state = FinalityState(state.finalized, state.justified, state.links, state.last,
                              tuple(sorted(accused)))
    return state


def check_own_vote(
    last: tuple[int, int] | None, source_height: int, target_height: int
) -> bool:
    """Rule (for a validator's own votes): vote only with a source at or above
    the last vote's source and a target above the last vote's target, where
    ``last`` is the persisted (source height, target height) of the last vote
    this key signed.  Such a vote can never conflict with an earlier one."""
    if target_height <= source_height:
        return False
    if last is None:
        return True
    return target_height > last[1] and source_height >= last[0]

"""Gossiped finality votes waiting to be counted: the bounded :class:`VotePool`
of :class:`~o2ocli.node.finality.FinalityTracker`, and what the tracker made of
a vote (:class:`VoteOutcome`)."""

from __future__ import annotations

from o2ocli.consensus.finality import votes_conflict
from o2ocli.core.finality import FinalityVote

__all__ = ["MAX_POOL_VOTES_PER_SIGNER", "VoteOutcome", "VotePool"]

MAX_POOL_VOTES_PER_SIGNER = 64
"""Votes kept per key (the highest targets): bounds the pool whatever peers send."""


class VoteOutcome:
    """What :meth:`FinalityTracker.add_vote` made of a vote."""

    NEW = "new"
    """Accepted into the pool: relay it."""
    KNOWN = "known"
    """Already in the pool."""
    PENDING = "pending"
    """Its target block is unknown: kept until it arrives."""
    CONFLICT = "conflict"
    """It conflicts with a vote of the same key: evidence was made."""
    IGNORED = "ignored"
    """Of no use here: stale, or the signer is no validator (then its
    signature is not even checked)."""


class VotePool:
    """Gossiped votes with a valid signature, per signer, bounded."""

    def __init__(self) -> None:
        self.votes: dict[bytes, tuple[FinalityVote, bytes]] = {}
        self.by_signer: dict[bytes, list[bytes]] = {}
        self.version = 0
        """Bumped whenever the set of votes changes (caches key on it)."""

    def __len__(self) -> int:
        return len(self.votes)

    def __contains__(self, vote_id: bytes) -> bool:
        return vote_id in self.votes

    def conflicting(self, vote: FinalityVote, signer: bytes) -> FinalityVote | None:
        """A pooled vote of the same key that ``vote`` conflicts with."""
        for other_id in self.by_signer.get(signer, ()):
            other = self.votes[other_id][0]
            if votes_conflict(vote, other) is not None:
                return other
        return None

    def add(self, vote: FinalityVote, signer: bytes) -> None:
        """Keep ``vote`` (its signature checked by the caller)."""
        if vote.id in self.votes:
            return
        ids = self.by_signer.setdefault(signer, [])
        ids.append(vote.id)
        self.votes[vote.id] = (vote, signer)
        if len(ids) > MAX_POOL_VOTES_PER_SIGNER:
            ids.sort(key=lambda i: (self.votes[i][0].target_height, self.votes[i][0].source_height))
            drop = ids.pop(0)
            self.votes.pop(drop, None)
        self.version += 1

    def ordered(self) -> list[tuple[FinalityVote, bytes]]:
        """All votes by ascending target height, then source height."""
        return sorted(self.votes.values(),
                      key=lambda item: (item[0].target_height, item[0].source_height, item[0].id))

    def prune(self, below: int) -> None:
        """Forget votes whose target is at or below ``below`` except each key's
        newest few (kept to spot surround votes)."""
        changed = False
        for signer, ids in list(self.by_signer.items()):
            ids.sort(key=lambda i: self.votes[i][0].target_height)
            keep_old = 4
            old = [i for i in ids if self.votes[i][0].target_height <= below]
            for vote_id in old[:-keep_old] if len(old) > keep_old else []:
                self.votes.pop(vote_id, None)
                ids.remove(vote_id)
                changed = True
            if not ids:
                del self.by_signer[signer]
        if changed:
            self.version += 1

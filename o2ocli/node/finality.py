"""The node's side of the finality gadget (:mod:`o2ocli.consensus.finality`).

* Every stored block has a :class:`FinalityState`: its parent's, plus the
  votes and evidence the block carries (checked when the block arrives).
  This is what a node syncing from scratch verifies finality from.
* Votes gossiped by peers wait in a :class:`~o2ocli.node.votepool.VotePool`
  (signature checked; bounded).  The *view* of a branch is its stored state with the pool's votes
  counted on top; the node's finalized block is the highest its main-chain
  view ever finalized (persisted, never lowered).
* Fork choice (:meth:`FinalityTracker.justified_height`) prefers the branch
  whose view has the highest justified block, then the PoA rules.
* Conflicting votes of one key become :class:`Evidence`, stored and relayed.
* A validator votes for each new tip it has connected, with the highest
  justified block below it as source, only if :func:`check_own_vote` allows it
  against its *persisted* last vote, which is written (fsync'd) before the
  vote leaves the process.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from o2ocli.consensus.errors import BlockInvalid
from o2ocli.consensus.finality import (
    FinalityState,
    apply_block_finality,
    check_evidence,
    check_own_vote,
    check_vote_order,
    check_vote_signature,
    count_vote,
)
from o2ocli.core.block import Block
from o2ocli.core.encoding import DecodeError
from o2ocli.core.finality import VOTE_SIZE, Evidence, FinalityVote, vote_digest
from o2ocli.crypto.keys import PrivateKey
from o2ocli.storage import schema as k
from o2ocli.storage.chainstate import IndexEntry

from .votepool import MAX_POOL_VOTES_PER_SIGNER, VoteOutcome, VotePool

if TYPE_CHECKING:
    from .chain import ChainManager

__all__ = ["VotePool", "FinalityTracker", "VoteOutcome", "MAX_POOL_VOTES_PER_SIGNER"]

log = logging.getLogger("o2ocli.finality")

MAX_PENDING_VOTES = 512
"""Votes for blocks not seen yet, kept until the block arrives (oldest dropped)."""
MAX_PENDING_VOTES_PER_SIGNER = 16
"""Of those, per key (its oldest dropped first)."""
MAX_BLOCK_VOTES_INCLUDED = 256
"""Votes a producer puts in one block."""
MAX_EVIDENCE_PER_VALIDATOR = 4
"""Evidence kept against one key: one proves the equivocation; a few more
show its kinds.  Bounds the store whatever an equivocating key signs."""


class FinalityTracker:
    """Finality state per block, the vote pool, views, own votes, evidence."""

    def __init__(self, chain: ChainManager) -> None:
        self.chain = chain
        self.db = chain.db
        self.chain_id = chain.spec.chain_id
        self.pool = VotePool()
        self.pending: OrderedDict[bytes, FinalityVote] = OrderedDict()
        self._states: OrderedDict[bytes, FinalityState] = OrderedDict()
        self._views: dict[bytes, tuple[int, FinalityState]] = {}
        self.evidence: dict[bytes, Evidence] = {}
        for _, value in self.db.iterate(k.EVIDENCE):
            try:
                ev = Evidence.from_bytes(value)
            except DecodeError:
                continue
            self.evidence[ev.id] = ev
        self.finalized: tuple[int, bytes] = (0, chain.genesis.hash)
        stored = self.db.get(k.META_FINAL)
        if stored is not None and len(stored) == 36:
            self.finalized = (int.from_bytes(stored[:4], "big"), stored[4:])
        if self.db.get(k.FINALITY + chain.genesis.hash) is None:
            with self.db.write_batch() as batch:
                batch.put(k.FINALITY + chain.genesis.hash,
                          FinalityState.genesis(chain.genesis.hash).to_bytes())

    # ------------------------------------------------------------ block states
    def state(self, block_hash: bytes) -> FinalityState:
        """The stored finality state after ``block_hash``."""
        cached = self._states.get(block_hash)
        if cached is not None:
            return cached
        data = self.db.get(k.FINALITY + block_hash)
        if data is None:
            return self._rebuild_state(block_hash)
        fstate = FinalityState.from_bytes(data)
        self._remember(block_hash, fstate)
        return fstate

    def _rebuild_state(self, block_hash: bytes) -> FinalityState:
        """The state of a stored block written before finality states were kept
        (an older database): replayed from the nearest ancestor that has one."""
        state = self.chain.state
        path: list[IndexEntry] = []
        current = state.get_index(block_hash)
        base: FinalityState | None = None
        while current is not None:
            data = self._states.get(current.hash) or (
                self.db.get(k.FINALITY + current.hash))
            if data is not None:
                base = data if isinstance(data, FinalityState) else FinalityState.from_bytes(data)
                break
            path.append(current)
            if current.height == 0:
                break
            current = state.get_index(current.header.prev_hash)
        if base is None:
            base = FinalityState.genesis(self.chain.genesis.hash)
        for entry in reversed(path):
            block = state.get_block(entry.hash)
            parent = state.get_index(entry.header.prev_hash)
            if block is not None and parent is not None and (block.votes or block.evidence):
                branch = self.branch(parent)
                try:
                    base = apply_block_finality(
                        base, block.votes, block.evidence, self.chain_id, branch,
                        self.validators_at(branch), self.chain.snapshot(parent.hash).validators)
                except BlockInvalid:
                    pass
            self._remember(entry.hash, base)
        return base

    def _remember(self, block_hash: bytes, fstate: FinalityState) -> None:
        self._states[block_hash] = fstate
        if len(self._states) > 2048:
            self._states.popitem(last=False)

    def branch(self, entry: IndexEntry) -> Callable[[int], bytes | None]:
        """height → hash on the branch ending at ``entry``."""
        state = self.chain.state
        side: dict[int, bytes] = {}
        current: IndexEntry | None = entry
        while current is not None and not state.is_main_chain(current):
            side[current.height] = current.hash
            current = state.get_index(current.header.prev_hash)
        top = current.height if current is not None else -1
        limit = entry.height

        def lookup(height: int) -> bytes | None:
            if height > limit or height < 0:
                return None
            found = side.get(height)
            if found is not None:
                return found
            return state.get_block_hash(height) if height <= top else None

        return lookup

    def validators_at(self, branch: Callable[[int], bytes | None]
                      ) -> Callable[[int], Sequence[bytes]]:
        """height → the validator set that may seal that height on ``branch``."""
        def at(height: int) -> Sequence[bytes]:
            parent = branch(height - 1) if height > 0 else None
            if parent is None:
                return ()
            return self.chain.snapshot(parent).validators
        return at

    def block_state(self, block: Block, parent: IndexEntry) -> FinalityState:
        """Rule check of ``block``'s votes and evidence on its branch; returns the
        state after it (cached, so fork choice can read it before it is stored)."""
        base = self.state(parent.hash)
        if block.votes or block.evidence:
            branch = self.branch(parent)
            fstate = apply_block_finality(
                base, block.votes, block.evidence, self.chain_id, branch,
                self.validators_at(branch), self.chain.snapshot(parent.hash).validators)
        else:
            fstate = base
        self._remember(block.hash, fstate)
        return fstate

    # ------------------------------------------------------------------ views
    def view(self, entry: IndexEntry) -> FinalityState:
        """``entry``'s stored state with the pool's votes counted on its branch."""
        cached = self._views.get(entry.hash)
        if cached is not None and cached[0] == self.pool.version:
            return cached[1]
        branch = self.branch(entry)
        fstate = self._seeded(entry, branch)
        if len(self.pool):
            fstate, _ = self._count_pool(fstate, entry.height, branch)
        if len(self._views) > 256:
            self._views.clear()
        self._views[entry.hash] = (self.pool.version, fstate)
        return fstate

    def _count_pool(self, fstate: FinalityState, top: int,
                    branch: Callable[[int], bytes | None], limit: int | None = None,
                    ) -> tuple[FinalityState, list[FinalityVote]]:
        """Count the pool's votes (in counting order) that count on ``branch``
        up to height ``top``; returns the state and the votes counted (at most
        ``limit``)."""
        at = self.validators_at(branch)
        counted: list[FinalityVote] = []
        for vote, signer in self.pool.ordered():
            if limit is not None and len(counted) >= limit:
                break
            if not fstate.finalized[0] < vote.target_height <= top:
                continue
            try:
                fstate = count_vote(fstate, vote, signer, branch, at)
            except BlockInvalid:
                continue
            counted.append(vote)
        return fstate, counted

    def _seeded(self, entry: IndexEntry, branch: Callable[[int], bytes | None]
                ) -> FinalityState:
        """``entry``'s stored state, raised to this node's finalized block if
        the branch holds it."""
        fstate = self.state(entry.hash)
        final = self.finalized
        if final[0] > fstate.finalized[0] and branch(final[0]) == final[1]:
            # What this node saw finalized (e.g. from votes gossiped before a
            # restart) is final, hence justified, on every branch holding it.
            fstate = FinalityState(
                final,
                (final, *[j for j in fstate.justified if j[0] > final[0]]),
                tuple(link for link in fstate.links if link[1] > final[0]),
                fstate.last, fstate.accused)
        return fstate

    def _votes_behind(self, entry: IndexEntry, source: tuple[int, bytes]
                      ) -> list[FinalityVote]:
        """Pool votes that justify ``source`` on ``entry``'s branch beyond its
        stored state (in counting order; empty if the state justifies it).
        The stored state, not the view: these are what blocks must carry
        (this node's finalized block may be justified by gossip only)."""
        branch = self.branch(entry)
        fstate = self.state(entry.hash)
        at = self.validators_at(branch)
        chosen: list[FinalityVote] = []
        for vote, signer in self.pool.ordered():
            if fstate.is_justified(*source) or len(chosen) >= MAX_BLOCK_VOTES_INCLUDED:
                break
            if not fstate.finalized[0] < vote.target_height <= source[0]:
                continue
            try:
                fstate = count_vote(fstate, vote, signer, branch, at)
            except BlockInvalid:
                continue
            chosen.append(vote)
        return chosen if fstate.is_justified(*source) else []

    def restore_own_votes(self) -> bool:
        """At start-up: put each persisted own vote, and the votes that
        justified its source, back in the pool (so they are gossiped again).
        Returns True if the pool changed."""
        changed = False
        for _, data in list(self.db.iterate(k.OWN_VOTE)):
            for start in range(8, len(data) - VOTE_SIZE + 1, VOTE_SIZE):
                try:
                    vote = FinalityVote.from_bytes(data[start:start + VOTE_SIZE])
                    outcome, _ = self.add_vote(vote)
                except (BlockInvalid, DecodeError, ValueError):
                    continue
                changed = changed or outcome == VoteOutcome.NEW
        return changed

    def justified_height(self, entry: IndexEntry) -> int:
        """Fork choice: the height of the highest justified block in ``entry``'s view."""
        return self.view(entry).best_justified[0]

    def update_finalized(self) -> bool:
        """Raise the node's finalized block from the main chain's view (persisted).
        Returns True if it moved."""
        view = self.view(self.chain.tip)
        if view.finalized[0] <= self.finalized[0]:
            return False
        self.finalized = view.finalized
        with self.db.write_batch() as batch:
            batch.put(k.META_FINAL, view.finalized[0].to_bytes(4, "big") + view.finalized[1])
        self.pool.prune(self.state(self.chain.tip.hash).finalized[0])
        return True

    # ------------------------------------------------------------------ votes
    def add_vote(self, vote: FinalityVote) -> tuple[str, Evidence | None]:
        """Check a gossiped vote and keep it.  Raises :class:`BlockInvalid` for a
        vote that is invalid whatever the receiver knows (bad signature or
        order): the sender may be punished for those only."""
        if vote.id in self.pool:
            return VoteOutcome.KNOWN, None
        check_vote_order(vote)
        if not self._may_matter(vote):
            return VoteOutcome.IGNORED, None
        signer = check_vote_signature(vote, self.chain_id)
        other = self.pool.conflicting(vote, signer)
        if other is not None:
            ev = Evidence.of(vote, other)
            return VoteOutcome.CONFLICT, ev if self.add_evidence(ev) else None
        # Below what the chain itself proves final, a vote is of no use; above
        # it a block may still have to carry it (this node's finalized block
        # may be final by gossiped votes only).
        if vote.target_height <= self.state(self.chain.tip.hash).finalized[0]:
            return VoteOutcome.IGNORED, None
        target = self.chain.state.get_index(vote.target_hash)
        if target is None:
            # Only a validator of the tip's set may park votes, a bounded
            # number each: a flood from made-up keys (or one validator) must
            # not push out the others' votes for a block still on its way.
            if signer not in self.chain.tip_snapshot().validators:
                return VoteOutcome.IGNORED, None
            mine = [i for i, v in self.pending.items() if v.signer_pubkey == vote.signer_pubkey]
            if len(mine) >= MAX_PENDING_VOTES_PER_SIGNER:
                del self.pending[mine[0]]
            self.pending[vote.id] = vote
            if len(self.pending) > MAX_PENDING_VOTES:
                self.pending.popitem(last=False)
            return VoteOutcome.PENDING, None
        if target.height != vote.target_height:
            return VoteOutcome.IGNORED, None
        if signer not in self.validators_at(self.branch(target))(vote.target_height):
            return VoteOutcome.IGNORED, None
        self.pool.add(vote, signer)
        return VoteOutcome.NEW, None

    def _may_matter(self, vote: FinalityVote) -> bool:
        """Whether ``vote``'s key is a validator of the tip's set, of its
        target's, or has pooled votes: anything else is of no use here and not
        worth a signature check (anyone can make keys and sign votes)."""
        signer = vote.signer
        if signer in self.pool.by_signer or signer in self.chain.tip_snapshot().validators:
            return True
        target = self.chain.state.get_index(vote.target_hash)
        return (target is not None and target.height == vote.target_height
                and signer in self.validators_at(self.branch(target))(vote.target_height))

    def retry_pending(self) -> list[FinalityVote]:
        """Votes waiting for a block that is now known; returns those accepted."""
        accepted = []
        for vote_id, vote in list(self.pending.items()):
            if self.chain.state.get_index(vote.target_hash) is None:
                continue
            del self.pending[vote_id]
            try:
                outcome, _ = self.add_vote(vote)
            except BlockInvalid:
                continue
            if outcome == VoteOutcome.NEW:
                accepted.append(vote)
        return accepted

    def note_block(self, block: Block) -> list[Evidence]:
        """Keep a stored block's votes in the pool (so a conflicting gossiped vote
        is caught) and its evidence in the store.  Returns new evidence."""
        found = []
        for vote in block.votes:
            signer = vote.signer
            if vote.id in self.pool:
                continue
            other = self.pool.conflicting(vote, signer)
            if other is not None:
                ev = Evidence.of(vote, other)
                if self.add_evidence(ev):
                    found.append(ev)
                continue
            self.pool.add(vote, signer)
        for ev in block.evidence:
            self.add_evidence(ev, carried=True)
        return found

    # --------------------------------------------------------------- evidence
    def add_evidence(self, ev: Evidence, *, carried: bool = False) -> bool:
        """Store valid evidence; True if it is new.  Gossiped evidence is kept
        only against a validator of the tip's set (anyone can make keys that
        equivocate); evidence a valid block ``carried`` was checked against
        its set.  At most :data:`MAX_EVIDENCE_PER_VALIDATOR` per key."""
        if ev.id in self.evidence:
            return False
        who = ev.signer
        if not carried and who not in self.chain.tip_snapshot().validators:
            return False
        if sum(1 for other in self.evidence.values()
               if other.signer == who) >= MAX_EVIDENCE_PER_VALIDATOR:
            return False
        try:
            accused = check_evidence(ev, self.chain_id)
        except BlockInvalid:
            return False
        self.evidence[ev.id] = ev
        with self.db.write_batch() as batch:
            batch.put(k.EVIDENCE + accused + ev.id, ev.to_bytes())
        log.warning("equivocation evidence against validator %s: %s and %s",
                    accused.hex(), ev.first.short(), ev.second.short())
        return True

    def accused(self) -> set[bytes]:
        """Addresses with evidence against them (from blocks or gossip)."""
        return {ev.signer for ev in self.evidence.values()}

    # --------------------------------------------------------------- producing
    def votes_for_block(self, parent: IndexEntry) -> tuple[tuple[FinalityVote, ...],
                                                          tuple[Evidence, ...]]:
        """Pool votes that count on the branch ending at ``parent`` but are not
        counted in its stored state yet (in counting order), and evidence
        against current validators not yet carried by the branch."""
        fstate = self.state(parent.hash)
        branch = self.branch(parent)
        fstate, chosen = self._count_pool(fstate, parent.height, branch,
                                          limit=MAX_BLOCK_VOTES_INCLUDED)
        validators = self.chain.snapshot(parent.hash).validators
        evidence: list[Evidence] = []
        accused = set(fstate.accused)
        for ev in sorted(self.evidence.values(), key=lambda e: e.id):
            who = ev.signer
            if who in validators and who not in accused and len(evidence) < 16:
                evidence.append(ev)
                accused.add(who)
        return tuple(chosen), tuple(evidence)

    # -------------------------------------------------------------- own votes
    def last_own_vote(self, address: bytes) -> tuple[int, int] | None:
        """(source height, target height) of the last vote this node signed with
        the key of ``address`` (persisted)."""
        data = self.db.get(k.OWN_VOTE + address)
        if data is None or len(data) < 8:
            return None
        return int.from_bytes(data[:4], "big"), int.from_bytes(data[4:8], "big")

    def make_own_vote(self, key: PrivateKey) -> FinalityVote | None:
        """This validator's vote for the tip, or None if it may not vote now.
        The vote is persisted (fsync'd) before it is returned."""
        tip = self.chain.tip
        if tip.height == 0:
            return None
        address = key.public_key.hash160()
        branch = self.branch(tip)
        if address not in self.validators_at(branch)(tip.height):
            return None
        view = self.view(tip)
        sources = [j for j in view.justified if j[0] < tip.height]
        if not sources:
            return None
        source_height, source_hash = sources[-1]
        if not check_own_vote(self.last_own_vote(address), source_height, tip.height):
            return None
        digest = vote_digest(self.chain_id, source_height, source_hash, tip.height, tip.hash)
        vote = FinalityVote(key.public_key.to_bytes(), source_height, source_hash, tip.height,
                            tip.hash, key.sign(digest))
        # The gossiped votes that justify the source are kept with it: if every
        # node restarts before a block carries them, this validator could
        # otherwise never vote again (its next source may not be lower).
        behind = self._votes_behind(tip, (source_height, source_hash))
        with self.db.write_batch() as batch:  # sync=True: on disk before it is sent
            batch.put(k.OWN_VOTE + address,
                      source_height.to_bytes(4, "big") + tip.height.to_bytes(4, "big")
                      + vote.to_bytes() + b"".join(v.to_bytes() for v in behind))
        return vote

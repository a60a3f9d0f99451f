"""The chain manager: the chainstate plus the proof-of-authority layer.

:class:`ChainManager` validates each block's header against the validator
snapshot of its parent (:func:`o2ocli.consensus.poa.validate_header`), stores
the new snapshot with the block, chooses between branches with the EIP-3436
fork choice (after the finality gadget's justified height, see
:mod:`o2ocli.node.finality`), and keeps the finalized height up to date so the
chainstate never reorganises below it.  The wall clock is read here (``clock``), never inside
consensus code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from o2ocli.chainspec import ChainSpec
from o2ocli.consensus.block import check_merkle_root, witness_checks
from o2ocli.consensus.errors import BlockInvalid
from o2ocli.consensus.poa import (
    ForkChoiceKey,
    Snapshot,
    prefer_chain,
    validate_header,
)
from o2ocli.consensus.tx import Verifier, serial_verifier
from o2ocli.core.block import Block, BlockHeader
from o2ocli.core.encoding import DecodeError, Reader
from o2ocli.crypto.hashes import hash160
from o2ocli.storage import schema as k
from o2ocli.storage.chainstate import (
    NO_CHANGE,
    STATUS_INVALID,
    ChainState,
    ChainStateError,
    IndexEntry,
    TipChange,
)
from o2ocli.storage.db import Database

from .finality import FinalityTracker

__all__ = [
    "ChainManager",
    "DERIVED_PREFIXES",
    "ReindexProgress",
    "ReindexRequired",
    "SNAPSHOT_PREFIX",
    "rebuild_chainstate",
    "reindex_pending",
]

SNAPSHOT_PREFIX = k.SNAPSHOT
"""``p`` ‖ block hash → PoA :class:`Snapshot` after that block."""

FAR_FUTURE = 2**62
log = logging.getLogger("o2ocli.chain")


@dataclass(frozen=True, slots=True)
class ReindexProgress:
    """Reported by :meth:`ChainManager.reindex` after each block."""

    done: int
    total: int
    height: int


class ChainManager:
    """Owns the chainstate of one chain spec and applies the PoA rules."""

    def __init__(
        self,
        db: Database,
        spec: ChainSpec,
        *,
        verifier: Verifier = serial_verifier,
        clock: Callable[[], float] = time.time,
        reindexing: bool = False,
        dbcache: int = 0,
    ) -> None:
        """``reindexing`` is for :func:`rebuild_chainstate` only: it opens a
        chainstate whose reindex is under way.  ``dbcache``: bytes of UTXO
        cache (0 = write every block through; see :mod:`o2ocli.storage.coincache`)."""
        if not reindexing and reindex_pending(db):
            raise ReindexRequired(
                "the chain database was left incomplete by an interrupted reindex; "
                "run: o2ocli node reindex"
            )
        self.db = db
        self.spec = spec
        self.poa = spec.poa_params
        self.clock = clock
        self.genesis = spec.genesis_block()
        self.verifier = verifier
        self._snapshots: dict[bytes, Snapshot] = {}
        if db.get(SNAPSHOT_PREFIX + self.genesis.hash) is None:
            with db.write_batch() as batch:
                batch.put(
                    SNAPSHOT_PREFIX + self.genesis.hash,
                    Snapshot.genesis(spec.validators).to_bytes(),
                )
        self.state = ChainState(
            db, spec.consensus_params, self.genesis, verifier=verifier, prefer=self._prefer,
            activate=False, dbcache=dbcache,
        )
        self.finality = FinalityTracker(self)
        self._recent: dict[bytes, IndexEntry] = {}
        """Blocks added lately (hash → entry): candidates when votes change the fork choice."""
        # Finality first, so an interrupted reorg is finished (or refused) under
        # the same guard as when the node was running.
        self.state.finalized_height, self.state.finalized_hash = self.finality.finalized
        if not reindexing:  # a reindex puts them back once every block is replayed
            self.finality.restore_own_votes()
        self._update_finality()
        for _ in range(100):  # each failure marks a branch invalid, so this ends
            try:
                if self.state.activate_best_chain():
                    self._update_finality()
                break
            except BlockInvalid as exc:
                log.warning("stored branch found invalid at start-up: %s", exc)
                self._update_finality()

    # ------------------------------------------------------------------ reads
    @property
    def tip(self) -> IndexEntry:
        """The main chain's last block."""
        return self.state.tip

    @property
    def height(self) -> int:
        """Tip height."""
        return self.state.height

    @property
    def finalized_height(self) -> int:
        """Height at or below which the chain never changes."""
        return self.state.finalized_height

    @property
    def finalized_hash(self) -> bytes:
        """Hash of the highest finalized block."""
        return self.finality.finalized[1]

    def snapshot(self, block_hash: bytes) -> Snapshot:
        """The validator snapshot after the stored block ``block_hash``."""
        snap = self._snapshots.get(block_hash)
        if snap is None:
            data = self.db.get(SNAPSHOT_PREFIX + block_hash)
            if data is None:
                raise ChainStateError(f"no validator snapshot for block {block_hash.hex()}")
            snap = Snapshot.from_bytes(data)
            if len(self._snapshots) > 4096:
                self._snapshots.clear()
            self._snapshots[block_hash] = snap
        return snap

    def tip_snapshot(self) -> Snapshot:
        """The snapshot that decides who seals the next block."""
        return self.snapshot(self.tip.hash)

    def sealer_of(self, entry: IndexEntry) -> bytes | None:
        """Address that sealed a block (None for genesis)."""
        if entry.height == 0:
            return None
        return hash160(entry.header.seal_pubkey)

    def iter_main_chain_down(self, start: IndexEntry | None = None) -> Iterator[IndexEntry]:
        """Index entries from ``start`` (default: the tip) down to genesis."""
        entry = start or self.tip
        while True:
            yield entry
            if entry.height == 0:
                return
            parent = self.state.get_index(entry.header.prev_hash)
            if parent is None:
                return
            entry = parent

    # ----------------------------------------------------------- fork choice
    def _fork_key(self, entry: IndexEntry) -> ForkChoiceKey:
        if entry.height == 0:
            return ForkChoiceKey(entry.total_difficulty, 0, 0, 1, entry.hash)
        parent_snap = self.snapshot(entry.header.prev_hash)
        signer = hash160(entry.header.seal_pubkey)
        validators = parent_snap.validators
        index = validators.index(signer) if signer in validators else 0
        return ForkChoiceKey(
            entry.total_difficulty, entry.height, index, len(validators), entry.hash
        )

    def _prefer(self, candidate: IndexEntry, current: IndexEntry) -> bool:
        """Rule (fork choice): the branch whose view has the higher justified
        block wins; on a tie, the PoA rules (:func:`prefer_chain`)."""
        finality = getattr(self, "finality", None)
        if finality is not None:
            mine, theirs = (finality.justified_height(candidate),
                            finality.justified_height(current))
            if mine != theirs:
                return mine > theirs
        return prefer_chain(self._fork_key(candidate), self._fork_key(current))

    # ---------------------------------------------------------------- writes
    def add_block(self, block: Block, now: int | None = None) -> TipChange:
        """Validate ``block``'s header (PoA) and body, store it, and follow the
        best branch.  Raises BlockInvalid / ChainStateError (unknown parent)."""
        header = block.header
        if self.state.get_index(block.hash) is not None:
            change = self.state.add_block(block)
            if change:
                self._update_finality()
            return change
        parent = self.state.get_index(header.prev_hash)
        if parent is None:
            raise ChainStateError(
                f"parent {header.prev_hash.hex()[:16]}… of block {block.hash.hex()[:16]}… "
                "is unknown"
            )
        if parent.status == STATUS_INVALID:
            raise BlockInvalid("bad-prevblk", "block builds on an invalid block")
        clock_now = int(self.clock()) if now is None else now
        parent_snap = self.snapshot(parent.hash)
        new_snap = validate_header(header, parent.header, parent_snap, self.poa, clock_now)
        # A body that does not match its header is refused as such before its
        # votes are looked at (the header may still arrive with the right body).
        check_merkle_root(block)
        fstate = self.finality.block_state(block, parent)
        change = self.state.add_block(
            block, extra_puts={SNAPSHOT_PREFIX + block.hash: new_snap.to_bytes(),
                               k.FINALITY + block.hash: fstate.to_bytes()}
        )
        self.finality.note_block(block)
        stored = self.state.get_index(block.hash)
        if stored is not None:
            self._recent[block.hash] = stored
            if len(self._recent) > 512:
                del self._recent[next(iter(self._recent))]
        if change:
            self._update_finality()
        return change

    def _update_finality(self) -> None:
        self.finality.update_finalized()
        height, block_hash = self.finality.finalized
        if height >= self.state.finalized_height:
            self.state.finalized_height, self.state.finalized_hash = height, block_hash

    def on_votes_changed(self) -> TipChange:
        """After the vote pool changed: raise the finalized block, and follow a
        branch that became preferred (it now holds a higher justified block)."""
        self._update_finality()
        tip = self.tip
        best = None
        side = []
        for entry in list(self._recent.values()):
            if entry.hash == tip.hash or self.state.is_main_chain(entry):
                continue
            current = self.state.get_index(entry.hash)
            if current is None or current.status == STATUS_INVALID:
                continue
            side.append(current)
        # Only the tips of side branches: each view walks its branch back to
        # the main chain and recounts the pool, and this runs for every
        # incoming vote (all 500 blocks of a healed partition's losing branch
        # took half a second per vote).
        parents = {entry.header.prev_hash for entry in side}
        for current in side:
            if current.hash in parents:
                continue
            if self._prefer(current, best or tip):
                best = current
        if best is None:
            return NO_CHANGE
        with self.db.write_batch() as batch:
            batch.put(k.META_BEST, best.hash)
        try:
            change = self.state.activate_best_chain()
        except BlockInvalid as exc:
            log.warning("branch preferred by votes is invalid: %s", exc)
            return NO_CHANGE
        if change:
            self._update_finality()
        return change

    def reindex(self, progress: Callable[[ReindexProgress], None] | None = None) -> int:
        """Rebuild the chainstate from the stored block bodies (see
        :func:`rebuild_chainstate`); this manager then uses the rebuilt state.
        Returns the new tip height."""
        if self.state.cache is not None:
            self.state.cache.wait()  # no background flush may write during the rebuild
        fresh = rebuild_chainstate(
            self.db, self.spec, verifier=self.verifier, clock=self.clock, progress=progress
        )
        self._snapshots.clear()
        self.state = fresh.state
        self.finality = fresh.finality
        self._recent = fresh._recent
        return self.height


# ------------------------------------------------------------------- reindex
DERIVED_PREFIXES: tuple[bytes, ...] = (
    k.INDEX, k.HEIGHT, k.UTXO, k.UNDO, k.TXINDEX, k.ADDR_UTXO, k.ADDR_HISTORY, k.META,
    k.UTXO_COMMIT,
    SNAPSHOT_PREFIX, k.FINALITY, *k.O2O_PREFIXES,
)
"""Key spaces derived from the blocks: a reindex deletes them and rebuilds them
by replaying the stored bodies.  A new key space computed from the blocks goes
here.  Never listed: the bodies (``k.BLOCK``), the reindex marker, the peer
address book and bans (they are not chain state), a validator's own last
finality vote (``k.OWN_VOTE``: it must survive anything) and the evidence
store (``k.EVIDENCE``: gossip is not on the chain)."""

REINDEX_MARKER_VERSION = 1
PHASE_DELETE, PHASE_REPLAY = 0, 1


class ReindexRequired(ChainStateError):
    """An interrupted reindex left the chainstate incomplete."""


@dataclass(frozen=True, slots=True)
class _ReindexMarker:
    genesis: bytes
    phase: int
    tip_hint: bytes
    """The tip before the reindex (empty if unknown): its branch is replayed first."""

    def to_bytes(self) -> bytes:
        return bytes([REINDEX_MARKER_VERSION]) + self.genesis + bytes([self.phase]) + self.tip_hint

    @classmethod
    def from_bytes(cls, data: bytes) -> _ReindexMarker:
        if len(data) not in (34, 66) or data[0] != REINDEX_MARKER_VERSION or data[33] > 1:
            raise ChainStateError(
                f"the reindex marker of this database is unreadable ({data[:4].hex()}…); "
                "was it written by a newer o2ocli?"
            )
        return cls(data[1:33], data[33], data[34:])


def _write_marker(db: Database, marker: _ReindexMarker) -> None:
    with db.write_batch() as batch:
        batch.put(k.REINDEX_MARKER, marker.to_bytes())


def _delete_derived(db: Database) -> None:
    """Delete every key of :data:`DERIVED_PREFIXES`: the other keys (bodies,
    own votes, evidence, peers, the reindex marker) are copied into a fresh
    LevelDB that replaces the old one (:meth:`Database.drop_key_spaces`), so
    the cost follows the bytes kept, not the millions of derived keys.  The
    reindex marker makes an interruption here harmless."""
    try:
        db.drop_key_spaces(frozenset(prefix[0] for prefix in DERIVED_PREFIXES))
    except OSError as exc:
        raise ChainStateError(f"cannot drop the derived data: {exc}") from None


def _replay_order(db: Database, genesis_hash: bytes, tip_hint: bytes) -> list[tuple[int, bytes]]:
    """(height, hash) of every stored block body whose ancestry reaches genesis,
    parents before children: the branch of ``tip_hint`` (or, if that is not
    such a block, of the heaviest stored block) first, in height order, then
    every other block in (height, hash) order."""
    links: dict[bytes, tuple[bytes, int, int]] = {}  # hash → (parent, height, difficulty)
    for key, value in db.iterate(k.BLOCK):
        try:
            header = BlockHeader.decode(Reader(value))
        except DecodeError:
            continue
        if header.hash == key[1:]:  # a damaged body is not replayed
            links[header.hash] = (header.prev_hash, header.height, header.difficulty)
    # Which blocks chain back to genesis, and their total difficulty.
    total: dict[bytes, int] = {genesis_hash: 0}
    heights = {genesis_hash: 0}
    for block_hash, (parent, height, difficulty) in sorted(
        links.items(), key=lambda item: item[1][1]
    ):
        if parent in total and height == heights[parent] + 1:
            total[block_hash] = total[parent] + difficulty
            heights[block_hash] = height
    del total[genesis_hash]
    if tip_hint not in total:
        tip_hint = max(total, key=lambda h: (total[h], heights[h], h), default=genesis_hash)
    main: list[tuple[int, bytes]] = []
    block_hash = tip_hint
    while block_hash in total:
        main.append((heights[block_hash], block_hash))
        block_hash = links[block_hash][0]
    main.reverse()
    on_main = {block_hash for _, block_hash in main}
    others = sorted((heights[h], h) for h in total if h not in on_main)
    return main + others


def _stored_block(chain: ChainManager, block_hash: bytes) -> Block | None:
    """A stored block, or None if it is missing or does not decode."""
    try:
        return chain.state.get_block(block_hash)
    except (ChainStateError, DecodeError):
        return None


def reindex_pending(db: Database) -> bool:
    """True if a reindex of this database was interrupted."""
    return db.get(k.REINDEX_MARKER) is not None


def rebuild_chainstate(
    db: Database,
    spec: ChainSpec,
    *,
    verifier: Verifier = serial_verifier,
    clock: Callable[[], float] = time.time,
    progress: Callable[[ReindexProgress], None] | None = None,
) -> ChainManager:
    """Rebuild the chainstate from the stored block bodies; returns the manager
    of the rebuilt chain.

    Every stored block whose ancestry reaches genesis is replayed (headers
    re-validated, every transaction re-checked): the old main chain first, in
    order, then every other block by height, so side branches meet the fork
    choice and the finality guard exactly as they did when they first arrived.
    The bodies and the peer address book and bans are kept.

    Restartable: a marker is written (in its own synced batch) before anything
    is deleted, and removed only when the rebuild is done.  Killed at any
    moment, the next call resumes: it deletes the derived data again if that
    phase was not finished, else it keeps the blocks already replayed (each
    was connected in one atomic batch) and replays the rest.  Meanwhile
    :class:`ChainManager` refuses to open the database (:class:`ReindexRequired`).
    """
    genesis_hash = spec.genesis_block().hash
    data = db.get(k.REINDEX_MARKER)
    if data is None:
        stored_genesis = db.get(k.META_GENESIS)
        if stored_genesis is not None and stored_genesis != genesis_hash:
            raise ChainStateError(
                f"this database belongs to another chain (genesis {stored_genesis.hex()[:16]}…, "
                f"expected {genesis_hash.hex()[:16]}…)"
            )
        tip = db.get(k.META_TIP) or b""
        marker = _ReindexMarker(genesis_hash, PHASE_DELETE, tip if len(tip) == 32 else b"")
    else:
        marker = _ReindexMarker.from_bytes(data)
        if marker.genesis != genesis_hash:
            raise ChainStateError(
                f"this database belongs to another chain (genesis {marker.genesis.hex()[:16]}…, "
                f"expected {genesis_hash.hex()[:16]}…)"
            )
    chain: ChainManager | None = None
    if marker.phase == PHASE_REPLAY:
        try:
            chain = ChainManager(db, spec, verifier=verifier, clock=clock, reindexing=True)
        except ChainStateError as exc:  # not what a reindex leaves: start afresh
            log.warning("cannot resume the interrupted reindex (%s); starting again", exc)
    if chain is None:
        marker = _ReindexMarker(marker.genesis, PHASE_DELETE, marker.tip_hint)
        _write_marker(db, marker)
        _delete_derived(db)
        chain = ChainManager(db, spec, verifier=verifier, clock=clock, reindexing=True)
        marker = _ReindexMarker(marker.genesis, PHASE_REPLAY, marker.tip_hint)
        _write_marker(db, marker)
    order = _replay_order(db, genesis_hash, marker.tip_hint)
    prefetch = getattr(verifier, "prefetch", None)
    chain_id = spec.consensus_params.chain_id
    ahead: Block | None = None
    for done, (height, block_hash) in enumerate(order, 1):
        # A block with an index entry was replayed before an interruption.
        if chain.state.get_index(block_hash) is None:
            block = ahead if ahead is not None and ahead.hash == block_hash else \
                _stored_block(chain, block_hash)
            ahead = None
            if prefetch is not None and done < len(order):
                # The next block's signatures are verified while this one connects.
                ahead = _stored_block(chain, order[done][1])
                if ahead is not None:
                    prefetch(witness_checks(ahead, chain_id))
            if block is not None:
                try:
                    chain.add_block(block, now=FAR_FUTURE)
                except (BlockInvalid, ChainStateError, DecodeError):
                    pass
        if progress is not None:
            progress(ReindexProgress(done, len(order), height))
    chain.finality.restore_own_votes()
    chain._update_finality()
    with db.write_batch() as batch:
        batch.delete(k.REINDEX_MARKER)
    return chain

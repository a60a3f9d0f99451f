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
from o2ocli.consensus.block import check_merkle_root
from o2ocli.consensus.errors import BlockInvalid
from o2ocli.consensus.poa import (
    ForkChoiceKey,
    Snapshot,
    prefer_chain,
    validate_header,
)
from o2ocli.consensus.tx import Verifier, serial_verifier
from o2ocli.core.block import Block
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

__all__ = ["ChainManager", "ReindexProgress", "SNAPSHOT_PREFIX"]

SNAPSHOT_PREFIX = b"p"
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
    ) -> None:
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
            activate=False,
        )
        self.finality = FinalityTracker(self)
        self._recent: dict[bytes, IndexEntry] = {}
        """Blocks added lately (hash → entry): candidates when votes change the fork choice."""
        # Finality first, so an interrupted reorg is finished (or refused) under
        # the same guard as when the node was running.
        self.state.finalized_height = self.finality.finalized[0]
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
        self.state.finalized_height = max(self.state.finalized_height,
                                          self.finality.finalized[0])

    def on_votes_changed(self) -> TipChange:
        """After the vote pool changed: raise the finalized block, and follow a
        branch that became preferred (it now holds a higher justified block)."""
        self._update_finality()
        tip = self.tip
        best = None
        for entry in list(self._recent.values()):
            if entry.hash == tip.hash or self.state.is_main_chain(entry):
                continue
            current = self.state.get_index(entry.hash)
            if current is None or current.status == STATUS_INVALID:
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
        """Rebuild the chainstate from the stored blocks (headers re-validated,
        every transaction re-checked).  Returns the new tip height."""
        # The main chain first (in order), then every other stored block: side
        # branches then meet the fork choice and the finality guard exactly as
        # they did when they first arrived.
        main = [
            (int.from_bytes(key[1:], "big"), value)
            for key, value in self.db.iterate(k.HEIGHT)
            if key[1:] != bytes(4)
        ]
        main.sort()
        on_main = {block_hash for _, block_hash in main}
        others: list[tuple[int, bytes]] = []
        for _, value in self.db.iterate(k.INDEX):
            entry = IndexEntry.from_bytes(value)
            if entry.height > 0 and entry.hash not in on_main:
                others.append((entry.height, entry.hash))
        others.sort()
        stored = main + others
        # Everything derived from the blocks goes; the blocks themselves and the
        # peer address book and bans (not chain state) stay.
        for prefix in (k.INDEX, k.HEIGHT, k.UTXO, k.UNDO, k.TXINDEX, k.ADDR_UTXO,
                       k.ADDR_HISTORY, k.META, SNAPSHOT_PREFIX, k.FINALITY, *k.O2O_PREFIXES):
            keys: list[bytes] = []
            for key in self.db.iterate_keys(prefix):
                keys.append(key)
                if len(keys) >= 50_000:
                    with self.db.write_batch() as batch:
                        for old in keys:
                            batch.delete(old)
                    keys.clear()
            with self.db.write_batch() as batch:
                for old in keys:
                    batch.delete(old)
        self._snapshots.clear()
        fresh = ChainManager(self.db, self.spec, verifier=self.verifier, clock=self.clock)
        self.state = fresh.state
        for done, (height, block_hash) in enumerate(stored, 1):
            block = self.state.get_block(block_hash)
            if block is not None:
                try:
                    self.add_block(block, now=FAR_FUTURE)
                except (BlockInvalid, ChainStateError):
                    pass
            if progress is not None:
                progress(ReindexProgress(done, len(stored), height))
        self._update_finality()
        return self.height

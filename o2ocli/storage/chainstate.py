"""The chainstate: stored blocks, the block index, the UTXO set and indexes.

:class:`ChainState` owns one :class:`~o2ocli.storage.db.Database`.  It stores
every block it accepts, keeps the main chain on the best known branch, and
applies each block with :func:`o2ocli.consensus.block.apply_block`.

Atomicity: connecting or disconnecting one block is one write batch that also
moves the tip pointer, so the tip and the UTXO set always agree; a crash
leaves the state of the previous or the next block, never a mix.  A reorg is a
sequence of such steps; if it is interrupted, the next :meth:`ChainState.activate_best_chain`
(run when the chainstate opens) finishes it.

With a UTXO cache (``dbcache``, :mod:`.coincache`) the same holds on disk
at each flush: the blocks and their index entries are written as they come,
what connecting them changes waits in memory and is written with its tip in
one batch; after a crash the chainstate opens at the last flushed tip and
:meth:`ChainState.activate_best_chain` reconnects the stored blocks above it.
A flush because the cache is full runs in a background thread while the next
blocks connect (:meth:`~.coincache.CachedDatabase.flush_in_background`); the
batch is still one, with its tip, so the same holds.

The parts: :mod:`.blockindex` (index entries, statuses, tip changes),
:mod:`.blockwrites` (what a connect or disconnect writes, undo data),
:mod:`.queries` (index, UTXO summary and O2O reads, mixed in), :mod:`.branches`
(branch choice and the finality guard, mixed in).
"""

from __future__ import annotations

from collections.abc import Callable

from o2ocli.consensus.block import (
    apply_block,
    check_block_links,
    check_block_structure,
    genesis_effects,
)
from o2ocli.consensus.errors import BlockInvalid
from o2ocli.consensus.params import ConsensusParams
from o2ocli.consensus.tx import Verifier, serial_verifier
from o2ocli.core.block import Block, BlockHeader
from o2ocli.core.encoding import DecodeError
from o2ocli.core.tx import Coin, Outpoint, Tx

from . import schema as k
from .blockindex import (
    NO_CHANGE,
    STATUS_INVALID,
    STATUS_STORED,
    STATUS_VALID,
    ChainStateError,
    IndexEntry,
    SchemaMismatch,
    TipChange,
    default_prefer,
)
from .blockwrites import decode_o2o_undo, decode_undo, encode_undo, write_connect, write_disconnect
from .branches import BranchChoice
from .coincache import CachedDatabase
from .db import Database
from .queries import ChainQueries, UtxoStats
from .utxocommit import commitment_after, start_commitment

__all__ = [
    "ChainState",
    "ChainStateError",
    "SchemaMismatch",
    "check_schema",
    "IndexEntry",
    "NO_CHANGE",
    "TipChange",
    "UtxoStats",
    "STATUS_STORED",
    "STATUS_VALID",
    "STATUS_INVALID",
    "default_prefer",
]

RAW_BLOCK_CACHE = 4
"""Block encodings kept in memory for :meth:`ChainState.get_tx` (FIFO)."""


def check_schema(db: Database) -> None:
    """Raise :class:`SchemaMismatch` unless ``db`` was written in this key
    layout (:data:`~o2ocli.storage.schema.SCHEMA_VERSION`)."""
    data = db.get(k.META_SCHEMA)
    version = int.from_bytes(data, "big") if data is not None and len(data) == 4 else None
    if version == k.SCHEMA_VERSION:
        return
    if version is None:
        found = "no readable schema version"
    elif version < k.SCHEMA_VERSION:
        found = f"schema {version}, from an older o2ocli"
    else:
        found = f"schema {version}, from a newer o2ocli"
    raise SchemaMismatch(
        f"the chain database has {found}; this o2ocli uses schema {k.SCHEMA_VERSION} "
        "(run: o2ocli node reindex, with no node running on it: it rebuilds the chainstate "
        "from the stored blocks)"
    )


NEW_COINS = 50_000  # recently created coins ChainState.get may return undecoded (~10 MB)


class ChainState(BranchChoice, ChainQueries):
    """Blocks, block index and UTXO set of one chain in one database.

    ``verifier`` verifies a block's batch of signatures (serial by default; the
    node passes a parallel one).  ``prefer(candidate, current)`` is the fork
    choice rule.  ``dbcache`` (bytes; 0 = none) puts a write-back UTXO cache
    (:mod:`.coincache`) in front of the database: connects then write the
    chainstate to disk only when the cache is full or :meth:`flush` runs.
    """

    def __init__(
        self,
        db: Database,
        params: ConsensusParams,
        genesis: Block,
        *,
        verifier: Verifier = serial_verifier,
        prefer: Callable[[IndexEntry, IndexEntry], bool] = default_prefer,
        activate: bool = True,
        dbcache: int = 0,
    ) -> None:
        self.cache: CachedDatabase | None = CachedDatabase(db, dbcache) if dbcache > 0 else None
        self.db = self.cache if self.cache is not None else db  # type: ignore[assignment]
        self.params = params
        self.verifier = verifier
        self.prefer = prefer
        stored_genesis = db.get(k.META_GENESIS)
        if stored_genesis is None:
            self._init_genesis(genesis)
        elif stored_genesis != genesis.hash:
            raise ChainStateError(
                f"this database belongs to another chain (genesis {stored_genesis.hex()[:16]}…, "
                f"expected {genesis.hash.hex()[:16]}…)"
            )
        else:
            check_schema(db)
        self.genesis_hash = genesis.hash
        tip_hash = db.get(k.META_TIP)
        if tip_hash is None:
            raise ChainStateError("database has no tip; it is damaged (run a reindex)")
        self._tip = self._require_index(tip_hash)
        self._raw_cache: dict[bytes, bytes] = {}
        self._new_coins: dict[bytes, Coin] = {}  # UTXO key → coin (see get)
        self._last_commit: tuple[bytes, bytes] = (b"", b"")
        """(block hash, UTXO commitment record) of the last block connected here,
        so the next connect does not read its parent's record back."""
        self.finalized_height = 0
        self.finalized_hash: bytes | None = None
        """The finalized block (set with :attr:`finalized_height` by the node)."""
        """The node never reorganises below this height (set by the PoA layer)."""
        if activate:  # the PoA layer sets the finalized height first, then activates
            self.activate_best_chain()

    # ------------------------------------------------------------------ reads
    @property
    def tip(self) -> IndexEntry:
        """Index entry of the main chain's last block."""
        return self._tip

    @property
    def height(self) -> int:
        """Height of the tip."""
        return self._tip.height

    def _tip_header(self) -> BlockHeader:
        return self._tip.header

    def _header_of(self, block_hash: bytes) -> BlockHeader:
        entry = self.get_index(block_hash)
        if entry is None:
            raise KeyError(f"block {block_hash.hex()} is unknown")
        return entry.header

    def get(self, outpoint: Outpoint) -> Coin | None:
        """The unspent coin at ``outpoint`` in the tip's UTXO set (a UTXO view);
        not decoded if the cache holds the very bytes object a recently created
        coin encoded to (a spent, flushed or rewritten key holds another one)."""
        key = k.UTXO + outpoint.txid + outpoint.index.to_bytes(4, "big")
        data = self.db.get(key)
        if data is None:
            return None
        coin = self._new_coins.get(key)
        if coin is not None and coin._bytes is data:
            return coin
        return Coin.from_bytes(data)

    def get_index(self, block_hash: bytes) -> IndexEntry | None:
        """The index entry of a stored block, or None."""
        data = self.db.get(k.index_key(block_hash))
        return None if data is None else IndexEntry.from_bytes(data)

    def _require_index(self, block_hash: bytes) -> IndexEntry:
        entry = self.get_index(block_hash)
        if entry is None:
            raise ChainStateError(f"block index entry {block_hash.hex()} is missing")
        return entry

    def get_block(self, block_hash: bytes) -> Block | None:
        """A stored block (main chain or not), or None."""
        data = self.db.get(k.block_key(block_hash))
        return None if data is None else Block.from_bytes(data)

    def get_block_hash(self, height: int) -> bytes | None:
        """Hash of the main-chain block at ``height``, or None."""
        if not 0 <= height <= self._tip.height:
            return None
        return self.db.get(k.height_key(height))

    def is_main_chain(self, entry: IndexEntry) -> bool:
        """True if ``entry`` is on the main chain."""
        return self.get_block_hash(entry.height) == entry.hash

    def has_tx(self, txid: bytes) -> bool:
        """True if ``txid`` is in a main-chain block (one index read, no decoding)."""
        return self.db.get(k.tx_key(txid)) is not None

    def get_tx(self, txid: bytes) -> tuple[Tx, bytes, int] | None:
        """(tx, block hash, height) of a main-chain transaction, or None."""
        data = self.db.get(k.tx_key(txid))
        if data is None:
            return None
        block_hash = data[:32]
        if len(data) < 44:  # schema 1 entries (no offset): decode the block
            block = self.get_block(block_hash)
            if block is None:
                raise ChainStateError(f"tx index points to missing block {block_hash.hex()}")
            return block.txs[int.from_bytes(data[32:36], "little")], block_hash, block.height
        offset = int.from_bytes(data[36:40], "little")
        length = int.from_bytes(data[40:44], "little")
        raw = self._raw_block(block_hash)
        entry = self.get_index(block_hash)
        if raw is None or entry is None or offset + length > len(raw):
            raise ChainStateError(f"tx index points to missing block {block_hash.hex()}")
        # Decode only this transaction, not the whole block.
        return Tx.from_bytes(raw[offset : offset + length]), block_hash, entry.height

    def _raw_block(self, block_hash: bytes) -> bytes | None:
        """A stored block's encoding, through a small cache: reviews and rewards
        look up many txs of the same recent blocks, and a block is immutable
        under its hash."""
        cache = self._raw_cache
        raw = cache.get(block_hash)
        if raw is None:
            raw = self.db.get(k.block_key(block_hash))
            if raw is not None:
                cache[block_hash] = raw
                if len(cache) > RAW_BLOCK_CACHE:
                    cache.pop(next(iter(cache)))
        return raw

    # ---------------------------------------------------------------- writes
    def _init_genesis(self, genesis: Block) -> None:
        effects = genesis_effects(genesis)
        entry = IndexEntry(genesis.header, genesis.header.difficulty, STATUS_VALID)
        with self.db.write_batch() as batch:
            batch.put(k.META_SCHEMA, k.SCHEMA_VERSION.to_bytes(4, "big"))
            batch.put(k.META_GENESIS, genesis.hash)
            batch.put(k.block_key(genesis.hash), genesis.to_bytes())
            batch.put(k.index_key(genesis.hash), entry.to_bytes())
            write_connect(self.db, batch, genesis, effects, self)
            batch.put(k.commit_key(genesis.hash), commitment_after(None, (), effects.created))
            batch.put(k.META_BEST, genesis.hash)

    def add_block(self, block: Block, extra_puts: dict[bytes, bytes] | None = None) -> TipChange:
        """Store ``block`` and move the main chain to the best branch.

        ``extra_puts`` (key → value) are written in the same batch that stores
        the block (the PoA layer stores the block's validator snapshot this way).
        Returns how the tip moved (falsy if it did not).  Raises
        :class:`BlockInvalid` for a block that breaks a rule (the database is then
        unchanged, except that a stored block found invalid during a reorg is
        marked invalid), and :class:`ChainStateError` if its parent is unknown.
        """
        block_hash = block.hash
        known = self.get_index(block_hash)
        if known is not None:
            if known.status == STATUS_INVALID:
                raise BlockInvalid("duplicate-invalid", "block was already found invalid")
            if self.is_main_chain(known) or not self.prefer(known, self._best_candidate()):
                return NO_CHANGE
            # Stored earlier but not on the main chain (e.g. after a rewind).
            with self.db.write_batch() as batch:
                batch.put(k.META_BEST, block_hash)
            return self.activate_best_chain()
        parent = self.get_index(block.header.prev_hash)
        if parent is None:
            raise ChainStateError(
                f"parent {block.header.prev_hash.hex()[:16]}… of block {block_hash.hex()[:16]}… "
                "is unknown"
            )
        if parent.status == STATUS_INVALID:
            raise BlockInvalid("bad-prevblk", "block builds on an invalid block")
        check_block_links(block.header, parent.header)
        check_block_structure(block, self.params)
        entry = IndexEntry(
            block.header, parent.total_difficulty + block.header.difficulty, STATUS_STORED
        )
        best = self._best_candidate()
        if (parent.hash == self._tip.hash and self.prefer(entry, self._tip)
                and self._keeps_finalized(self._tip, entry, [entry])):
            # The common case: the block extends the tip.  Validate it, then store
            # and connect it in one batch; an invalid block leaves no trace.
            self._connect(
                block, entry, store=True, set_best=self.prefer(entry, best), extra=extra_puts
            )
            return TipChange(connected=(block,))
        with self.db.write_batch() as batch:
            batch.put(k.block_key(block_hash), block.to_bytes())
            batch.put(k.index_key(block_hash), entry.to_bytes())
            for key, value in (extra_puts or {}).items():
                batch.put(key, value)
            if self.prefer(entry, best):
                batch.put(k.META_BEST, block_hash)
        return self.activate_best_chain()

    def activate_best_chain(self) -> TipChange:
        """Reorganise onto the best known valid branch if it beats the tip.

        A branch that does not keep the finalized block is never adopted
        (:meth:`_keeps_finalized`).
        Returns how the tip moved.  If a block of the new branch is invalid, it
        is marked invalid, the old branch is restored, and the
        :class:`BlockInvalid` is raised.
        """
        best = self._best_candidate()
        if best.hash == self._tip.hash or not self.prefer(best, self._tip):
            return NO_CHANGE
        branch: list[IndexEntry] = []
        entry = best
        while not self.is_main_chain(entry):
            branch.append(entry)
            entry = self._require_index(entry.header.prev_hash)
            if entry.status == STATUS_INVALID:
                self._mark_invalid(branch)
                return self.activate_best_chain()
        fork = entry
        if not self._keeps_finalized(fork, best, branch):
            with self.db.write_batch() as batch:
                batch.put(k.META_BEST, self._tip.hash)
            return NO_CHANGE
        old_blocks: list[Block] = []
        while self._tip.hash != fork.hash:
            old_blocks.append(self._disconnect_tip())
        connected: list[Block] = []
        for new_entry in reversed(branch):
            block = self.get_block(new_entry.hash)
            if block is None:
                raise ChainStateError(f"block {new_entry.hash.hex()} is missing from storage")
            try:
                self._connect(block, new_entry)
            except BlockInvalid:
                while self._tip.hash != fork.hash:
                    self._disconnect_tip()
                for old in reversed(old_blocks):
                    self._connect(old, self._require_index(old.hash))
                # The invalid block and its descendants on this branch.
                self._mark_invalid(branch[: branch.index(new_entry) + 1])
                raise
            connected.append(block)
        return TipChange(tuple(old_blocks), tuple(connected))

    def _connect(
        self,
        block: Block,
        entry: IndexEntry,
        *,
        store: bool = False,
        set_best: bool = False,
        extra: dict[bytes, bytes] | None = None,
    ) -> None:
        """Validate ``block`` on top of the tip and apply it in one batch (which
        also stores the block itself when ``store`` is set)."""
        if block.header.prev_hash != self._tip.hash:
            raise ChainStateError("block does not extend the tip")
        effects = apply_block(block, self, self.params, self.verifier, self)
        new_entry = entry.with_status(STATUS_VALID)
        prev = block.header.prev_hash
        parent_commit = (self._last_commit[1] if self._last_commit[0] == prev
                         else self.db.get(k.commit_key(prev)))
        if parent_commit is None:
            raise ChainStateError(f"the UTXO commitment of block {prev.hex()} is missing "
                                  "(run: o2ocli node reindex)")
        try:
            # The MuHash products go to a worker (if any) while the writes are built.
            finish_commit = start_commitment(parent_commit, effects.spent, effects.created,
                                             getattr(self.verifier, "muhash", None))
        except DecodeError as exc:
            raise ChainStateError(f"the UTXO commitment of block {prev.hex()} is unreadable "
                                  f"({exc}; run: o2ocli node reindex)") from None
        cache = self.cache
        if cache is None:
            with self.db.write_batch() as batch:
                self._write_stored(batch, block, entry, new_entry, store, set_best, extra)
                batch.put(k.undo_key(block.hash), encode_undo(effects.spent))
                write_connect(self.db, batch, block, effects, self)
                commit = finish_commit()
                batch.put(k.commit_key(block.hash), commit)
        else:
            # The block, its index entry and the best marker go to disk now;
            # what connecting it changes (the commitment too) waits in the cache
            # for the next flush (which writes it with the tip, atomically).
            if store or set_best or entry.status != STATUS_VALID:
                with cache.write_batch() as batch:
                    self._write_stored(batch, block, entry, new_entry, store, set_best, extra)
            with cache.cached_batch() as batch:
                batch.put(k.undo_key(block.hash), encode_undo(effects.spent))
                write_connect(self.db, batch, block, effects, self)
                self._remember_new_coins(effects.created)  # (while a worker hashes)
                commit = finish_commit()
                batch.put(k.commit_key(block.hash), commit)
            if cache.over_limit:
                cache.flush_in_background()
        self._tip = new_entry
        self._last_commit = (block.hash, commit)

    def _remember_new_coins(self, created: tuple[tuple[Outpoint, Coin], ...]) -> None:
        if len(self._new_coins) + len(created) > NEW_COINS:
            self._new_coins.clear()
        self._new_coins.update((k.UTXO + op.txid + op.index.to_bytes(4, "big"), coin)
                               for op, coin in created)

    @staticmethod
    def _write_stored(
        batch: object,
        block: Block,
        entry: IndexEntry,
        new_entry: IndexEntry,
        store: bool,
        set_best: bool,
        extra: dict[bytes, bytes] | None,
    ) -> None:
        put = batch.put  # type: ignore[attr-defined]
        if store:
            put(k.block_key(block.hash), block.to_bytes())
            for key, value in (extra or {}).items():
                put(key, value)
        if set_best:
            put(k.META_BEST, block.hash)
        if entry.status != STATUS_VALID:
            put(k.index_key(block.hash), new_entry.to_bytes())

    def flush(self) -> None:
        """Write the UTXO cache's changes (and the tip) to disk, if there is a cache."""
        if self.cache is not None:
            self.cache.flush()

    def _disconnect_tip(self, *, set_best: bool = False) -> Block:
        """Undo the tip block in one batch; returns the disconnected block.

        The tip's UTXO commitment record goes too: the parent's stored record
        is the new tip's (:mod:`.utxocommit`)."""
        tip = self._tip
        if tip.height == 0:
            raise ChainStateError("cannot disconnect the genesis block")
        block = self.get_block(tip.hash)
        undo_data = self.db.get(k.undo_key(tip.hash))
        if block is None or undo_data is None:
            raise ChainStateError(f"block or undo data of {tip.hash.hex()} is missing")
        try:
            spent = decode_undo(undo_data)
        except DecodeError as exc:
            raise ChainStateError(f"undo data of {tip.hash.hex()} is corrupt: {exc}") from None
        parent = self._require_index(tip.header.prev_hash)
        o2o_undo_data = self.db.get(k.o2o_undo_key(tip.hash))
        try:
            o2o_undo = [] if o2o_undo_data is None else decode_o2o_undo(o2o_undo_data)
        except DecodeError as exc:
            raise ChainStateError(f"O2O undo data of {tip.hash.hex()} is corrupt: {exc}") from None
        cache = self.cache
        if cache is None:
            with self.db.write_batch() as batch:
                write_disconnect(batch, block, spent, o2o_undo)
                batch.delete(k.commit_key(tip.hash))
                batch.put(k.META_TIP, parent.hash)
                if set_best:
                    batch.put(k.META_BEST, parent.hash)
        else:
            with cache.cached_batch() as cached:
                write_disconnect(cached, block, spent, o2o_undo)
                cached.delete(k.commit_key(tip.hash))
                cached.put(k.META_TIP, parent.hash)
            if set_best:  # an operator's rewind: on disk when it returns, as without a cache
                cache.flush()
                with cache.write_batch() as batch:
                    batch.put(k.META_BEST, parent.hash)
            elif cache.over_limit:
                cache.flush_in_background()
        self._tip = parent
        return block

    def disconnect_tip(self) -> Block:
        """Undo the tip block and make its parent the best block (an operator's
        rewind, also used by tests); returns the disconnected block."""
        return self._disconnect_tip(set_best=True)

"""The chainstate: stored blocks, the block index, the UTXO set and indexes.

:class:`ChainState` owns one :class:`~o2ocli.storage.db.Database`.  It stores
every block it accepts, keeps the main chain on the best known branch, and
applies each block with :func:`o2ocli.consensus.block.apply_block`.

Atomicity: connecting or disconnecting one block is one write batch that also
moves the tip pointer, so the tip and the UTXO set always agree; a crash
leaves the state of the previous or the next block, never a mix.  A reorg is a
sequence of such steps; if it is interrupted, the next :meth:`ChainState.activate_best_chain`
(run when the chainstate opens) finishes it.

Block index entry encoding::

    header (full encoding) ‖ total_difficulty:varint ‖ status:u8

``status``: 0 = stored (structure valid, not yet connected), 1 = connected at
least once (fully valid), 2 = invalid (the block or an ancestor broke a rule).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from o2ocli.consensus import consent, escrow, reviews, tokens, trace
from o2ocli.consensus.block import (
    BlockEffects,
    apply_block,
    check_block_links,
    check_block_structure,
    genesis_effects,
)
from o2ocli.consensus.consent import ConsentRecord
from o2ocli.consensus.errors import BlockInvalid
from o2ocli.consensus.o2o import block_writes
from o2ocli.consensus.params import ConsensusParams
from o2ocli.consensus.reviews import ReviewRecord
from o2ocli.consensus.state import O2OEffect, StateKey
from o2ocli.consensus.tokens import TokenRecord
from o2ocli.consensus.trace import ItemRecord
from o2ocli.consensus.tx import Verifier, serial_verifier
from o2ocli.core.block import Block, BlockHeader
from o2ocli.core.encoding import DecodeError, Reader, Writer, varint_size
from o2ocli.core.tx import NATIVE_ASSET, Coin, Outpoint, Tx

from . import schema as k
from .db import Database

__all__ = [
    "ChainState",
    "ChainStateError",
    "IndexEntry",
    "TipChange",
    "UtxoStats",
    "STATUS_STORED",
    "STATUS_VALID",
    "STATUS_INVALID",
]

STATUS_STORED, STATUS_VALID, STATUS_INVALID = 0, 1, 2
RAW_BLOCK_CACHE = 4
"""Block encodings kept in memory for :meth:`ChainState.get_tx` (FIFO)."""


class ChainStateError(Exception):
    """The chainstate cannot do what was asked (unknown parent, wrong chain, …)."""


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """What the node knows about one stored block."""

    header: BlockHeader
    """The block's header."""
    total_difficulty: int
    """Sum of difficulties from genesis to this block, inclusive."""
    status: int
    """One of STATUS_STORED, STATUS_VALID, STATUS_INVALID."""

    @property
    def hash(self) -> bytes:
        """The block hash."""
        return self.header.hash

    @property
    def height(self) -> int:
        """The block height."""
        return self.header.height

    def to_bytes(self) -> bytes:
        """Stored encoding."""
        w = Writer()
        self.header.encode(w)
        w.varint(self.total_difficulty)
        w.u8(self.status)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> IndexEntry:
        """Inverse of :meth:`to_bytes`."""
        r = Reader(data)
        header = BlockHeader.decode(r)
        td = r.varint("total difficulty")
        status = r.u8("status")
        r.finish("index entry")
        return cls(header, td, status)

    def with_status(self, status: int) -> IndexEntry:
        """A copy with another status."""
        return IndexEntry(self.header, self.total_difficulty, status)


@dataclass(frozen=True, slots=True)
class UtxoStats:
    """A summary of the UTXO set that two nodes can compare."""

    height: int
    """Tip height the stats are for."""
    tip: bytes
    """Tip hash the stats are for."""
    hash: bytes
    """SHA-256 over every (key, coin) of the set in key order."""
    count: int
    """Number of unspent outputs."""
    totals: dict[bytes, int]
    """Asset id → sum of unspent amounts."""


@dataclass(frozen=True, slots=True)
class TipChange:
    """How the main chain moved: blocks disconnected (old tip first), then
    blocks connected (oldest first).  Falsy when the tip did not move."""

    disconnected: tuple[Block, ...] = ()
    connected: tuple[Block, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.disconnected or self.connected)


NO_CHANGE = TipChange()


def default_prefer(candidate: IndexEntry, current: IndexEntry) -> bool:
    """Fork choice used until the PoA rules supply theirs: strictly more total
    difficulty wins; on a tie the current tip stays."""
    return candidate.total_difficulty > current.total_difficulty


def _encode_undo(spent: tuple[tuple[Outpoint, Coin], ...]) -> bytes:
    w = Writer()
    w.varint(len(spent))
    for outpoint, coin in spent:
        w.raw(outpoint.to_bytes())
        w.var_bytes(coin.to_bytes())
    return w.getvalue()


def _decode_undo(data: bytes) -> list[tuple[Outpoint, Coin]]:
    r = Reader(data)
    n = r.count("undo entry", 10_000_000)
    out = []
    for _ in range(n):
        outpoint = Outpoint.from_bytes(r.raw(36, "undo outpoint"))
        out.append((outpoint, Coin.from_bytes(r.var_bytes("undo coin", 1 << 20))))
    r.finish("undo data")
    return out


def _encode_o2o_undo(entries: list[tuple[bytes, bytes | None]]) -> bytes:
    w = Writer()
    w.varint(len(entries))
    for key, old in entries:
        w.var_bytes(key)
        w.u8(0 if old is None else 1)
        if old is not None:
            w.var_bytes(old)
    return w.getvalue()


def _decode_o2o_undo(data: bytes) -> list[tuple[bytes, bytes | None]]:
    r = Reader(data)
    n = r.count("o2o undo entry", 10_000_000)
    out: list[tuple[bytes, bytes | None]] = []
    for _ in range(n):
        key = r.var_bytes("o2o undo key", 1024)
        old = r.var_bytes("o2o undo value", 1 << 20) if r.u8("o2o undo flag") else None
        out.append((key, old))
    r.finish("o2o undo data")
    return out


def _o2o_writes(block: Block, changes: O2OEffect, state: object) -> list[tuple[StateKey,
                                                                                 bytes | None]]:
    """A block's O2O writes (:func:`~o2ocli.consensus.o2o.block_writes`) in
    write order (:data:`~o2ocli.storage.schema.O2O_WRITE_ORDER`)."""
    items = block_writes(block.txs, block.height, changes, state)  # type: ignore[arg-type]
    if len(items) > 1:
        order = k.O2O_WRITE_ORDER
        last = len(order)
        items.sort(key=lambda item: order.get(item[0][0], last))
    return items


class ChainState:
    """Blocks, block index and UTXO set of one chain in one database.

    ``verifier`` verifies a block's batch of signatures (serial by default; the
    node passes a parallel one).  ``prefer(candidate, current)`` is the fork
    choice rule.
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
    ) -> None:
        self.db = db
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
        self.genesis_hash = genesis.hash
        tip_hash = db.get(k.META_TIP)
        if tip_hash is None:
            raise ChainStateError("database has no tip; it is damaged (run a reindex)")
        self._tip = self._require_index(tip_hash)
        self._raw_cache: dict[bytes, bytes] = {}
        self.finalized_height = 0
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

    def get(self, outpoint: Outpoint) -> Coin | None:
        """The unspent coin at ``outpoint`` in the tip's UTXO set (a UTXO view)."""
        data = self.db.get(k.UTXO + outpoint.txid + outpoint.index.to_bytes(4, "big"))
        return None if data is None else Coin.from_bytes(data)

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

    def address_coins(self, pubkey_hash: bytes) -> list[tuple[Outpoint, Coin]]:
        """Unspent outputs whose lock involves ``pubkey_hash``."""
        result = []
        for key in self.db.iterate_keys(k.ADDR_UTXO + pubkey_hash):
            outpoint = Outpoint.from_bytes(key[21:])
            coin = self.get(outpoint)
            if coin is not None:
                result.append((outpoint, coin))
        return result

    def address_history(self, pubkey_hash: bytes) -> list[tuple[int, bytes]]:
        """(height, txid) of main-chain txs touching ``pubkey_hash``, oldest first."""
        prefix = k.ADDR_HISTORY + pubkey_hash
        return [
            (int.from_bytes(key[21:25], "big"), key[25:57])
            for key in self.db.iterate_keys(prefix)
        ]

    # ---------------------------------------------------- O2O state (consensus)
    def read(self, key: StateKey) -> bytes | None:
        """The O2O state value under ``key`` (namespace, id), or None."""
        return self.db.get(k.O2O_NAMESPACES[key[0]] + key[1])

    def main_tx(self, txid: bytes) -> tuple[Tx, int] | None:
        """A main-chain tx and its height, or None."""
        found = self.get_tx(txid)
        return None if found is None else (found[0], found[2])

    # ------------------------------------------------------- O2O query helpers
    def token(self, asset: bytes) -> TokenRecord | None:
        """The registry record of token ``asset``, or None."""
        return tokens.read_token(self, asset)

    def rewarded_by(self, asset: bytes, ref: bytes) -> bytes | None:
        """Txid of the reward that paid ``asset`` for ``ref``, or None."""
        return tokens.rewarded_by(self, asset, ref)

    def review_of_purchase(self, purchase: bytes) -> bytes | None:
        """Txid of the review of ``purchase``, or None."""
        return reviews.review_of_purchase(self, purchase)

    def review(self, txid: bytes) -> ReviewRecord | None:
        """The record of review ``txid``, or None."""
        return reviews.read_review(self, txid)

    def reply_of(self, review: bytes) -> bytes | None:
        """Txid of the reply to ``review``, or None."""
        return reviews.reply_of(self, review)

    def iter_tokens(self) -> Iterator[TokenRecord]:
        """Every issued token, in asset id order."""
        for _, value in self.db.iterate(k.O2O_NAMESPACES[tokens.TOKEN.name]):
            yield TokenRecord.from_bytes(value)

    def item(self, asset: bytes) -> ItemRecord | None:
        """The registration of item ``asset``, or None."""
        return trace.read_item(self, asset)

    def consent(self, txid: bytes) -> ConsentRecord | None:
        """The consent grant ``txid``, or None."""
        return consent.read_consent(self, txid)

    def revoked_by(self, grant: bytes) -> bytes | None:
        """Txid of the revocation of ``grant``, or None."""
        return consent.revoked_by(self, grant)

    def _index_keys(self, namespace: str, ident: bytes) -> Iterator[bytes]:
        """Ids (without ``ident``) of the index entries under ``namespace`` ‖ ``ident``."""
        prefix = k.O2O_NAMESPACES[namespace] + ident
        skip = len(prefix)
        for key in self.db.iterate_keys(prefix):
            yield key[skip:]

    def item_moves(self, asset: bytes) -> list[tuple[int, bytes]]:
        """(height, txid) of every main-chain tx that moved item ``asset``, oldest first."""
        return [(int.from_bytes(rest[:4], "big"), rest[4:36])
                for rest in self._index_keys(trace.ITEM_MOVES.name, asset)]

    def consents_by(self, prefix: bytes, pkh: bytes) -> list[bytes]:
        """Grant txids by user (``prefix`` ``k.BY_USER``) or grantee (``k.BY_GRANTEE``)."""
        return [key[25:57] for key in self.db.iterate_keys(prefix + pkh)]

    def escrow_settlement(self, outpoint: Outpoint) -> tuple[bytes, int] | None:
        """(spending txid, path) of a settled escrow output, or None."""
        return escrow.read_settlement(self, outpoint.to_bytes())

    def token_of_authority(self, authority: bytes) -> TokenRecord | None:
        """The token whose mint authority asset is ``authority``, or None."""
        asset = self.read((tokens.TOKEN_AUTHORITY.name, authority))
        return None if asset is None else self.token(asset)

    def asset_coins(self, asset: bytes) -> list[tuple[Outpoint, Coin]]:
        """Unspent outputs of a non-native ``asset``."""
        result = []
        for key in self.db.iterate_keys(k.ASSET_UTXO + asset):
            outpoint = Outpoint.from_bytes(key[33:])
            coin = self.get(outpoint)
            if coin is not None:
                result.append((outpoint, coin))
        return result

    def reviews_by_merchant(self, merchant: bytes) -> list[bytes]:
        """Txids of the reviews of ``merchant``, oldest first."""
        return [rest[4:36] for rest in self._index_keys(reviews.REVIEWS_BY_MERCHANT.name,
                                                        merchant)]

    def reviews_by_reviewer(self, reviewer: bytes) -> list[bytes]:
        """Txids of the reviews written by ``reviewer``, oldest first."""
        return [rest[4:36] for rest in self._index_keys(reviews.REVIEWS_BY_REVIEWER.name,
                                                        reviewer)]

    def iter_utxos(self) -> Iterator[tuple[Outpoint, Coin]]:
        """Every unspent output, in key order."""
        for key, value in self.db.iterate(k.UTXO):
            yield Outpoint.from_bytes(key[1:]), Coin.from_bytes(value)

    def utxo_stats(self) -> UtxoStats:
        """Hash, count and per-asset totals of the UTXO set.

        The hash is SHA-256 over ``key ‖ var_bytes(coin)`` of every entry in key
        order (LevelDB's sorted order), so the same set gives the same hash on
        every machine whatever order the coins were added in.
        """
        h = hashlib.sha256()
        count = 0
        totals: dict[bytes, int] = {}
        for key, value in self.db.iterate(k.UTXO):
            w = Writer()
            w.raw(key[1:])
            w.var_bytes(value)
            h.update(w.getvalue())
            count += 1
            coin = Coin.from_bytes(value)
            totals[coin.output.asset] = totals.get(coin.output.asset, 0) + coin.output.amount
        return UtxoStats(self._tip.height, self._tip.hash, h.digest(), count, totals)

    def utxo_set_hash(self) -> bytes:
        """Just the hash part of :meth:`utxo_stats`."""
        return self.utxo_stats().hash

    # ---------------------------------------------------------------- writes
    def _init_genesis(self, genesis: Block) -> None:
        effects = genesis_effects(genesis)
        entry = IndexEntry(genesis.header, genesis.header.difficulty, STATUS_VALID)
        with self.db.write_batch() as batch:
            batch.put(k.META_SCHEMA, k.SCHEMA_VERSION.to_bytes(4, "big"))
            batch.put(k.META_GENESIS, genesis.hash)
            batch.put(k.block_key(genesis.hash), genesis.to_bytes())
            batch.put(k.index_key(genesis.hash), entry.to_bytes())
            self._write_connect(batch, genesis, effects)
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
        if parent.hash == self._tip.hash and self.prefer(entry, self._tip):
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

    def _best_candidate(self) -> IndexEntry:
        best_hash = self.db.get(k.META_BEST)
        best = self.get_index(best_hash) if best_hash else None
        if best is None or best.status == STATUS_INVALID:
            return self._tip
        return best

    def activate_best_chain(self) -> TipChange:
        """Reorganise onto the best known valid branch if it beats the tip.

        A branch that forks below :attr:`finalized_height` is never adopted.
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
        if fork.height < self.finalized_height:
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

    def _mark_invalid(self, entries: list[IndexEntry]) -> None:
        """Mark ``entries`` invalid and point the best-block marker at the best
        stored block that is still valid (the old tip, usually)."""
        with self.db.write_batch() as batch:
            for entry in entries:
                batch.put(k.index_key(entry.hash), entry.with_status(STATUS_INVALID).to_bytes())
        best = self._best_valid_leaf()
        with self.db.write_batch() as batch:
            batch.put(k.META_BEST, best.hash)

    def _best_valid_leaf(self) -> IndexEntry:
        """The most preferred stored block with no invalid block at or below it
        (a scan of the block index: only run after something was found invalid)."""
        best = self._tip
        verdict: dict[bytes, bool] = {}

        def valid(entry: IndexEntry) -> bool:
            path = []
            ok = True
            while True:
                known = verdict.get(entry.hash)
                if known is not None:
                    ok = known
                    break
                if entry.status == STATUS_INVALID:
                    ok = False
                    break
                path.append(entry.hash)
                if self.is_main_chain(entry) or entry.height == 0:
                    break
                parent = self.get_index(entry.header.prev_hash)
                if parent is None:
                    ok = False
                    break
                entry = parent
            for h in path:
                verdict[h] = ok
            return ok

        for _, value in self.db.iterate(k.INDEX):
            entry = IndexEntry.from_bytes(value)
            if valid(entry) and self.prefer(entry, best):
                best = entry
        return best

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
        with self.db.write_batch() as batch:
            if store:
                batch.put(k.block_key(block.hash), block.to_bytes())
                for key, value in (extra or {}).items():
                    batch.put(key, value)
            if set_best:
                batch.put(k.META_BEST, block.hash)
            batch.put(k.undo_key(block.hash), _encode_undo(effects.spent))
            if entry.status != STATUS_VALID:
                batch.put(k.index_key(block.hash), new_entry.to_bytes())
            self._write_connect(batch, block, effects)
        self._tip = new_entry

    def _write_connect(self, batch: object, block: Block, effects: BlockEffects) -> None:
        put = batch.put  # type: ignore[attr-defined]
        delete = batch.delete  # type: ignore[attr-defined]
        height = block.height
        spent_coins = dict(effects.spent)
        for outpoint, coin in effects.spent:
            key = outpoint.to_bytes()
            delete(k.UTXO + key)
            for address in coin.output.lock.addresses():
                delete(k.ADDR_UTXO + address + key)
            if coin.output.asset != NATIVE_ASSET:
                delete(k.ASSET_UTXO + coin.output.asset + key)
        for outpoint, coin in effects.created:
            key = outpoint.to_bytes()
            put(k.UTXO + key, coin.to_bytes())
            for address in coin.output.lock.addresses():
                put(k.ADDR_UTXO + address + key, b"")
            if coin.output.asset != NATIVE_ASSET:
                put(k.ASSET_UTXO + coin.output.asset + key, b"")
        o2o_writes = _o2o_writes(block, effects.o2o, self)
        if o2o_writes:
            # Generic: each (namespace, id) → value, with the previous value as undo.
            prefixes = k.O2O_NAMESPACES
            db_get = self.db.get
            undo: list[tuple[bytes, bytes | None]] = []
            for (namespace, ident), value in o2o_writes:
                key = prefixes[namespace] + ident
                undo.append((key, db_get(key)))
                if value is None:
                    delete(key)
                else:
                    put(key, value)
            put(k.o2o_undo_key(block.hash), _encode_o2o_undo(undo))
        offset = len(block.header.to_bytes()) + varint_size(len(block.txs))
        for position, tx in enumerate(block.txs):
            txid = tx.txid
            size = tx.size
            put(k.tx_key(txid), block.hash + position.to_bytes(4, "little")
                + offset.to_bytes(4, "little") + size.to_bytes(4, "little"))
            offset += size
            for address in _tx_addresses(tx, block, spent_coins):
                put(k.addr_history_key(address, height, txid), b"")
        put(k.height_key(height), block.hash)
        put(k.META_TIP, block.hash)

    def _disconnect_tip(self, *, set_best: bool = False) -> Block:
        """Undo the tip block in one batch; returns the disconnected block."""
        tip = self._tip
        if tip.height == 0:
            raise ChainStateError("cannot disconnect the genesis block")
        block = self.get_block(tip.hash)
        undo_data = self.db.get(k.undo_key(tip.hash))
        if block is None or undo_data is None:
            raise ChainStateError(f"block or undo data of {tip.hash.hex()} is missing")
        try:
            spent = _decode_undo(undo_data)
        except DecodeError as exc:
            raise ChainStateError(f"undo data of {tip.hash.hex()} is corrupt: {exc}") from None
        spent_coins = dict(spent)
        parent = self._require_index(tip.header.prev_hash)
        o2o_undo_data = self.db.get(k.o2o_undo_key(tip.hash))
        try:
            o2o_undo = [] if o2o_undo_data is None else _decode_o2o_undo(o2o_undo_data)
        except DecodeError as exc:
            raise ChainStateError(f"O2O undo data of {tip.hash.hex()} is corrupt: {exc}") from None
        with self.db.write_batch() as batch:
            # Restore in reverse order, so a key written twice gets its oldest value.
            for key, old in reversed(o2o_undo):
                if old is None:
                    batch.delete(key)
                else:
                    batch.put(key, old)
            if o2o_undo_data is not None:
                batch.delete(k.o2o_undo_key(tip.hash))
            for tx in block.txs:
                txid = tx.txid
                for index, out in enumerate(tx.outputs):
                    key = txid + index.to_bytes(4, "big")
                    batch.delete(k.UTXO + key)
                    for address in out.lock.addresses():
                        batch.delete(k.ADDR_UTXO + address + key)
                    if out.asset != NATIVE_ASSET:
                        batch.delete(k.ASSET_UTXO + out.asset + key)
                batch.delete(k.tx_key(txid))
                for address in _tx_addresses(tx, block, spent_coins):
                    batch.delete(k.addr_history_key(address, tip.height, txid))
            for outpoint, coin in spent:
                key = outpoint.to_bytes()
                batch.put(k.UTXO + key, coin.to_bytes())
                for address in coin.output.lock.addresses():
                    batch.put(k.ADDR_UTXO + address + key, b"")
                if coin.output.asset != NATIVE_ASSET:
                    batch.put(k.ASSET_UTXO + coin.output.asset + key, b"")
            batch.delete(k.undo_key(tip.hash))
            batch.delete(k.height_key(tip.height))
            batch.put(k.META_TIP, parent.hash)
            if set_best:
                batch.put(k.META_BEST, parent.hash)
        self._tip = parent
        return block

    def disconnect_tip(self) -> Block:
        """Undo the tip block and make its parent the best block (an operator's
        rewind, also used by tests); returns the disconnected block."""
        return self._disconnect_tip(set_best=True)


def _tx_addresses(tx: Tx, block: Block, spent_coins: dict[Outpoint, Coin]) -> set[bytes]:
    """Addresses a tx touches: its outputs' and the spent coins' lock addresses."""
    addresses: set[bytes] = set()
    for out in tx.outputs:
        addresses.update(out.lock.addresses())
    block_txs: dict[bytes, Tx] | None = None
    for txin in tx.inputs:
        coin = spent_coins.get(txin.prevout)
        if coin is not None:
            addresses.update(coin.output.lock.addresses())
            continue
        # Spent an output created earlier in the same block.
        if block_txs is None:
            block_txs = {t.txid: t for t in block.txs}
        earlier = block_txs[txin.prevout.txid]
        addresses.update(earlier.outputs[txin.prevout.index].lock.addresses())
    return addresses

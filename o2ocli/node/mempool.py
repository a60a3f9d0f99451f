"""The transaction memory pool: unconfirmed transactions waiting for a block.

A transaction is accepted when it is fully valid for the next block (height
``chain.height + 1``) against the *mempool view*: the tip's UTXO set minus the
coins mempool transactions spend, plus the outputs of mempool transactions that
no other mempool transaction spends.  Chains of unconfirmed transactions are
therefore allowed.  On top of the consensus rules the pool applies policy:

* no double spend of an input another mempool tx spends (no replacement);
* a minimum fee rate (base units per 1000 bytes);
* a size cap: when the pool would exceed ``max_bytes``, the transactions with
  the lowest fee rate (newest first on a tie) are evicted with their
  descendants; if the newcomer would be among them it is refused instead;
* an expiry age;
* one pending tx per one-time O2O claim (a token symbol, the review of a
  purchase, the reply to a review, a token's reward for a purchase): a second
  tx with the same claim is refused as ``txn-mempool-conflict``.  After every
  block the O2O txs are checked again against the new tip (a review's window
  may have closed, a claim may have been taken by the block), and dropped if
  they no longer pass.

Every refusal is a :class:`MempoolError` (consensus failures are wrapped with
their :class:`~o2ocli.consensus.errors.TxInvalid` reason and message) and a
refused transaction changes nothing.

:meth:`Mempool.accept_many` checks a batch as if each tx were passed to
:meth:`Mempool.accept` in turn (same results, same final state) but verifies
all the batch's signatures in one verifier call.

The pool is not thread safe: the node calls it from one thread (or under a lock).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from o2ocli.consensus.errors import TxInvalid
from o2ocli.consensus.locks import SigCheck
from o2ocli.consensus.o2o import o2o_claims
from o2ocli.consensus.params import ConsensusParams
from o2ocli.consensus.state import StateKey
from o2ocli.consensus.tx import (
    Verifier,
    check_lock_height,
    check_transaction,
    check_tx_inputs,
    resolve_inputs,
    serial_verifier,
)
from o2ocli.core.block import Block
from o2ocli.core.locks import Escrow
from o2ocli.core.payloads import TokenMint
from o2ocli.core.tx import Coin, Outpoint, Tx

from .mempool_o2o import PendingO2O
from .mempool_select import plan_eviction, select_for_block
from .mempool_types import (
    BatchView,
    ChainView,
    MempoolEntry,
    MempoolError,
    Prepared,
    failing_signatures,
)

__all__ = ["ChainView", "Mempool", "MempoolEntry", "MempoolError"]

DEFAULT_MAX_BYTES = 300_000_000
DEFAULT_EXPIRY = 14 * 24 * 3600


class Mempool:
    """Unconfirmed transactions valid on top of ``chain``'s tip.

    ``chain`` is anything with ``get(outpoint)``, ``height`` and ``has_tx(txid)``
    (a :class:`~o2ocli.storage.chainstate.ChainState`).  The node keeps the pool
    in step with the chain: :meth:`remove_for_block` after each connected block,
    :meth:`readd_txs` after blocks were disconnected.
    """

    def __init__(
        self,
        chain: ChainView,
        params: ConsensusParams,
        *,
        min_fee_rate: int,
        max_bytes: int = DEFAULT_MAX_BYTES,
        expiry: int = DEFAULT_EXPIRY,
        verifier: Verifier = serial_verifier,
    ) -> None:
        self.chain = chain
        self.params = params
        self.min_fee_rate = min_fee_rate
        self.max_bytes = max_bytes
        self.expiry = expiry
        self.verifier = verifier
        self._entries: dict[bytes, MempoolEntry] = {}
        """txid → entry, in insertion order."""
        self._order: dict[bytes, int] = {}
        """txid → insertion sequence number."""
        self._spenders: dict[Outpoint, bytes] = {}
        """outpoint → txid of the mempool tx spending it."""
        self._children: dict[bytes, set[bytes]] = {}
        """txid → mempool txs spending one of its outputs."""
        self._parents: dict[bytes, set[bytes]] = {}
        """txid → mempool txs whose outputs it spends."""
        self._o2o = PendingO2O(chain, params)
        """O2O claims, pending mints, txs to re-check after each block."""
        self._evict_heap: list[tuple[int, int, bytes]] = []
        """(fee_rate, -sequence, txid), lazily pruned: lowest rate, newest first."""
        self._seq = 0
        self._total_bytes = 0

    # ------------------------------------------------------------------ reads
    def __contains__(self, txid: object) -> bool:
        return txid in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def total_bytes(self) -> int:
        """Sum of the sizes of the pool's transactions."""
        return self._total_bytes

    def get_entry(self, txid: bytes) -> MempoolEntry | None:
        """The entry of a mempool tx, or None."""
        return self._entries.get(txid)

    def entries(self) -> list[MempoolEntry]:
        """All entries, in the order they entered the pool."""
        return list(self._entries.values())

    def claimed(self, claim: StateKey) -> bytes | None:
        """Txid of the mempool tx holding O2O claim ``claim`` (see
        :func:`~o2ocli.consensus.o2o.o2o_claims`), or None."""
        return self._o2o.claims.get(claim)

    def spender_of(self, outpoint: Outpoint) -> bytes | None:
        """Txid of the mempool tx spending ``outpoint``, or None."""
        return self._spenders.get(outpoint)

    def get(self, outpoint: Outpoint) -> Coin | None:
        """The mempool view: the coin at ``outpoint`` if it exists on the chain or
        as a mempool tx's output and no mempool tx spends it."""
        if outpoint in self._spenders:
            return None
        return self._unspent_coin(outpoint)

    def _unspent_coin(self, outpoint: Outpoint) -> Coin | None:
        """:meth:`get` without the spent check."""
        entry = self._entries.get(outpoint.txid)
        if entry is None:
            return self.chain.get(outpoint)
        outputs = entry.tx.outputs
        if outpoint.index < len(outputs):
            return Coin(outputs[outpoint.index], self.chain.height + 1, False)
        return None

    def descendants(self, txid: bytes) -> set[bytes]:
        """Every mempool tx spending (directly or not) an output of ``txid``
        (``txid`` itself excluded)."""
        found: set[bytes] = set()
        stack = list(self._children.get(txid, ()))
        while stack:
            child = stack.pop()
            if child not in found:
                found.add(child)
                stack.extend(self._children.get(child, ()))
        return found

    # ---------------------------------------------------------------- accept
    def accept(self, tx: Tx, now: int) -> MempoolEntry:
        """Add ``tx`` or raise :class:`MempoolError` (the pool is then unchanged)."""
        result = self._accept_batch([tx], now)[0]
        if isinstance(result, MempoolError):
            raise result
        return result

    def accept_many(self, txs: list[Tx], now: int) -> list[MempoolEntry | MempoolError]:
        """Accept a batch; one result per tx, in order.

        The results and the final pool are those of calling :meth:`accept` on
        each tx in turn (a tx may spend an earlier one of the batch), but the
        signatures of the whole batch are verified in one verifier call (more
        only if some fail, to find which).  One difference, under the size cap
        only: a tx refused as conflicting with an earlier tx of the batch stays
        refused even if that tx is evicted later in the same batch.
        """
        return self._accept_batch(txs, now)

    def _accept_batch(
        self, txs: list[Tx], now: int, *, readd: bool = False
    ) -> list[MempoolEntry | MempoolError]:
        """``readd``: txs of disconnected blocks (no minimum fee rate; they may
        already have children in the pool)."""
        bad_sigs: dict[int, MempoolError] = {}
        sig_ok: set[int] = set()
        while True:
            results, prepared = self._precheck_batch(txs, bad_sigs, not readd)
            pending = [p for p in prepared if p.index not in sig_ok]
            failed = failing_signatures(pending, self.verifier)
            for p in pending:
                if p.index in failed:
                    bad_sigs[p.index] = MempoolError(
                        "bad-txns-signature",
                        "a witness signature does not verify",
                        consensus=True,
                    )
                else:
                    sig_ok.add(p.index)
            if not failed:
                break
            # Txs after a bad one may have been refused for spending its outputs
            # or the same coins: check the batch again without it.
        final: list[MempoolEntry | MempoolError] = []
        height = self.chain.height
        evicted = False
        refused: set[bytes] = set()
        by_index = {p.index: p for p in prepared}
        for i, result in enumerate(results):
            p = by_index.get(i)
            if p is None:
                assert result is not None
                final.append(result)
                continue
            if evicted or any(txin.prevout.txid in refused for txin in p.tx.inputs):
                # An eviction, or a refusal at the size cap, of an earlier tx of the
                # batch may have taken a parent: never admit an orphan.
                missing = self._missing_input(p.tx)
                if missing is not None:
                    refused.add(p.tx.txid)
                    final.append(missing)
                    continue
            size = p.tx.size
            entry = MempoolEntry(p.tx, p.tx.txid, p.fee, size, p.fee * 1000 // size, now, height)
            try:
                evicted |= self._insert_capped(entry, readd)
            except MempoolError as exc:
                refused.add(p.tx.txid)
                final.append(exc)
                continue
            final.append(entry)
        self._o2o.escrow_seen.clear()
        return final

    def _precheck_batch(
        self, txs: list[Tx], bad_sigs: dict[int, MempoolError], check_fee: bool
    ) -> tuple[list[MempoolError | None], list[Prepared]]:
        """Every rule but the signatures and the size cap, in batch order, each tx
        against the pool plus the earlier batch txs that passed (minus ``bad_sigs``)."""
        batch_txs: dict[bytes, Tx] = {}
        batch_spent: dict[Outpoint, bytes] = {}
        batch_claims: dict[StateKey, bytes] = {}
        self._o2o.batch_mint = {}
        view = BatchView(self._unspent_coin, self.chain, batch_txs)
        results: list[MempoolError | None] = []
        prepared: list[Prepared] = []
        for i, tx in enumerate(txs):
            bad = bad_sigs.get(i)
            if bad is None:
                try:
                    fee, checks = self._precheck(tx, view, batch_spent, check_fee)
                    self._o2o.check_claims(tx, batch_claims)
                except MempoolError as exc:
                    bad = exc
            results.append(bad)
            if bad is None:
                txid = tx.txid
                batch_txs[txid] = tx
                for txin in tx.inputs:
                    batch_spent[txin.prevout] = txid
                for claim in o2o_claims(tx):
                    batch_claims[claim] = txid
                prepared.append(Prepared(i, tx, fee, checks))
        return results, prepared

    def _precheck(
        self, tx: Tx, view: BatchView, batch_spent: dict[Outpoint, bytes], check_fee: bool
    ) -> tuple[int, list[SigCheck]]:
        """Rules for one tx, cheapest first; returns (fee, signature checks)."""
        txid = tx.txid
        if txid in self._entries or txid in view.txs:
            raise MempoolError("txn-already-in-mempool", f"tx {txid.hex()} is already in the pool")
        if self.chain.has_tx(txid):
            raise MempoolError("txn-already-known", f"tx {txid.hex()} is already confirmed")
        try:
            check_transaction(tx, self.params)
            if tx.is_coinbase:
                raise TxInvalid("bad-txns-coinbase", "a fee claim is only valid inside a block")
            for txin in tx.inputs:
                prevout = txin.prevout
                other = self._spenders.get(prevout) or batch_spent.get(prevout)
                if other is not None:
                    raise MempoolError(
                        "txn-mempool-conflict",
                        f"input {prevout} is already spent by mempool tx {other.hex()}",
                        conflict=other,
                    )
            coins = resolve_inputs(tx, view)
            fee, checks = check_tx_inputs(
                tx, coins, self.chain.height + 1, self.params, self.chain  # type: ignore[arg-type]
            )
            if isinstance(tx.payload, TokenMint):
                self._o2o.check_pending_supply(tx.payload)
            if any(type(c.output.lock) is Escrow for c in coins):
                self._o2o.escrow_seen.add(txid)
        except TxInvalid as exc:
            raise MempoolError.from_invalid(exc) from None
        size = tx.size
        if check_fee and fee * 1000 < self.min_fee_rate * size:
            required = -(-self.min_fee_rate * size // 1000)
            raise MempoolError(
                "min-relay-fee-not-met",
                f"fee {fee} is below the required {required} "
                f"({self.min_fee_rate} per 1000 bytes for {size} bytes)",
            )
        return fee, checks

    def _missing_input(self, tx: Tx) -> MempoolError | None:
        """After an eviction: refuse ``tx`` if a mempool parent it spends is gone."""
        for txin in tx.inputs:
            prevout = txin.prevout
            if prevout.txid not in self._entries and self.chain.get(prevout) is None:
                return MempoolError(
                    "bad-txns-inputs-missingorspent",
                    f"input {prevout} is missing or spent (its tx was evicted)",
                )
        return None

    # ------------------------------------------------------- insert / remove
    def _insert_capped(self, entry: MempoolEntry, link_children: bool) -> bool:
        """Insert ``entry``, first evicting what the size cap requires; raises
        ``mempool-full`` (changing nothing) if ``entry`` would be evicted itself.
        Returns True if anything was evicted."""
        need = self._total_bytes + entry.size - self.max_bytes
        if need <= 0:
            self._insert(entry, link_children)
            return False
        parents = {txin.prevout.txid for txin in entry.tx.inputs} & self._entries.keys()
        planned = plan_eviction(self._evict_heap, self._order, self._entries, self.descendants,
                                (entry.fee_rate, -(self._seq + 1)), parents, need)
        if planned is None:
            raise MempoolError(
                "mempool-full",
                f"the pool is full and the fee rate {entry.fee_rate} is too low to enter it",
            )
        for txid in planned:
            self._remove(txid)
        self._insert(entry, link_children)
        return True

    def _insert(self, entry: MempoolEntry, link_children: bool) -> None:
        txid = entry.txid
        self._seq += 1
        self._entries[txid] = entry
        self._order[txid] = self._seq
        parents: set[bytes] = set()
        for txin in entry.tx.inputs:
            prevout = txin.prevout
            self._spenders[prevout] = txid
            if prevout.txid in self._entries:
                parents.add(prevout.txid)
                self._children.setdefault(prevout.txid, set()).add(txid)
        # Txs re-added after a disconnect may already have children in the pool.
        children: set[bytes] = set()
        if link_children:
            for index in range(len(entry.tx.outputs)):
                child = self._spenders.get(Outpoint(txid, index))
                if child is not None:
                    children.add(child)
                    self._parents.setdefault(child, set()).add(txid)
        if parents:
            self._parents[txid] = parents
        if children:
            self._children[txid] = children
        self._o2o.added(entry)
        self._total_bytes += entry.size
        heapq.heappush(self._evict_heap, (entry.fee_rate, -self._seq, txid))

    def _remove(self, txid: bytes) -> MempoolEntry | None:
        """Remove one tx (its children stay, now without this parent)."""
        entry = self._entries.pop(txid, None)
        if entry is None:
            return None
        del self._order[txid]
        for txin in entry.tx.inputs:
            if self._spenders.get(txin.prevout) == txid:
                del self._spenders[txin.prevout]
        for parent in self._parents.pop(txid, ()):
            siblings = self._children.get(parent)
            if siblings is not None:
                siblings.discard(txid)
                if not siblings:
                    del self._children[parent]
        for child in self._children.pop(txid, ()):
            others = self._parents.get(child)
            if others is not None:
                others.discard(txid)
                if not others:
                    del self._parents[child]
        self._o2o.removed(entry)
        self._total_bytes -= entry.size
        heap = self._evict_heap
        if len(heap) > 2 * len(self._entries) + 1024:
            self._evict_heap = [item for item in heap if self._order.get(item[2]) == -item[1]]
            heapq.heapify(self._evict_heap)
        return entry

    def _remove_trees(self, txids: Iterable[bytes]) -> list[bytes]:
        """Remove ``txids`` and all their descendants; returns the removed txids
        (pool order)."""
        doomed: set[bytes] = set()
        for txid in txids:
            if txid in self._entries and txid not in doomed:
                doomed.add(txid)
                doomed |= self.descendants(txid)
        removed = [txid for txid in self._entries if txid in doomed]
        for txid in removed:
            self._remove(txid)
        return removed

    # ------------------------------------------------------ chain following
    def remove_for_block(self, block: Block) -> list[bytes]:
        """Update the pool after ``block`` connected to the chain.

        The block's txs leave the pool (their mempool children stay: they now
        spend confirmed coins); mempool txs spending a coin the block spent are
        removed with all their descendants.  Returns only those *conflicting*
        txids (with descendants), in pool order.
        """
        if not self._entries:
            return []  # nothing to reconcile (the common case while syncing)
        for tx in block.txs:
            self._remove(tx.txid)
        conflicts: list[bytes] = []
        for tx in block.txs:
            for txin in tx.inputs:
                spender = self._spenders.get(txin.prevout)
                if spender is not None:
                    conflicts.append(spender)
        conflicts.extend(self._o2o.stale(self._entries, self._unspent_coin))
        return self._remove_trees(conflicts)

    def readd_txs(self, txs: list[Tx], now: int) -> None:
        """Put back the txs of disconnected blocks (oldest block first, in block
        order), skipping fee claims; those no longer valid are dropped silently.
        The minimum fee rate does not apply to them (they were mined once); the
        size cap does.  Then :meth:`revalidate` drops mempool txs that no longer
        fit the chain."""
        self._accept_batch([tx for tx in txs if not tx.is_coinbase], now, readd=True)
        self.revalidate()

    def revalidate(self) -> list[bytes]:
        """Drop txs that are no longer valid on the chain's tip (an input neither
        in the pool nor unspent on the chain, a lock height above the next block,
        or already confirmed), with their descendants; returns the dropped txids
        (pool order)."""
        next_height = self.chain.height + 1
        stale: list[bytes] = []
        for txid, entry in self._entries.items():
            tx = entry.tx
            try:
                check_lock_height(tx, next_height)
            except TxInvalid:
                stale.append(txid)
                continue
            for txin in tx.inputs:
                prevout = txin.prevout
                if prevout.txid in self._entries:
                    continue
                if self.chain.get(prevout) is None:
                    stale.append(txid)
                    break
        stale.extend(self._o2o.stale(self._entries, self._unspent_coin))
        return self._remove_trees(stale)

    def drop(self, txids: Iterable[bytes]) -> list[bytes]:
        """Remove ``txids`` and their descendants (e.g. a tx the producer found
        invalid in a block); returns the removed txids (pool order)."""
        return self._remove_trees(txids)

    def expire(self, now: int) -> list[bytes]:
        """Drop txs that entered the pool more than ``expiry`` seconds before
        ``now``, with their descendants; returns the dropped txids (pool order)."""
        cutoff = now - self.expiry
        return self._remove_trees([t for t, e in self._entries.items() if e.time < cutoff])

    # ------------------------------------------------------------- mining
    def block_template(self, max_bytes: int, max_txs: int) -> list[MempoolEntry]:
        """Txs for the next block, in a valid block order.

        Highest fee rate first (oldest first on a tie), but a tx only once all
        its mempool parents are in; a tx that does not fit in ``max_bytes``
        (sum of tx sizes) is skipped with its descendants, and at most
        ``max_txs`` are taken.
        """
        return select_for_block(self._entries, self._order, self._parents, self._children,
                                max_bytes, max_txs)

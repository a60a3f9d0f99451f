"""The mempool's O2O bookkeeping.

* One pending tx per one-time O2O claim (a token symbol, the review of a
  purchase, the reply to a review, a token's reward for a purchase, an item, a
  grant's revocation): a claim is the state key the tx would write
  (:func:`~o2ocli.consensus.o2o.o2o_claims`).
* The pending mints of a token must fit the supply limit together.
* After every block, the O2O txs (and the escrow spends) are checked again
  against the new tip (:meth:`PendingO2O.stale`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from o2ocli.consensus.errors import TxInvalid
from o2ocli.consensus.escrow import check_escrow_spends
from o2ocli.consensus.o2o import RULES, check_o2o_inputs, claim_description, o2o_claims
from o2ocli.consensus.params import MAX_AMOUNT, ConsensusParams
from o2ocli.consensus.state import StateKey
from o2ocli.core.payloads import TokenMint
from o2ocli.core.tx import Coin, Outpoint, Tx

from .mempool_types import ChainView, MempoolEntry, MempoolError

__all__ = ["PendingO2O"]


class PendingO2O:
    """The O2O claims, pending mints and re-check sets of one pool."""

    def __init__(self, chain: ChainView, params: ConsensusParams) -> None:
        self.chain = chain
        self.params = params
        self.claims: dict[StateKey, bytes] = {}
        """O2O claim key → txid of the mempool tx holding it."""
        self.txids: set[bytes] = set()
        """Txids of mempool txs with an O2O payload (re-checked after each block)."""
        self.escrow: set[bytes] = set()
        """Txids of mempool txs spending an escrow output (re-checked after each block)."""
        self.escrow_seen: set[bytes] = set()
        """Txids found spending an escrow output during the current batch's checks."""
        self.pending_mint: dict[bytes, int] = {}
        """Token asset → units the pool's mints would add (they form one chain:
        each spends the authority output the previous one created)."""
        self.batch_mint: dict[bytes, int] = {}
        """Token asset → units the current batch's mints would add."""

    def check_pending_supply(self, mint: TokenMint) -> None:
        """Policy: the chain of pending mints of one token must fit the supply
        limit together (each alone was checked against the tip's supply only)."""
        record = self.chain.token(mint.asset)  # type: ignore[attr-defined]
        pending = self.pending_mint.get(mint.asset, 0) + self.batch_mint.get(mint.asset, 0)
        if record is not None and record.supply + pending + mint.amount > MAX_AMOUNT:
            raise MempoolError(
                "txn-mint-overflow",
                f"with the mints already pending, {record.symbol}'s supply would overflow",
            )
        self.batch_mint[mint.asset] = self.batch_mint.get(mint.asset, 0) + mint.amount

    def check_claims(self, tx: Tx, batch_claims: dict[StateKey, bytes]) -> None:
        """Refuse ``tx`` if a pool or batch tx already holds one of its O2O claims."""
        for claim in o2o_claims(tx):
            other = self.claims.get(claim) or batch_claims.get(claim)
            if other is not None:
                raise MempoolError(
                    "txn-mempool-conflict",
                    f"mempool tx {other.hex()} already claims the same "
                    + claim_description(claim),
                    conflict=other,
                )

    def added(self, entry: MempoolEntry) -> None:
        """Record a tx that entered the pool."""
        txid = entry.txid
        payload = entry.tx.payload
        if payload.TAG in RULES:
            self.txids.add(txid)
            for claim in o2o_claims(entry.tx):
                self.claims[claim] = txid
            if isinstance(payload, TokenMint):
                self.pending_mint[payload.asset] = (
                    self.pending_mint.get(payload.asset, 0) + payload.amount
                )
        if txid in self.escrow_seen:
            self.escrow.add(txid)

    def removed(self, entry: MempoolEntry) -> None:
        """Forget a tx that left the pool."""
        txid = entry.txid
        self.escrow.discard(txid)
        if txid in self.txids:
            self.txids.discard(txid)
            for claim in o2o_claims(entry.tx):
                if self.claims.get(claim) == txid:
                    del self.claims[claim]
            payload = entry.tx.payload
            if isinstance(payload, TokenMint):
                left = self.pending_mint.get(payload.asset, 0) - payload.amount
                if left > 0:
                    self.pending_mint[payload.asset] = left
                else:
                    self.pending_mint.pop(payload.asset, None)

    def stale(
        self, entries: Mapping[bytes, MempoolEntry], unspent: Callable[[Outpoint], Coin | None]
    ) -> list[bytes]:
        """O2O txs whose payload rules, and escrow spends whose path rules, fail
        on the current tip (for the next block); ``unspent`` is the pool's view
        of a coin (spent or not)."""
        stale = []
        height = self.chain.height + 1
        for txid in list(self.txids):
            tx = entries[txid].tx
            coins = [unspent(txin.prevout) for txin in tx.inputs]
            if any(c is None for c in coins):
                continue  # the input checks of revalidate() deal with it
            try:
                check_o2o_inputs(tx, coins, height, self.params, self.chain)  # type: ignore[arg-type]
            except TxInvalid:
                stale.append(txid)
        for txid in list(self.escrow):
            entry = entries[txid]
            coins = [unspent(txin.prevout) for txin in entry.tx.inputs]
            if any(c is None for c in coins):
                continue
            try:  # a reorg to a lower tip can make a reclaim premature again
                check_escrow_spends(entry.tx, coins, height, entry.fee)  # type: ignore[arg-type]
            except TxInvalid:
                stale.append(txid)
        return stale

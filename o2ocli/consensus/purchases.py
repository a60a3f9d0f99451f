"""Who paid whom: what the review and reward rules read about a purchase.

A purchase is any main-chain transaction; these helpers read it (and the
transactions that created the coins it spent) through an
:class:`~o2ocli.consensus.state.O2OState`.  The node's renderers use them too,
so what the node shows is what consensus decides.
"""

from __future__ import annotations

from collections.abc import Sequence

from o2ocli.core.locks import Escrow, Lock, PayToAddress
from o2ocli.core.tx import NATIVE_ASSET, SigPair, Tx
from o2ocli.crypto.hashes import hash160

from .state import O2OState

__all__ = ["tx_signers", "paid_to", "spent_locks", "refunds_escrow", "purchase_buyers"]


def tx_signers(tx: Tx) -> set[bytes]:
    """Pubkey hashes of every key in the witnesses of ``tx`` (the keys that
    sign it, once its signatures are verified)."""
    return {hash160(pair.pubkey) for txin in tx.inputs for pair in txin.witness}


def paid_to(tx: Tx, pubkey_hash: bytes) -> int:
    """Native coin ``tx`` pays to the plain address ``pubkey_hash``."""
    lock = PayToAddress(pubkey_hash)
    return sum(o.amount for o in tx.outputs if o.asset == NATIVE_ASSET and o.lock == lock)


def spent_locks(tx: Tx, state: O2OState) -> list[Lock | None]:
    """The lock of each coin a main-chain ``tx`` spent, in input order, read
    from the main-chain transactions that created them (None where not found,
    which a consistent chain never has: spent coins are never forgotten)."""
    locks: list[Lock | None] = []
    for txin in tx.inputs:
        found = state.main_tx(txin.prevout.txid)
        outputs = found[0].outputs if found is not None else ()
        index = txin.prevout.index
        locks.append(outputs[index].lock if index < len(outputs) else None)
    return locks


def _escrow_inputs(tx: Tx, spent: Sequence[Lock | None]) -> list[tuple[Escrow, Sequence[SigPair]]]:
    """(lock, witness) of each input of ``tx`` that spends an Escrow output."""
    return [(lock, txin.witness) for lock, txin in zip(spent, tx.inputs, strict=True)
            if isinstance(lock, Escrow)]


def refunds_escrow(tx: Tx, spent: Sequence[Lock | None]) -> bool:
    """True if ``tx`` refunds an escrow: an input spends an Escrow output by the
    refund path (signed by one payee alone, :mod:`.escrow`)."""
    for lock, witness in _escrow_inputs(tx, spent):
        payees = {pkh for pkh, _ in lock.payees}
        if len(witness) == 1 and hash160(witness[0].pubkey) in payees:
            return True
    return False


def purchase_buyers(tx: Tx, spent: Sequence[Lock | None]) -> frozenset[bytes]:
    """The buyers of ``tx`` (pubkey hashes): the owners of the money it spent,
    given the locks of the coins it spent (:func:`spent_locks`).

    * A tx that refunds an escrow (:func:`refunds_escrow`) has none: it gives
      the payer's own money back.
    * A tx that spends Escrow outputs otherwise (released or reclaimed by the
      payer, or settled by the arbiter with a party) was paid by those
      escrows' payers: they are its buyers, and nobody else is (not the
      arbiter nor a payee that co-signed or added an input for the fee).
    * Otherwise, the owners of the spent coins: the address of a
      pay-to-address coin, every address of a multisig coin.

    :func:`~o2ocli.consensus.reviews.check_review_buyer` removes the reviewed
    merchant's own address.
    """
    escrows = _escrow_inputs(tx, spent)
    if escrows:
        if refunds_escrow(tx, spent):
            return frozenset()
        return frozenset(lock.payer for lock, _ in escrows)
    return frozenset(pkh for lock in spent if lock is not None for pkh in lock.addresses())

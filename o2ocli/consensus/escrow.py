"""Spending rules of the escrow lock (:class:`~o2ocli.core.locks.Escrow`).

Who signed the spending input decides the path; each path is one rule.

=========  =====================================  ==================================
path       signers of the input                   condition on the spending tx
=========  =====================================  ==================================
release    the payer alone, before ``timeout``    pays each payee at least its share
                                                  of ``amount - allowance``
reclaim    the payer alone, at/after ``timeout``  none (the payer takes it back; a
                                                  spend that pays every share is
                                                  recorded as a release)
refund     one payee alone, at any time           pays the payer at least
                                                  ``amount - allowance``
dispute    the arbiter and one other party        none (the arbiter's ruling)
=========  =====================================  ==================================

*Shares*: payee ``i`` must receive ``floor((amount - allowance) * bps_i / 10000)``
of the escrowed asset at plain addresses, summed over the tx's outputs.  The
rounding remainder (under one base unit per payee) may go anywhere.

*Allowance* (the fee rule): when the escrowed asset is the native coin, the
transaction's fee may be taken from the escrow, up to 1% of the amount
(``allowance = min(fee, amount // 100)``); for a token escrow the allowance is
0 and the fee comes from other inputs.  A tx that spends an escrow by
release or refund spends no other escrow output, so the fee is not counted twice.

Anything else — the arbiter alone, a payee before the payer released, the
payer releasing less than the shares, the payer reclaiming before the timeout —
is refused.

State (see :mod:`.state`): :data:`ESCROW_SETTLED` records how each escrow
output was settled (:func:`settlement_writes`).
"""

from __future__ import annotations

from collections.abc import Sequence

from o2ocli.core.locks import BPS_TOTAL, Escrow, PayToAddress
from o2ocli.core.tx import NATIVE_ASSET, Coin, SigPair, Tx
from o2ocli.crypto.hashes import hash160

from .errors import TxInvalid
from .state import Namespace, O2OState, StateKey

__all__ = [
    "STATE_DEPENDENT_REASONS",
    "PATH_RELEASE",
    "PATH_RECLAIM",
    "PATH_REFUND",
    "PATH_DISPUTE",
    "PATH_NAMES",
    "escrow_signature_pairs",
    "escrow_path",
    "escrow_allowance",
    "release_shares",
    "check_escrow_spends",
    "ESCROW_SETTLED",
    "NAMESPACES",
    "settlement_writes",
    "read_settlement",
]

PATH_RELEASE, PATH_RECLAIM, PATH_REFUND, PATH_DISPUTE = 1, 2, 3, 4
PATH_NAMES = {PATH_RELEASE: "released", PATH_RECLAIM: "reclaimed", PATH_REFUND: "refunded",
              PATH_DISPUTE: "disputed"}
FEE_ALLOWANCE_DIVISOR = 100
"""The fee taken from a native-coin escrow is at most ``amount // 100``."""

STATE_DEPENDENT_REASONS = frozenset({
    "bad-escrow-release-short",
    "bad-escrow-multiple",
})
"""Reasons of this family that depend on the chain a node has seen
(see :data:`o2ocli.consensus.o2o.STATE_DEPENDENT_REASONS`)."""

ESCROW_SETTLED = Namespace("escrow-settled", "escrow outpoint (txid ‖ index u32 BE) → "
                           "spending txid ‖ path u8")
NAMESPACES = (ESCROW_SETTLED,)


def settlement_writes(
    tx: Tx, spends: Sequence[tuple[int, int]], writes: dict[StateKey, bytes | None]
) -> None:
    """Add to ``writes`` how ``tx`` settles each escrow input (``spends`` as
    returned by :func:`check_escrow_spends`)."""
    txid = tx.txid
    for index, path in spends:
        writes[(ESCROW_SETTLED.name, tx.inputs[index].prevout.to_bytes())] = txid + bytes([path])


def read_settlement(state: O2OState, outpoint_bytes: bytes) -> tuple[bytes, int] | None:
    """(spending txid, path) of a settled escrow output, or None."""
    data = state.read((ESCROW_SETTLED.name, outpoint_bytes))
    return None if data is None else (data[:32], data[32])


def escrow_signature_pairs(lock: Escrow, witness: Sequence[SigPair]) -> list[tuple[bytes, bytes]]:
    """Rule (shape): an escrow input has 1 or 2 signatures from distinct parties
    of the lock; returns the (pubkey, signature) pairs to verify."""
    if not 1 <= len(witness) <= 2:
        raise TxInvalid("bad-escrow-signers", f"an escrow input needs 1 or 2 signatures, got "
                                              f"{len(witness)}")
    parties = set(lock.addresses())
    seen: set[bytes] = set()
    for pair in witness:
        pkh = hash160(pair.pubkey)
        if pkh not in parties:
            raise TxInvalid("bad-escrow-signers", "an escrow signature is not from a party")
        if pkh in seen:
            raise TxInvalid("bad-escrow-signers", "an escrow party signed twice")
        seen.add(pkh)
    return [(pair.pubkey, pair.signature) for pair in witness]


def escrow_path(lock: Escrow, witness: Sequence[SigPair], height: int) -> int:
    """Rule: the signers select the path (see the module table)."""
    signers = {hash160(pair.pubkey) for pair in witness}
    payees = {pkh for pkh, _ in lock.payees}
    if len(signers) == 2:
        if lock.arbiter is not None and lock.arbiter in signers:
            return PATH_DISPUTE
        raise TxInvalid("bad-escrow-signers", "two signatures are only valid with the arbiter's")
    (signer,) = signers
    if signer == lock.payer:
        return PATH_RELEASE if height < lock.timeout else PATH_RECLAIM
    if signer in payees:
        return PATH_REFUND
    raise TxInvalid("bad-escrow-arbiter-alone", "the arbiter alone cannot move escrowed funds")


def escrow_allowance(asset: bytes, amount: int, fee: int) -> int:
    """How much of a native-coin escrow may go to the fee (0 for tokens)."""
    if asset != NATIVE_ASSET:
        return 0
    return max(0, min(fee, amount // FEE_ALLOWANCE_DIVISOR))


def release_shares(lock: Escrow, amount: int) -> list[tuple[bytes, int]]:
    """(payee, minimum base units) on release of ``amount`` (after the allowance)."""
    return [(pkh, amount * bps // BPS_TOTAL) for pkh, bps in lock.payees]


def _paid(tx: Tx, asset: bytes, pkh: bytes) -> int:
    lock = PayToAddress(pkh)
    return sum(o.amount for o in tx.outputs if o.asset == asset and o.lock == lock)


def check_escrow_spends(
    tx: Tx, coins: Sequence[Coin], height: int, fee: int
) -> list[tuple[int, int]]:
    """Rule: every escrow input follows its path's condition (module table).

    ``fee`` is the tx's native fee.  Returns ``(input index, path)`` for each
    escrow input (empty if there is none).
    """
    spends: list[tuple[int, int]] = []
    for index, coin in enumerate(coins):
        lock = coin.output.lock
        if type(lock) is Escrow:
            spends.append((index, escrow_path(lock, tx.inputs[index].witness, height)))
    if not spends:
        return spends
    if len(spends) == 1 and spends[0][1] == PATH_RECLAIM:
        # After the timeout the payer alone may do anything; a spend that pays
        # every payee its share is still recorded as a release, not a reclaim.
        index = spends[0][0]
        out = coins[index].output
        lock = out.lock
        assert isinstance(lock, Escrow)
        base = out.amount - escrow_allowance(out.asset, out.amount, fee)
        if all(_paid(tx, out.asset, pkh) >= share for pkh, share in release_shares(lock, base)):
            spends = [(index, PATH_RELEASE)]
            return spends
    conditional = [s for s in spends if s[1] in (PATH_RELEASE, PATH_REFUND)]
    if conditional and len(spends) > 1:
        raise TxInvalid("bad-escrow-multiple",
                        "a release or refund must be the only escrow input of its tx")
    for index, path in conditional:
        out = coins[index].output
        lock = out.lock
        assert isinstance(lock, Escrow)
        base = out.amount - escrow_allowance(out.asset, out.amount, fee)
        if path == PATH_RELEASE:
            for pkh, share in release_shares(lock, base):
                got = _paid(tx, out.asset, pkh)
                if got < share:
                    raise TxInvalid(
                        "bad-escrow-release-short",
                        f"release pays a payee {got}, its share is at least {share} (the payer "
                        f"alone can take the money back only from height {lock.timeout})",
                    )
        else:
            got = _paid(tx, out.asset, lock.payer)
            if got < base:
                raise TxInvalid(
                    "bad-escrow-refund-short", f"refund pays the payer {got}, at least {base} due"
                )
    return spends

"""Spending rules for each lock type.

Each rule checks the *shape* of an input's witness against the lock of the
output it spends and returns the signature checks that must all pass.  The
actual ECDSA verification is done by the caller in one batch (so a block's
signatures can be verified together, in parallel if that pays off).
"""

from __future__ import annotations

from collections.abc import Sequence

from o2ocli.core.locks import Escrow, Lock, Multisig, PayToAddress
from o2ocli.core.tx import SigPair
from o2ocli.crypto.hashes import hash160

from .errors import TxInvalid

__all__ = ["SigCheck", "lock_signature_checks", "check_pay_to_address", "check_multisig"]

SigCheck = tuple[bytes, bytes, bytes]
"""(33-byte pubkey, 64-byte signature, 32-byte digest): one ECDSA verification."""


def check_pay_to_address(
    lock: PayToAddress, witness: Sequence[SigPair]
) -> list[tuple[bytes, bytes]]:
    """Rule: a pay-to-address output is spent by exactly one (pubkey, signature)
    pair whose pubkey hashes (HASH160) to the lock's address."""
    if len(witness) != 1:
        raise TxInvalid(
            "bad-txns-witness-count",
            f"pay-to-address input needs exactly 1 signature, got {len(witness)}",
        )
    pair = witness[0]
    if hash160(pair.pubkey) != lock.pubkey_hash:
        raise TxInvalid("bad-txns-wrong-key", "witness key does not match the output's address")
    return [(pair.pubkey, pair.signature)]


def check_multisig(lock: Multisig, witness: Sequence[SigPair]) -> list[tuple[bytes, bytes]]:
    """Rule: an m-of-n output is spent by exactly ``m`` pairs whose pubkeys hash
    to ``m`` *distinct* addresses of the lock, listed in the lock's order."""
    if len(witness) != lock.m:
        raise TxInvalid(
            "bad-txns-witness-count",
            f"{lock.m}-of-{len(lock.pubkey_hashes)} input needs exactly {lock.m} signatures, "
            f"got {len(witness)}",
        )
    positions = {h: i for i, h in enumerate(lock.pubkey_hashes)}
    last = -1
    pairs = []
    for pair in witness:
        pos = positions.get(hash160(pair.pubkey))
        if pos is None:
            raise TxInvalid("bad-txns-wrong-key", "witness key is not one of the multisig keys")
        if pos <= last:
            raise TxInvalid(
                "bad-txns-multisig-order",
                "multisig signatures must come from distinct keys in the lock's order",
            )
        last = pos
        pairs.append((pair.pubkey, pair.signature))
    return pairs


def lock_signature_checks(lock: Lock, witness: Sequence[SigPair]) -> list[tuple[bytes, bytes]]:
    """Dispatch to the rule of ``lock``'s type; returns (pubkey, signature) pairs to verify."""
    if isinstance(lock, PayToAddress):
        return check_pay_to_address(lock, witness)
    if isinstance(lock, Multisig):
        return check_multisig(lock, witness)
    if isinstance(lock, Escrow):
        from .escrow import escrow_signature_pairs  # the path rules need the whole tx

        return escrow_signature_pairs(lock, witness)
    raise TxInvalid("bad-txns-unknown-lock", f"no spending rule for lock {type(lock).__name__}")

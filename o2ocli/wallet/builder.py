"""Coin selection and transaction building (pure: no I/O, no node).

:func:`plan_payment` turns "pay these outputs" into a fully specified
unsigned transaction: which coins to spend (per asset), the fee, and the
change outputs.  Rules:

* **Fee**: ``ceil(fee_rate × size / 1000)`` for the exact encoded size of the
  signed transaction (witness sizes are fixed: 33-byte pubkey + 64-byte
  signature per pay-to-address input), unless an absolute fee is given.
  The fee is always paid in the native coin.
* **Selection**, per asset: confirmed coins are preferred; unconfirmed ones
  are used only if the confirmed ones do not suffice.  Within a tier, the
  smallest single coin that covers the need is used if there is one (few
  inputs, little change); otherwise the largest coins are added until the
  need is covered.  At most ``max_inputs`` inputs in all.
* **Change** goes to ``change_lock``; native change below ``dust`` is not
  created but left to the fee (token change is always returned).
* **Payload accounting** (tokens): ``required`` coins are spent first whatever
  the selection says (a token commit, a mint authority); ``created`` amounts
  are made by the payload rather than paid from inputs (an issue or a mint);
  ``burned`` amounts leave the inputs without an output (a burn, the native
  issuance fee).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from o2ocli.core.locks import Lock
from o2ocli.core.payloads import NO_PAYLOAD, Payload
from o2ocli.core.tx import NATIVE_ASSET, Outpoint, SigPair, Tx, TxIn, TxOut

__all__ = [
    "Spendable",
    "PaymentPlan",
    "InsufficientFunds",
    "TooManyInputs",
    "plan_payment",
    "split_amount",
    "DEFAULT_MAX_INPUTS",
]

DEFAULT_MAX_INPUTS = 500
_DUMMY_WITNESS = (SigPair(b"\x02" + bytes(32), bytes(64)),)


class InsufficientFunds(ValueError):
    """Not enough coins of an asset; ``available`` says how much there is."""

    def __init__(self, asset: bytes, needed: int, available: int) -> None:
        super().__init__(f"insufficient funds: need {needed}, have {available}")
        self.asset = asset
        self.needed = needed
        self.available = available


class TooManyInputs(ValueError):
    """The payment would need more inputs than allowed."""


@dataclass(frozen=True, slots=True)
class Spendable:
    """A wallet coin that can be spent."""

    outpoint: Outpoint
    output: TxOut
    confirmed: bool
    owner: bytes
    """Pubkey hash whose key signs for it."""


@dataclass(frozen=True, slots=True)
class PaymentPlan:
    """An unsigned transaction and what it spends."""

    tx: Tx
    """Inputs carry placeholder-free empty witnesses; sign with the wallet."""
    spent: tuple[Spendable, ...]
    fee: int
    change: tuple[TxOut, ...]


def split_amount(total: int, percents: Sequence[int]) -> list[int]:
    """Divide ``total`` base units by whole-number percentages summing to 100.

    Each share is ``floor(total × pct / 100)``; the remainder (less than one
    base unit per recipient) goes to the first recipient, so the shares always
    add up to ``total`` exactly.
    """
    if not percents or sum(percents) != 100 or any(p <= 0 for p in percents):
        raise ValueError("split percentages must be positive and add up to 100")
    shares = [total * p // 100 for p in percents]
    shares[0] += total - sum(shares)
    if any(s <= 0 for s in shares):
        raise ValueError("amount too small to split: a recipient would get nothing")
    return shares


def _choose(coins: list[Spendable], need: int) -> list[Spendable]:
    """Coins of one asset covering ``need`` (see module docstring), or all of them."""
    chosen: list[Spendable] = []
    for tier in (True, False):
        pool = sorted((c for c in coins if c.confirmed == tier), key=lambda c: -c.output.amount)
        covered = sum(c.output.amount for c in chosen)
        if covered >= need:
            break
        missing = need - covered
        single = [c for c in pool if c.output.amount >= missing]
        if single:
            chosen.append(min(single, key=lambda c: c.output.amount))
            continue
        for coin in pool:
            chosen.append(coin)
            covered += coin.output.amount
            if covered >= need:
                break
    return chosen


def _size(inputs: Sequence[Spendable], outputs: Sequence[TxOut], payload: Payload) -> int:
    tx = Tx(tuple(TxIn(c.outpoint, _DUMMY_WITNESS) for c in inputs), tuple(outputs),
            payload=payload)
    return tx.size


def plan_payment(
    coins: Sequence[Spendable],
    outputs: Sequence[TxOut],
    change_lock: Lock,
    *,
    fee_rate: int,
    fixed_fee: int | None = None,
    max_inputs: int = DEFAULT_MAX_INPUTS,
    dust: int = 1_000,
    payload: Payload = NO_PAYLOAD,
    required: Sequence[Spendable] = (),
    created: Mapping[bytes, int] | None = None,
    burned: Mapping[bytes, int] | None = None,
) -> PaymentPlan:
    """Select coins and build the unsigned transaction paying ``outputs``.

    ``required`` coins become the first inputs, in order; ``created`` and
    ``burned`` adjust what the inputs must cover per asset (see the module
    docstring).  Raises :class:`InsufficientFunds` (with the available amount)
    or :class:`TooManyInputs`.
    """
    if not outputs and not required:
        raise ValueError("nothing to pay")
    forced = {c.outpoint for c in required}
    by_asset: dict[bytes, list[Spendable]] = {}
    for coin in coins:
        if coin.outpoint not in forced:
            by_asset.setdefault(coin.output.asset, []).append(coin)
    needs: dict[bytes, int] = {}
    for out in outputs:
        needs[out.asset] = needs.get(out.asset, 0) + out.amount
    for asset, amount in (burned or {}).items():
        needs[asset] = needs.get(asset, 0) + amount
    for asset, amount in (created or {}).items():
        needs[asset] = max(0, needs.get(asset, 0) - amount)
    preset: dict[bytes, int] = {}
    for coin in required:
        preset[coin.output.asset] = preset.get(coin.output.asset, 0) + coin.output.amount
        needs.setdefault(coin.output.asset, 0)
    # Tokens first: their coins and change do not depend on the fee.
    token_inputs: list[Spendable] = [c for c in required if c.output.asset != NATIVE_ASSET]
    token_change: list[TxOut] = []
    for asset, need in needs.items():
        if asset == NATIVE_ASSET:
            continue
        pool = by_asset.get(asset, [])
        have = preset.get(asset, 0)
        if have < need:
            chosen = _choose(pool, need - have)
            have += sum(c.output.amount for c in chosen)
            if have < need:
                available = preset.get(asset, 0) + sum(c.output.amount for c in pool)
                raise InsufficientFunds(asset, need, available)
            token_inputs += chosen
        if have > need:
            token_change.append(TxOut(asset, have - need, change_lock))
    native_required = [c for c in required if c.output.asset == NATIVE_ASSET]
    native_pool = by_asset.get(NATIVE_ASSET, [])
    preset_native = preset.get(NATIVE_ASSET, 0)
    native_total = preset_native + sum(c.output.amount for c in native_pool)
    native_need = needs.get(NATIVE_ASSET, 0)
    fee = fixed_fee if fixed_fee is not None else 0
    while True:  # the fee depends on the inputs, which depend on the fee: fee only grows
        target = native_need + fee
        missing = target - preset_native
        if missing <= 0 and not token_inputs and not native_required:
            missing = 1  # a tx needs an input, even one that only creates (an issue, an item)
        chosen = _choose(native_pool, missing) if missing > 0 else []
        have = preset_native + sum(c.output.amount for c in chosen)
        if have < target:
            raise InsufficientFunds(NATIVE_ASSET, target, native_total)
        inputs = native_required + token_inputs + chosen
        # Required coins keep their order at the front.
        inputs = list(required) + [c for c in inputs if c.outpoint not in forced]
        if not inputs:
            raise ValueError("a transaction needs at least one input")
        if len(inputs) > max_inputs:
            raise TooManyInputs(
                f"this payment needs more than {max_inputs} inputs; consolidate coins first"
            )
        change_amount = have - target
        change = list(token_change)
        if change_amount >= dust:
            change.append(TxOut(NATIVE_ASSET, change_amount, change_lock))
        all_outputs = list(outputs) + change
        if fixed_fee is None:
            needed = -(-fee_rate * _size(inputs, all_outputs, payload) // 1000)
            if needed > fee:
                fee = needed
                continue
        if change_amount < dust:
            fee += change_amount  # dust change is left to the validator
        tx = Tx(tuple(TxIn(c.outpoint) for c in inputs), tuple(all_outputs), payload=payload)
        return PaymentPlan(tx, tuple(inputs), fee, tuple(change))

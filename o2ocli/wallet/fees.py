"""How a wallet pays fees, and the one hook every send passes through.

A :class:`SendPolicy` set on an open wallet (``wallet.policy``) by the CLI
chooses the fee rate (``--fee-rate`` or ``--priority``) and approves each
signed transaction before it is broadcast (the confirmation prompt and the
fee cap of :mod:`o2ocli.cli.confirm`).  Without a policy a wallet pays the
node's minimum relay fee rate and sends without asking (scripts, tests).

Rates here are base units per 1000 bytes, as the node counts them; users
type base units per byte (:func:`parse_rate`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["PRIORITIES", "SendPolicy", "parse_rate", "min_fee_rate", "fee_rate", "approve"]

PRIORITIES = ("low", "normal", "high")


@dataclass
class SendPolicy:
    """What the user chose for the sends of one command."""

    fee_rate: int | None = None
    """Base units per 1000 bytes (``--fee-rate``), or None."""
    priority: str | None = None
    """``low``/``normal``/``high`` (``--priority``: the node's ``estimatefee``), or None."""
    approve: Callable[[Any, Any], None] | None = None
    """Called with (signed tx, :class:`~o2ocli.wallet.builder.PaymentPlan`) before a
    broadcast; raises to stop it."""


def parse_rate(text: str) -> int:
    """Base units per byte as typed (``"2"``, ``"1.5"``) → per 1000 bytes."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"{text!r} is not a rate (a number of base units per byte, ≥ 0)")
    per_kb = value * 1000
    if per_kb != per_kb.to_integral_value():
        raise ValueError(f"{text!r} has more than three decimals")
    if per_kb > 10**15:
        raise ValueError(f"{text!r} is too large")
    return int(per_kb)


def min_fee_rate(wallet: Any, client: Any) -> int:
    """The node's minimum relay fee rate (per 1000 bytes)."""
    return wallet.spec.amount(client.call("getinfo")["min_relay_fee"])


def fee_rate(wallet: Any, client: Any) -> int:
    """The fee rate a send of ``wallet`` pays: the policy's, else the minimum."""
    policy: SendPolicy | None = getattr(wallet, "policy", None)
    if policy is not None and policy.fee_rate is not None:
        return policy.fee_rate
    if policy is not None and policy.priority is not None:
        estimate = client.call("estimatefee")["estimates"][policy.priority]["fee_rate"]
        return parse_rate(estimate)
    return min_fee_rate(wallet, client)


def approve(wallet: Any, tx: Any, plan: Any) -> None:
    """Ask the wallet's policy to approve ``tx`` (no policy: approved)."""
    policy: SendPolicy | None = getattr(wallet, "policy", None)
    if policy is not None and policy.approve is not None:
        policy.approve(tx, plan)

"""Confirm before spending, the fee cap and the fee choice: one module every
value-moving command uses.

A command decorated with :func:`spend_options` gets ``--yes``,
``--allow-high-fee``, ``--fee-rate RATE`` and ``--priority low|normal|high``
and calls :func:`guard` on its open wallet.  From then on every transaction the
wallet broadcasts for that command (:func:`o2ocli.wallet.fees.approve`) is:

1. checked against the fee cap: a fee above the amount it moves, or above
   :data:`HIGH_FEE_FACTOR` × the relay minimum for its size, is refused unless
   ``--allow-high-fee``;
2. on a terminal (stdin is a tty) and without ``--yes``, summarised on stderr
   (recipients and amounts per asset, fee, fee as % of the amount, what is
   burned, balance after) with ``Send? [y/N]``.  One answer covers the command
   (``token issue`` sends a commit and then a reveal).

Without a terminal nothing is asked: scripts behave as before.  Tests make
:func:`stdin_is_terminal` answer True to see the prompt.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from .common import CliError

__all__ = [
    "HIGH_FEE_FACTOR",
    "stdin_is_terminal",
    "spend_options",
    "fee_options",
    "guard",
    "fee_cap_problem",
    "approve_tx",
]

HIGH_FEE_FACTOR = 100
"""A fee above this many times the relay minimum (for the tx's size) needs --allow-high-fee."""


def stdin_is_terminal() -> bool:
    """Whether a person can answer a prompt (tests monkeypatch this)."""
    return sys.stdin.isatty()


def fee_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--allow-high-fee``, ``--fee-rate`` and ``--priority``."""
    f = click.option("--priority", type=click.Choice(["low", "normal", "high"]), default=None,
                     help="Fee rate from the node's estimate (see: o2ocli chain fees).")(f)
    f = click.option("--fee-rate", "fee_rate", default=None, metavar="RATE",
                     help="Fee rate in base units per byte (default: the relay minimum).")(f)
    f = click.option("--allow-high-fee", is_flag=True,
                     help="Pay a fee above the cap (more than the amount, or more than "
                          f"{HIGH_FEE_FACTOR}x the relay minimum).")(f)
    return f


def spend_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--yes`` and the :func:`fee_options`."""
    f = fee_options(f)
    f = click.option("--yes", "-y", "yes", is_flag=True,
                     help="Do not ask 'Send? [y/N]' on a terminal.")(f)
    return f


def guard(ctx: Any, wallet: Any, client: Any, *, yes: bool, allow_high_fee: bool,
          fee_rate: str | None, priority: str | None, note: str | None = None) -> None:
    """Set the wallet's send policy for this command (see the module docstring).
    ``note`` is printed in the summary (e.g. what a later step burns)."""
    from o2ocli.wallet.fees import SendPolicy, parse_rate

    if fee_rate is not None and priority is not None:
        raise click.UsageError("give --fee-rate or --priority, not both")
    rate = None
    if fee_rate is not None:
        try:
            rate = parse_rate(fee_rate)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--fee-rate") from None
    state = {"approved": False}

    def approve(tx: Any, plan: Any) -> None:
        summary = _Summary(wallet, client, tx, plan)
        problem = fee_cap_problem(summary.fee, summary.amount_native, summary.min_fee,
                                  wallet.spec)
        if problem and not allow_high_fee:
            raise CliError(f"{problem}; not sent (add --allow-high-fee to pay it)")
        if state["approved"] or yes or not stdin_is_terminal():
            state["approved"] = True
            return
        click.echo(summary.render(note), err=True)
        if not click.confirm("Send?", default=False, err=True):
            raise CliError("not sent")
        state["approved"] = True

    wallet.policy = SendPolicy(rate, priority, approve)


def approve_tx(wallet: Any, client: Any, tx: Any) -> None:
    """:func:`o2ocli.wallet.fees.approve` for a tx built without a plan (an escrow
    settlement): the coins it spends are read from the node; the fee is what the
    native inputs leave over."""
    from types import SimpleNamespace

    from o2ocli.core.locks import PayToAddress
    from o2ocli.core.tx import NATIVE_ASSET
    from o2ocli.wallet.fees import approve

    spent = []
    for txin in tx.inputs:
        out = client.call("gettx", txin.prevout.txid.hex())["outputs"][txin.prevout.index]
        address = out.get("address")
        lock = PayToAddress(wallet.spec.decode_address(address)) if address else None
        spent.append(SimpleNamespace(output=SimpleNamespace(
            asset=bytes.fromhex(out["asset_id"]), amount=out["units"], lock=lock)))
    native_in = sum(c.output.amount for c in spent if c.output.asset == NATIVE_ASSET)
    native_out = sum(o.amount for o in tx.outputs if o.asset == NATIVE_ASSET)
    plan = SimpleNamespace(fee=native_in - native_out, spent=spent, change=())
    approve(wallet, tx, plan)


def fee_cap_problem(fee: int, amount: int, min_fee: int, spec: Any) -> str | None:
    """Why ``fee`` is above the cap, or None.  ``amount`` is the native value the
    tx moves (0: the rule "more than the amount" does not apply)."""
    symbol = spec.native_symbol
    if amount > 0 and fee > amount:
        return (f"the fee {spec.format(fee)} {symbol} is more than the amount "
                f"{spec.format(amount)} {symbol}")
    cap = HIGH_FEE_FACTOR * max(min_fee, 1)
    if fee > cap:
        return (f"the fee {spec.format(fee)} {symbol} is more than {HIGH_FEE_FACTOR}x the "
                f"relay minimum ({spec.format(min_fee)} {symbol} for this size)")
    return None


class _Summary:
    """What a signed tx does, from the wallet's side."""

    def __init__(self, wallet: Any, client: Any, tx: Any, plan: Any) -> None:
        from o2ocli.core.locks import PayToAddress
        from o2ocli.core.tx import NATIVE_ASSET
        from o2ocli.wallet.fees import min_fee_rate

        self.wallet, self.client, self.tx = wallet, client, tx
        self.fee = plan.fee
        n_change = len(plan.change)
        self.recipients = list(tx.outputs[: len(tx.outputs) - n_change])
        spent: dict[bytes, int] = {}
        own_delta: dict[bytes, int] = {}
        for coin in plan.spent:
            out = coin.output
            spent[out.asset] = spent.get(out.asset, 0) + out.amount
            if isinstance(out.lock, PayToAddress) and wallet.owns(out.lock.pubkey_hash):
                own_delta[out.asset] = own_delta.get(out.asset, 0) - out.amount
        paid: dict[bytes, int] = {}
        for out in tx.outputs:
            paid[out.asset] = paid.get(out.asset, 0) + out.amount
            if isinstance(out.lock, PayToAddress) and wallet.owns(out.lock.pubkey_hash):
                own_delta[out.asset] = own_delta.get(out.asset, 0) + out.amount
        self.burned = {}
        for asset, units in spent.items():
            gone = units - paid.get(asset, 0) - (self.fee if asset == NATIVE_ASSET else 0)
            if gone > 0:
                self.burned[asset] = gone
        self.own_delta = own_delta
        self.amount_native = sum(o.amount for o in self.recipients if o.asset == NATIVE_ASSET)
        self.amount_native += self.burned.get(NATIVE_ASSET, 0)
        size = len(tx.to_bytes())
        self.min_fee = -(-min_fee_rate(wallet, client) * size // 1000)
        self.size = size

    def _who(self, lock: Any, labels: dict[str, str]) -> str:
        from o2ocli.core.locks import Escrow, Multisig, PayToAddress
        from o2ocli.wallet.labels import describe

        spec = self.wallet.spec
        if isinstance(lock, PayToAddress):
            address = spec.address(lock.pubkey_hash)
            text = describe(address, labels)
            return text + (" [this wallet]" if self.wallet.owns(lock.pubkey_hash) else "")
        if isinstance(lock, Escrow):
            return "escrow (held until released or refunded)"
        if isinstance(lock, Multisig):
            return f"multisig {lock.m}-of-{len(lock.addresses())}"
        return "contract"

    def render(self, note: str | None) -> str:
        from o2ocli.amounts import format_amount
        from o2ocli.core.tx import NATIVE_ASSET
        from o2ocli.wallet.labels import labels
        from o2ocli.wallet.service import balances

        from .display import asset_labels

        spec = self.wallet.spec
        assets = {o.asset for o in self.tx.outputs} | set(self.burned) | set(self.own_delta)
        names = asset_labels(self.client, spec, assets)
        known = labels(self.wallet)

        def amount(asset: bytes, units: int) -> str:
            name, decimals = names.get(asset, (asset.hex(), 0))
            return f"{format_amount(units, decimals)} {name}"

        lines = ["About to send:"]
        for out in self.recipients:
            who = self._who(out.lock, known)
            lines.append(f"  pay     {amount(out.asset, out.amount)} to {who}")
        fee_line = f"  fee     {amount(NATIVE_ASSET, self.fee)} ({self.size} bytes)"
        if self.amount_native:
            fee_line += f", {100 * self.fee / self.amount_native:.3g}% of the amount"
        lines.append(fee_line)
        for asset, units in sorted(self.burned.items()):
            lines.append(f"  burned  {amount(asset, units)} (destroyed for good)")
        if note:
            lines.append(f"  note    {note}")
        now = {b.asset: b.confirmed + b.unconfirmed for b in balances(self.wallet, self.client)}
        for asset in sorted(set(self.own_delta) | {NATIVE_ASSET}):
            after = now.get(asset, 0) + self.own_delta.get(asset, 0)
            lines.append(f"  balance after  {amount(asset, after)}")
        return "\n".join(lines)

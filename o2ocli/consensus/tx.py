"""Transaction validity rules.

Two stages, like Bitcoin Core's ``CheckTransaction`` / ``Consensus::CheckTxInputs``:

1. :func:`check_transaction`: context free, looks only at the transaction.
2. :func:`check_tx_inputs`: against the coins the inputs spend (passed in, already
   looked up) and the height of the block that would contain it.  Returns the
   fee and the signature checks still to run.

:func:`validate_transaction` runs both and verifies the signatures; a block
runs stage 2 for all its transactions first and then verifies every signature
of the block in one batch (:mod:`o2ocli.consensus.block`).

Every rule is one function whose docstring states it; each raises
:class:`~o2ocli.consensus.errors.TxInvalid` with a stable reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from o2ocli.core.payloads import Coinbase, GenesisAlloc, NoPayload
from o2ocli.core.tx import NATIVE_ASSET, TX_VERSION, Coin, Outpoint, Tx
from o2ocli.crypto.backends import verify as ecdsa_verify

from .errors import TxInvalid
from .escrow import check_escrow_spends, settlement_writes
from .locks import SigCheck, lock_signature_checks
from .o2o import (
    EMPTY_STATE,
    NO_EFFECT,
    RULES,
    O2OEffect,
    O2OState,
    check_o2o_inputs,
    check_o2o_payload,
)
from .params import MAX_AMOUNT, ConsensusParams

__all__ = [
    "Verifier",
    "serial_verifier",
    "check_tx_version",
    "check_tx_size",
    "check_tx_not_empty",
    "check_no_duplicate_inputs",
    "check_output_amounts",
    "check_payload_placement",
    "check_transaction",
    "check_lock_height",
    "check_asset_conservation",
    "collect_signature_checks",
    "check_tx_inputs",
    "check_tx_contextual",
    "resolve_inputs",
    "validate_transaction",
]

Verifier = Callable[[Sequence[SigCheck]], int | None]
"""Verifies a batch of signature checks; returns the index of a failing one, or None."""


def serial_verifier(checks: Sequence[SigCheck]) -> int | None:
    """Verify ``checks`` one by one on this thread (the single-core path)."""
    for i, (pubkey, signature, digest) in enumerate(checks):
        if not ecdsa_verify(pubkey, signature, digest):
            return i
    return None


# --------------------------------------------------------------------------
# Stage 1: context-free rules
# --------------------------------------------------------------------------


def check_tx_version(tx: Tx) -> None:
    """Rule: the transaction format version is :data:`~o2ocli.core.tx.TX_VERSION`."""
    if tx.version != TX_VERSION:
        raise TxInvalid("bad-txns-version", f"unsupported tx version {tx.version}")


def check_tx_size(tx: Tx, params: ConsensusParams) -> None:
    """Rule: the encoded transaction is at most ``max_tx_size`` bytes and has at
    most ``max_tx_inputs`` inputs and ``max_tx_outputs`` outputs."""
    if tx.size > params.max_tx_size:
        raise TxInvalid(
            "bad-txns-oversize", f"tx is {tx.size} bytes, limit {params.max_tx_size}"
        )
    if len(tx.inputs) > params.max_tx_inputs:
        raise TxInvalid("bad-txns-too-many-inputs", f"{len(tx.inputs)} inputs")
    if len(tx.outputs) > params.max_tx_outputs:
        raise TxInvalid("bad-txns-too-many-outputs", f"{len(tx.outputs)} outputs")


def check_tx_not_empty(tx: Tx) -> None:
    """Rule: a transaction has at least one output, and at least one input unless
    it is a fee claim or a genesis allocation (which have none)."""
    if not tx.outputs:
        raise TxInvalid("bad-txns-vout-empty", "transaction has no outputs")
    no_input_kinds = (Coinbase, GenesisAlloc)
    if isinstance(tx.payload, no_input_kinds):
        if tx.inputs:
            raise TxInvalid("bad-cb-has-inputs", "fee claim / genesis tx must not spend inputs")
    elif not tx.inputs:
        raise TxInvalid("bad-txns-vin-empty", "transaction has no inputs")


def check_no_duplicate_inputs(tx: Tx) -> None:
    """Rule: no outpoint is spent twice within one transaction."""
    seen: set[Outpoint] = set()
    for txin in tx.inputs:
        if txin.prevout in seen:
            raise TxInvalid("bad-txns-duplicate-input", f"input {txin.prevout} is spent twice")
        seen.add(txin.prevout)


def check_output_amounts(tx: Tx) -> None:
    """Rule: every output amount is within 1..MAX_AMOUNT, and so is the sum of
    the outputs of each asset (no overflow)."""
    totals: dict[bytes, int] = {}
    for i, out in enumerate(tx.outputs):
        if out.amount < 1:
            raise TxInvalid("bad-txns-vout-zero", f"output {i} has a zero amount")
        if out.amount > MAX_AMOUNT:
            raise TxInvalid("bad-txns-vout-toolarge", f"output {i} exceeds the maximum amount")
        total = totals.get(out.asset, 0) + out.amount
        if total > MAX_AMOUNT:
            raise TxInvalid("bad-txns-txouttotal-toolarge", "outputs of one asset overflow")
        totals[out.asset] = total


def check_payload_placement(tx: Tx) -> None:
    """Rule: the payload type is one an ordinary transaction may carry.

    A fee claim's :class:`Coinbase` payload is only allowed on a transaction with
    no inputs and only native-coin outputs (where it may stand in a block is a
    block rule); :class:`GenesisAlloc` only appears in the genesis block, which is
    not validated by these rules at all.
    """
    payload = tx.payload
    if isinstance(payload, GenesisAlloc):
        raise TxInvalid("bad-txns-genesis-payload", "genesis allocations are only valid in block 0")
    if isinstance(payload, Coinbase):
        for i, out in enumerate(tx.outputs):
            if out.asset != NATIVE_ASSET:
                raise TxInvalid("bad-cb-asset", f"fee claim output {i} is not the native coin")
        for txin in tx.inputs:
            if txin.witness:
                raise TxInvalid("bad-cb-witness", "fee claim carries a witness")
        return
    if payload.TAG not in RULES and not isinstance(payload, NoPayload):
        raise TxInvalid("bad-txns-payload", f"payload {type(payload).__name__} is not allowed")


def check_transaction(tx: Tx, params: ConsensusParams) -> None:
    """All context-free rules, cheapest first."""
    check_tx_version(tx)
    check_tx_size(tx, params)
    check_tx_not_empty(tx)
    check_no_duplicate_inputs(tx)
    check_output_amounts(tx)
    check_payload_placement(tx)
    check_o2o_payload(tx)


# --------------------------------------------------------------------------
# Stage 2: rules against the spent coins
# --------------------------------------------------------------------------


def resolve_inputs(tx: Tx, view: Mapping[Outpoint, Coin] | object) -> list[Coin]:
    """Rule: every input spends an existing, unspent output.

    ``view`` is anything with ``get(outpoint) -> Coin | None`` (a dict works).
    """
    get = view.get  # type: ignore[attr-defined]
    coins = []
    for txin in tx.inputs:
        coin = get(txin.prevout)
        if coin is None:
            raise TxInvalid(
                "bad-txns-inputs-missingorspent", f"input {txin.prevout} is missing or spent"
            )
        coins.append(coin)
    return coins


def check_lock_height(tx: Tx, height: int) -> None:
    """Rule: a transaction is only valid in a block whose height is at least its
    ``lock_height``."""
    if tx.lock_height > height:
        raise TxInvalid(
            "bad-txns-premature",
            f"tx is locked until height {tx.lock_height}, block height is {height}",
        )


def check_asset_conservation(
    tx: Tx, coins: Sequence[Coin], deltas: Mapping[bytes, int] | None = None
) -> int:
    """Rule: per asset, the inputs cover the outputs.

    For the native coin the surplus is returned (the fee, plus any native coin
    the payload burns).  For every other asset ``outputs - inputs`` must equal
    what the payload allows in ``deltas`` (asset → change; 0 when absent): tokens
    are created and destroyed only by issue, mint and burn payloads
    (:mod:`o2ocli.consensus.o2o`).
    """
    if not deltas:  # the common case: native coin only (same checks, same order)
        total_in = 0
        for coin in coins:
            out = coin.output
            if out.asset != NATIVE_ASSET:
                break
            total_in += out.amount
        else:
            total_out = 0
            for out in tx.outputs:
                if out.asset != NATIVE_ASSET:
                    break
                total_out += out.amount
            else:
                if total_in > MAX_AMOUNT:
                    raise TxInvalid("bad-txns-inputvalues-outofrange",
                                    "inputs of one asset overflow")
                if total_out > total_in:
                    raise TxInvalid(
                        "bad-txns-in-belowout",
                        f"outputs of asset {NATIVE_ASSET.hex()[:16]} ({total_out}) exceed "
                        f"inputs ({total_in})",
                    )
                return total_in - total_out
    deltas = deltas or {}
    totals_in: dict[bytes, int] = {}
    for coin in coins:
        out = coin.output
        totals_in[out.asset] = totals_in.get(out.asset, 0) + out.amount
    totals_out: dict[bytes, int] = {}
    for out in tx.outputs:
        totals_out[out.asset] = totals_out.get(out.asset, 0) + out.amount
    for total in totals_in.values():
        if total > MAX_AMOUNT:
            raise TxInvalid("bad-txns-inputvalues-outofrange", "inputs of one asset overflow")
    for asset, spent in totals_out.items():
        available = totals_in.get(asset, 0)
        if spent > available and deltas.get(asset, 0) <= 0:
            raise TxInvalid(
                "bad-txns-in-belowout",
                f"outputs of asset {asset.hex()[:16]} ({spent}) exceed inputs ({available})",
            )
    assets = totals_in.keys() | totals_out.keys() | deltas.keys() if deltas else totals_in.keys()
    for asset in assets:
        if asset == NATIVE_ASSET:
            continue
        available, spent = totals_in.get(asset, 0), totals_out.get(asset, 0)
        allowed = deltas.get(asset, 0) if deltas else 0
        if spent - available != allowed:
            raise TxInvalid(
                "bad-txns-asset-unbalanced",
                f"asset {asset.hex()[:16]}: {available} in, {spent} out"
                + (f", the payload allows a change of {allowed}" if allowed else ""),
            )
    return totals_in.get(NATIVE_ASSET, 0) - totals_out.get(NATIVE_ASSET, 0)


def collect_signature_checks(
    tx: Tx, coins: Sequence[Coin], params: ConsensusParams
) -> list[SigCheck]:
    """Rule: each input's witness satisfies the lock of the coin it spends.

    Returns the ECDSA checks (all over the tx's sighash) that must pass.
    """
    digest = tx.sighash(params.chain_id)
    checks: list[SigCheck] = []
    for index, (txin, coin) in enumerate(zip(tx.inputs, coins, strict=True)):
        try:
            pairs = lock_signature_checks(coin.output.lock, txin.witness)
        except TxInvalid as exc:
            raise TxInvalid(exc.reason, f"input {index}: {exc.message}") from None
        for pubkey, signature in pairs:
            checks.append((pubkey, signature, digest))
    return checks


def check_tx_contextual(
    tx: Tx,
    coins: Sequence[Coin],
    height: int,
    params: ConsensusParams,
    state: O2OState = EMPTY_STATE,
) -> tuple[int, list[SigCheck], O2OEffect]:
    """Contextual rules for a non-fee-claim tx spending ``coins`` at ``height``,
    with ``state`` the O2O state of the parent block.

    Returns ``(fee, signature checks, payload effect)``; the caller verifies the
    checks.  The fee is the native surplus minus what the payload burns (a token
    issue's fee is destroyed, not claimable by the validator).
    """
    check_lock_height(tx, height)
    if tx.payload.TAG == 0:  # the common case: a plain payment
        fee = check_asset_conservation(tx, coins)
        checks = collect_signature_checks(tx, coins, params)
        escrows = check_escrow_spends(tx, coins, height, fee)
        if escrows:
            return fee, checks, _escrow_effect(tx, escrows, O2OEffect())
        return fee, checks, NO_EFFECT
    effect = check_o2o_inputs(tx, coins, height, params, state)
    surplus = check_asset_conservation(tx, coins, effect.deltas)
    if surplus < effect.burned:
        raise TxInvalid(
            "bad-token-issue-fee",
            f"the tx must burn {effect.burned} base units of native coin, it leaves {surplus}",
        )
    checks = collect_signature_checks(tx, coins, params)
    if effect.checks:
        checks.extend(effect.checks)
    fee = surplus - effect.burned
    escrows = check_escrow_spends(tx, coins, height, fee)
    if escrows:
        _escrow_effect(tx, escrows, effect)
    return fee, checks, effect


def _escrow_effect(tx: Tx, escrows: list[tuple[int, int]], effect: O2OEffect) -> O2OEffect:
    settlement_writes(tx, escrows, effect.writes)
    return effect


def check_tx_inputs(
    tx: Tx,
    coins: Sequence[Coin],
    height: int,
    params: ConsensusParams,
    state: O2OState = EMPTY_STATE,
) -> tuple[int, list[SigCheck]]:
    """:func:`check_tx_contextual` without the payload effect: ``(fee, checks)``."""
    fee, checks, _ = check_tx_contextual(tx, coins, height, params, state)
    return fee, checks


def validate_transaction(
    tx: Tx,
    view: Mapping[Outpoint, Coin] | object,
    height: int,
    params: ConsensusParams,
    verifier: Verifier = serial_verifier,
    state: O2OState = EMPTY_STATE,
) -> int:
    """Full validity of a standalone transaction (as a mempool would check it).

    ``height`` is the height of the block it would be mined in.  Returns the fee.
    """
    check_transaction(tx, params)
    if tx.is_coinbase:
        raise TxInvalid("bad-txns-coinbase", "a fee claim is only valid inside a block")
    coins = resolve_inputs(tx, view)
    fee, checks = check_tx_inputs(tx, coins, height, params, state)
    failed = verifier(checks)
    if failed is not None:
        raise TxInvalid("bad-txns-signature", "a witness signature does not verify")
    return fee
